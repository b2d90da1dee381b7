// Finiteness checks of a training step, done on the GPU every step so that divergence is noticed at
// the step it happens (issue 11 item 2), without reading anything back until the host asks.
//
// nonfinite_any(x0..x(count-1), acc?) {count, span} → u32 [1]: 1 when any element of any xi is NaN or
//   ±Inf (an f32 whose exponent bits are all ones), else 0; OR-ed with `acc` (an earlier check's
//   result), so checks over many tensors chain without a many-input op. With `span` the xs lie in
//   one arena (OpDef.spans; a fused optimizer's gradients do) and are scanned in one pass; without,
//   count is 1. Not differentiable.
// nonfinite_flag(bad, step, flag): in place on `flag` (writes [2]): flag ← step when bad ≠ 0 and
//   flag = 0, so the flag keeps the FIRST step at which a check failed. `bad` is a nonfinite_any
//   result, `step` a u32 input [1] the host writes with the step's number (from 1), `flag` a u32
//   state [1] (0: nothing seen yet).

import { type Node, shapeFail } from "../core/ir.ts";
import { defineOp } from "./attrs.ts";

const isU32Scalar = (x: Node | undefined) => x !== undefined && x.shape.join() === "1" && x.dtype === "u32";

const nonfiniteAnyOp = defineOp("nonfinite_any", {
  grad: "none",
  spans: (n) => n.attrs.span ? [n.inputs.slice(0, n.attrs.count)] : [],
  infer: (inputs, attrs) => {
    const { count, span } = attrs;
    const what = "f32 tensors x0..x(count-1) (count 1 unless span) and an optional u32 accumulator [1]";
    if (typeof count !== "number" || !Number.isInteger(count) || count < 1 || (!span && count !== 1)) {
      shapeFail("nonfinite_any", inputs, `${what}; count = ${count}, span = ${span}`);
    }
    const acc = inputs[count];
    if (inputs.length < count || inputs.length > count + 1 || (acc !== undefined && !isU32Scalar(acc))) {
      shapeFail("nonfinite_any", inputs, what);
    }
    if (inputs.slice(0, count).some((x) => x.dtype !== "f32")) shapeFail("nonfinite_any", inputs, what);
    return { shape: [1], dtype: "u32" };
  },
});

const nonfiniteFlagOp = defineOp("nonfinite_flag", {
  grad: "none",
  writes: [2],
  infer: (inputs) => {
    const [bad, step, flag] = inputs;
    if (
      inputs.length !== 3 || !isU32Scalar(bad) || !isU32Scalar(step) || step.kind !== "input" ||
      !isU32Scalar(flag) || flag.kind !== "state"
    ) {
      shapeFail("nonfinite_flag", inputs, "(bad u32 [1], step: a u32 input [1], flag: a u32 state [1])");
    }
    // nothing reads the op's own output; lower() gives `writes` ops no output buffer
    return { shape: [1], dtype: "f32" };
  },
});

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const finiteOps = { nonfinite_any: nonfiniteAnyOp, nonfinite_flag: nonfiniteFlagOp };

/**
 * u32 [1]: 1 when any element of `xs` is NaN or ±Inf, OR-ed with `acc`. Several xs must be one
 * arena's members in its order (`span`, e.g. the gradients a fused AdamW binds); else pass one tensor.
 */
export function nonfiniteAny(xs: readonly Node[], acc?: Node, span = false): Node {
  const inputs = acc ? [...xs, acc] : [...xs];
  return xs[0].graph.apply(nonfiniteAnyOp, inputs, { count: xs.length, span });
}

/**
 * The in-place update flag ← step when `bad` ≠ 0 and flag = 0 (the first bad step is kept). Returns
 * the effect node: pass it to compile(outputs, { effects }).
 */
export function nonfiniteFlag(bad: Node, step: Node, flag: Node): Node {
  return bad.graph.apply(nonfiniteFlagOp, [bad, step, flag], {});
}
