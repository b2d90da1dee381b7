// Optimizer ops: AdamW as an in-place update, and the pieces of global-norm gradient clipping.
//
// sumsq(g, acc?) → [1]: Σ g² (+ acc). Chaining acc over all gradients gives the global sum of squares
//   without a many-input op (a shader binds at most 8 storage buffers). Differentiable (2·g·dy), so it
//   doubles as an L2 penalty.
// clip_coef(total) → [1]: min(1, maxNorm / (sqrt(total) + 1e-6)), torch.nn.utils.clip_grad_norm_'s
//   factor for a total sum of squares `total`.
// adamw(p, g, m, v, hyper, clipCoef?): one torch.optim.AdamW step (decoupled weight decay), writing
//   p, m, v in place (writes [0, 2, 3]); m and v must be g.state(...) tensors (zeros at step 1).
//   `hyper` is an f32 input [3] the host writes before every step (see ADAMW_HYPER); β1, β2, eps and
//   the weight decay are constants of the node. With clipCoef, g is multiplied by it first.
//   Per element, in torch's order:
//     p ← p·(1 − lr·wd);  m ← m + (1−β1)(g − m);  v ← β2·v + (1−β2)·g²
//     p ← p − (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps)
// The user-facing optimizer (state, hyper input, clipping, per-step host update) is compiler/optim.ts.

import { fmtShape, type Node, shapeFail } from "../ir.ts";
import { defineOp } from "../registry.ts";
import { mul, scale } from "./elementwise.ts";

/** Layout of adamw's `hyper` input: index of each per-step scalar. bc = bias correction. */
export const ADAMW_HYPER = { lr: 0, bc1: 1, bc2: 2, size: 3 } as const;

export interface AdamWAttrs {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

const isScalar = (x: Node | undefined) => x !== undefined && x.shape.join() === "1" && x.dtype === "f32";

defineOp({
  name: "sumsq",
  infer: (inputs) => {
    const [g, acc] = inputs;
    if (
      inputs.length < 1 || inputs.length > 2 || g.dtype !== "f32" || (inputs.length === 2 && !isScalar(acc))
    ) {
      shapeFail("sumsq", inputs, "one f32 tensor and an optional f32 accumulator [1]");
    }
    return { shape: [1], dtype: "f32" };
  },
  grad: (n, dy, needs) => [
    needs[0] ? mul(n.inputs[0], scale(dy, 2)) : undefined,
    needs[1] ? dy : undefined,
  ],
});

defineOp({
  name: "clip_coef",
  infer: (inputs, attrs) => {
    if (inputs.length !== 1 || !isScalar(inputs[0])) {
      shapeFail("clip_coef", inputs, "one f32 sum of squares [1]");
    }
    const m = attrs.maxNorm;
    if (typeof m !== "number" || !(m > 0) || !Number.isFinite(m)) {
      shapeFail("clip_coef", inputs, `a finite maxNorm > 0 (got ${m})`);
    }
    return { shape: [1], dtype: "f32" };
  },
});

defineOp({
  name: "adamw",
  writes: [0, 2, 3],
  infer: (inputs, attrs) => {
    const [p, g, m, v, hyper, coef] = inputs;
    const what = `(param p, grad g, state m, state v, input hyper [${ADAMW_HYPER.size}], clipCoef [1]?), ` +
      `all f32, p/g/m/v of one shape`;
    if (inputs.length < 5 || inputs.length > 6) shapeFail("adamw", inputs, what);
    if (p.kind !== "param" || p.dtype !== "f32") {
      shapeFail("adamw", inputs, `${what}; p = ${p} is not an f32 param`);
    }
    for (const [name, x] of [["g", g], ["m", m], ["v", v]] as const) {
      if (x.shape.join() !== p.shape.join() || x.dtype !== "f32") {
        shapeFail("adamw", inputs, `${what}; ${name} = ${x} does not match p ${fmtShape(p.shape)}`);
      }
    }
    for (const [name, x] of [["m", m], ["v", v]] as const) {
      if (x.kind !== "state") {
        shapeFail("adamw", inputs, `${what}; ${name} = ${x} is a ${x.kind}, not a state tensor (g.state)`);
      }
    }
    if (m === v) shapeFail("adamw", inputs, `${what}; m and v must be different state tensors`);
    if (hyper.kind !== "input" || hyper.dtype !== "f32" || hyper.shape.join() !== `${ADAMW_HYPER.size}`) {
      shapeFail("adamw", inputs, `${what}; hyper = ${hyper} must be an f32 input node`);
    }
    if (coef !== undefined && !isScalar(coef)) shapeFail("adamw", inputs, `${what}; bad clipCoef ${coef}`);
    const a = attrs as Partial<AdamWAttrs>;
    for (const k of ["beta1", "beta2", "eps", "weightDecay"] as const) {
      if (typeof a[k] !== "number" || !Number.isFinite(a[k])) shapeFail("adamw", inputs, `numeric attr ${k}`);
    }
    if (!(a.beta1! >= 0 && a.beta1! < 1 && a.beta2! >= 0 && a.beta2! < 1)) {
      shapeFail("adamw", inputs, `betas in [0, 1) (got ${a.beta1}, ${a.beta2})`);
    }
    // nothing reads the op's own output; lower() gives `writes` ops no output buffer
    return { shape: [1], dtype: "f32" };
  },
});

/** Σ x² over all elements, plus `acc` when given; shape [1]. */
export function sumsq(x: Node, acc?: Node): Node {
  return x.graph.apply("sumsq", acc ? [x, acc] : [x]);
}

/** torch's clip_grad_norm_ factor min(1, maxNorm / (sqrt(sumSq) + 1e-6)) from a total sum of squares. */
export function clipCoef(sumSq: Node, maxNorm: number): Node {
  return sumSq.graph.apply("clip_coef", [sumSq], { maxNorm });
}

/**
 * One in-place AdamW step for param `p` with gradient `g` and moment states `m`, `v`. Returns the
 * effect node: pass it to compile(outputs, { effects }). Build it after everything that reads `p`.
 */
export function adamw(
  p: Node,
  g: Node,
  m: Node,
  v: Node,
  hyper: Node,
  attrs: AdamWAttrs,
  clip?: Node,
): Node {
  return p.graph.apply("adamw", clip ? [p, g, m, v, hyper, clip] : [p, g, m, v, hyper], { ...attrs });
}
