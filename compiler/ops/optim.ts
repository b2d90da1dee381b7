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
//
// The fused forms update or measure many tensors with one binding per role, over arenas (OpDef.spans:
// the tensors back to back in one buffer at 256-byte-aligned offsets, zero padding between them;
// compiler/lower.ts):
// sumsq_span(x0..xn-1, acc?) → [1]: Σ over all xi of xi² (+ acc); spans [x0..xn-1]. No gradient.
// adamw_fused(p0..pk-1, g0..gk-1, m0..mk-1, v0..vk-1, hyper, clipCoef?): adamw on k params in one
//   dispatch; writes every p, m, v (OpDef.writes as a function of the node); spans [p…], [g…], [m…],
//   [v…]. The first `decayed` params get `weightDecay`, the rest none (the optimizer orders them so),
//   which keeps one constant boundary instead of a per-element table.
// The user-facing optimizer (state, hyper input, clipping, per-step host update) is nn/optim.ts.

import { fmtShape, type Node, shapeFail } from "../core/ir.ts";
import { type AdamWAttrs, type AdamWFusedAttrs, defineOp } from "./attrs.ts";
import { mul, scale } from "./elementwise.ts";

export type { AdamWAttrs, AdamWFusedAttrs } from "./attrs.ts";

/** Layout of adamw's `hyper` input: index of each per-step scalar. bc = bias correction. */
export const ADAMW_HYPER = { lr: 0, bc1: 1, bc2: 2, size: 3 } as const;

const isScalar = (x: Node | undefined) => x !== undefined && x.shape.join() === "1" && x.dtype === "f32";

const sumsqOp = defineOp("sumsq", {
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

const clipCoefOp = defineOp("clip_coef", {
  grad: "none",
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

/** Checks one (p, g, m, v) group of an AdamW update; `what` describes the op's inputs. */
function checkGroup(op: string, inputs: readonly Node[], what: string, p: Node, g: Node, m: Node, v: Node) {
  if (p.kind !== "param" || p.dtype !== "f32") {
    shapeFail(op, inputs, `${what}; p = ${p} is not an f32 param`);
  }
  for (const [name, x] of [["g", g], ["m", m], ["v", v]] as const) {
    if (x.shape.join() !== p.shape.join() || x.dtype !== "f32") {
      shapeFail(op, inputs, `${what}; ${name} = ${x} does not match p ${fmtShape(p.shape)}`);
    }
  }
  for (const [name, x] of [["m", m], ["v", v]] as const) {
    if (x.kind !== "state") {
      shapeFail(op, inputs, `${what}; ${name} = ${x} is a ${x.kind}, not a state tensor (g.state)`);
    }
  }
  if (m === v) shapeFail(op, inputs, `${what}; m and v must be different state tensors`);
}

/** Checks the inputs and attrs an AdamW update shares across params. */
function checkShared(
  op: string,
  inputs: readonly Node[],
  what: string,
  hyper: Node,
  coef: Node | undefined,
  attrs: AdamWAttrs,
) {
  if (hyper.kind !== "input" || hyper.dtype !== "f32" || hyper.shape.join() !== `${ADAMW_HYPER.size}`) {
    shapeFail(op, inputs, `${what}; hyper = ${hyper} must be an f32 input node`);
  }
  if (coef !== undefined && !isScalar(coef)) shapeFail(op, inputs, `${what}; bad clipCoef ${coef}`);
  // checked at run time too: attrs may come from untyped callers (a checkpoint, plain JavaScript)
  for (const k of ["beta1", "beta2", "eps", "weightDecay"] as const) {
    if (typeof attrs[k] !== "number" || !Number.isFinite(attrs[k])) {
      shapeFail(op, inputs, `numeric attr ${k}`);
    }
  }
  const { beta1, beta2 } = attrs;
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1)) {
    shapeFail(op, inputs, `betas in [0, 1) (got ${beta1}, ${beta2})`);
  }
}

const adamwOp = defineOp("adamw", {
  grad: "none",
  writes: [0, 2, 3],
  infer: (inputs, attrs) => {
    const [p, g, m, v, hyper, coef] = inputs;
    const what = `(param p, grad g, state m, state v, input hyper [${ADAMW_HYPER.size}], clipCoef [1]?), ` +
      `all f32, p/g/m/v of one shape`;
    if (inputs.length < 5 || inputs.length > 6) shapeFail("adamw", inputs, what);
    checkGroup("adamw", inputs, what, p, g, m, v);
    checkShared("adamw", inputs, what, hyper, coef, attrs);
    // nothing reads the op's own output; lower() gives `writes` ops no output buffer
    return { shape: [1], dtype: "f32" };
  },
});

const sumsqSpanOp = defineOp("sumsq_span", {
  grad: "none",
  spans: (n) => [n.inputs.slice(0, n.attrs.count)],
  infer: (inputs, attrs) => {
    const count = attrs.count;
    const what = "f32 tensors x0..x(count-1) (count >= 1) and an optional f32 accumulator [1]";
    if (typeof count !== "number" || !Number.isInteger(count) || count < 1) {
      shapeFail("sumsq_span", inputs, `${what}; count = ${count}`);
    }
    const acc = inputs[count];
    if (inputs.length < count || inputs.length > count + 1 || (acc !== undefined && !isScalar(acc))) {
      shapeFail("sumsq_span", inputs, what);
    }
    if (inputs.slice(0, count).some((x) => x.dtype !== "f32")) shapeFail("sumsq_span", inputs, what);
    return { shape: [1], dtype: "f32" };
  },
});

/** The inputs of an adamw_fused node by role. */
export interface AdamWFusedParts {
  params: Node[];
  grads: Node[];
  ms: Node[];
  vs: Node[];
  hyper: Node;
  coef: Node | undefined;
}

/** Number of params of an adamw_fused node: 4 inputs each, then hyper and an optional clipCoef. */
function fusedCount(inputs: readonly Node[]): number {
  return Math.floor(inputs.length / 4);
}

/** The roles of an adamw_fused node's inputs (node.inputs). */
export function adamwFusedParts(x: readonly Node[]): AdamWFusedParts {
  const k = fusedCount(x);
  return {
    params: x.slice(0, k),
    grads: x.slice(k, 2 * k),
    ms: x.slice(2 * k, 3 * k),
    vs: x.slice(3 * k, 4 * k),
    hyper: x[4 * k],
    coef: x[4 * k + 1] as Node | undefined,
  };
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

const adamwFusedOp = defineOp("adamw_fused", {
  grad: "none",
  // the params and both moments of each of its k params
  writes: (n) => {
    const k = fusedCount(n.inputs);
    return [...range(0, k), ...range(2 * k, 4 * k)];
  },
  spans: (n) => {
    const { params, grads, ms, vs } = adamwFusedParts(n.inputs);
    return [params, grads, ms, vs];
  },
  infer: (inputs, attrs) => {
    const k = fusedCount(inputs);
    const what = `(params p0..p${k - 1}, their grads, states m, states v, input hyper ` +
      `[${ADAMW_HYPER.size}], clipCoef [1]?), all f32, each group of one shape`;
    if (k < 1 || inputs.length < 4 * k + 1 || inputs.length > 4 * k + 2) {
      shapeFail("adamw_fused", inputs, what);
    }
    const { params, grads, ms, vs, hyper, coef } = adamwFusedParts(inputs);
    for (let i = 0; i < k; i++) checkGroup("adamw_fused", inputs, what, params[i], grads[i], ms[i], vs[i]);
    checkShared("adamw_fused", inputs, what, hyper, coef, attrs);
    const d = attrs.decayed;
    if (typeof d !== "number" || !Number.isInteger(d) || d < 0 || d > k) {
      shapeFail("adamw_fused", inputs, `attr decayed in 0..${k} (got ${d})`);
    }
    return { shape: [1], dtype: "f32" };
  },
});

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const optimOps = {
  sumsq: sumsqOp,
  sumsq_span: sumsqSpanOp,
  clip_coef: clipCoefOp,
  adamw: adamwOp,
  adamw_fused: adamwFusedOp,
};

/** Σ x² over all elements, plus `acc` when given; shape [1]. */
export function sumsq(x: Node, acc?: Node): Node {
  return x.graph.apply(sumsqOp, acc ? [x, acc] : [x], {});
}

/** Σ over all `xs` of x² (+ `acc`), with the xs stored in one arena: one pass over all of them. */
export function sumsqSpan(xs: readonly Node[], acc?: Node): Node {
  return xs[0].graph.apply(sumsqSpanOp, acc ? [...xs, acc] : [...xs], { count: xs.length });
}

/** torch's clip_grad_norm_ factor min(1, maxNorm / (sqrt(sumSq) + 1e-6)) from a total sum of squares. */
export function clipCoef(sumSq: Node, maxNorm: number): Node {
  return sumSq.graph.apply(clipCoefOp, [sumSq], { maxNorm });
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
  return p.graph.apply(adamwOp, clip ? [p, g, m, v, hyper, clip] : [p, g, m, v, hyper], { ...attrs });
}

/**
 * One in-place AdamW step for all `params` at once (one dispatch over arenas of the params, their
 * gradients, m and v). The first `attrs.decayed` params get weight decay, the rest none.
 */
export function adamwFused(
  params: readonly Node[],
  grads: readonly Node[],
  ms: readonly Node[],
  vs: readonly Node[],
  hyper: Node,
  attrs: AdamWFusedAttrs,
  clip?: Node,
): Node {
  const k = params.length;
  if (!k || grads.length !== k || ms.length !== k || vs.length !== k) {
    throw new Error(`adamwFused: ${k} params, ${grads.length} grads, ${ms.length} m, ${vs.length} v`);
  }
  const inputs = [...params, ...grads, ...ms, ...vs, hyper, ...(clip ? [clip] : [])];
  return params[0].graph.apply(adamwFusedOp, inputs, { ...attrs });
}
