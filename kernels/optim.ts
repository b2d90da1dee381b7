// Optimizer kernels.
//   sumsq_fwd:     Σg² (+ acc) by kernels/reduce_all.ts: one workgroup strides over the tensor (or over
//                  sumsq_partial's partials: for large tensors up to 256 workgroups each write one first).
//   clip_coef_fwd: one thread: min(1, maxNorm / (sqrt(total) + 1e-6)).
//   adamw_update:  one thread per element, updating p, m, v in place (see compiler/ops/optim.ts).
//   sumsq_span and adamw_fused (label adamw_fused) do the same over arenas (a { span } binding per
//   role): one pass over every gradient / one thread per element of every param. The arenas' zero
//   padding stays zero: g = m = v = p = 0 there gives m = v = 0 and p ← 0 − lr·0/(0 + eps) = 0
//   (eps > 0; with eps = 0 the padding turns NaN, which no real element ever reads).
// Summation order is fixed (no atomics), so results are deterministic run to run.

import {
  type BufRef,
  f32lit,
  grid1d,
  type KernelOf,
  type KernelsFor,
  type LowerCtx,
  type Lowered,
  spanLayout,
} from "./kernel.ts";
import { ADAMW_HYPER, type AdamWAttrs, adamwFusedParts } from "../compiler/ops/optim.ts";
import { bind, read, write } from "./bindings.ts";
import { type ReduceAll, reduceAllLowering } from "./reduce_all.ts";
import type { Node } from "../compiler/core/ir.ts";

const WG = 256;

/** Σ g² (kernels/reduce_all.ts). */
const SUM_OF_SQUARES: ReduceAll = {
  label: "sumsq_fwd",
  partialLabel: "sumsq_partial",
  type: "f32",
  identity: "0.0",
  map: (v) => `${v} * ${v}`,
  combine: (a, b) => `${a} + ${b}`,
};

const sumsqSpanKernel: KernelOf<"sumsq_span"> = (n) => {
  const count = n.attrs.count;
  const xs = n.inputs.slice(0, count);
  return reduceAllLowering(n, { span: xs }, spanLayout(xs).bytes / 4, n.inputs[count], SUM_OF_SQUARES);
};

const clipCoefKernel: KernelOf<"clip_coef"> = (n) => {
  const io = bind({ total: read(n.inputs[0]), out: write(n) });
  return {
    dispatches: [{
      label: "clip_coef_fwd",
      code: /* wgsl */ `
${io.wgsl}
@compute @workgroup_size(1)
fn main() {
  out[0] = min(1.0, ${f32lit(n.attrs.maxNorm)} / (sqrt(total[0]) + 1e-6));
}
`,
      bindings: io.bindings,
      workgroups: [1, 1, 1],
    }],
  };
};

/**
 * One AdamW step per element over `len` elements of p, g, m, v (each a node or an arena span).
 * Elements below `decayEnd` get weight decay `a.weightDecay`, the others none.
 */
function adamwLowering(
  label: string,
  refs: { p: BufRef; g: BufRef; m: BufRef; v: BufRef; hyper: Node; coef?: Node },
  len: number,
  decayEnd: number,
  a: AdamWAttrs,
  ctx: LowerCtx,
): Lowered {
  const grid = grid1d(len, WG, ctx);
  const wd = decayEnd >= len ? "WD" : decayEnd <= 0 ? "0.0" : `select(0.0, WD, i < ${decayEnd}u)`;
  const io = bind({
    p: write(refs.p, "f32"),
    g: read(refs.g, "f32"),
    m: write(refs.m, "f32"),
    v: write(refs.v, "f32"),
    hyper: read(refs.hyper),
    coef: refs.coef && read(refs.coef),
  });
  const code = /* wgsl */ `
${io.wgsl}
const N: u32 = ${len}u;
// 1 − β is formed in f64 on the host, as torch does: 1 − f32(0.999) would be off by 1e-5 relative
const ONE_MINUS_B1: f32 = ${f32lit(1 - a.beta1)};
const BETA2: f32 = ${f32lit(a.beta2)};
const ONE_MINUS_B2: f32 = ${f32lit(1 - a.beta2)};
const EPS: f32 = ${f32lit(a.eps)};
const WD: f32 = ${f32lit(a.weightDecay)};
${grid.stride}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_STRIDE;
  if (i >= N) { return; }
  let lr = hyper[${ADAMW_HYPER.lr}];
  let bc1 = hyper[${ADAMW_HYPER.bc1}];
  let bc2 = hyper[${ADAMW_HYPER.bc2}];
  let gr = g[i]${refs.coef ? " * coef[0]" : ""};
  let pd = p[i] * (1.0 - lr * ${wd});
  let mn = m[i] + ONE_MINUS_B1 * (gr - m[i]); // torch's lerp_(g, 1 − β1)
  let vn = BETA2 * v[i] + ONE_MINUS_B2 * gr * gr;
  m[i] = mn;
  v[i] = vn;
  p[i] = pd - (lr / bc1) * mn / (sqrt(vn) / sqrt(bc2) + EPS);
}
`;
  return {
    dispatches: [{
      label,
      code,
      bindings: io.bindings,
      workgroups: grid.workgroups,
    }],
  };
}

const adamwKernel: KernelOf<"adamw"> = (n, ctx) => {
  const [p, g, m, v, hyper, coef] = n.inputs;
  const refs = { p: { node: p }, g: { node: g }, m: { node: m }, v: { node: v }, hyper, coef };
  return adamwLowering("adamw_update", refs, p.size, p.size, n.attrs, ctx);
};

// adamw_fused: p, g, m, v arenas share one layout (same shapes in the same order), so element i
// of each belongs to the same param; the decayed params come first.
const adamwFusedKernel: KernelOf<"adamw_fused"> = (n, ctx) => {
  const { params, grads, ms, vs, hyper, coef } = adamwFusedParts(n.inputs);
  const a = n.attrs;
  const layout = spanLayout(params);
  const len = layout.bytes / 4;
  const decayEnd = a.decayed < params.length ? layout.offsets[a.decayed] / 4 : len;
  const refs = { p: { span: params }, g: { span: grads }, m: { span: ms }, v: { span: vs }, hyper, coef };
  return adamwLowering("adamw_fused", refs, len, decayEnd, a, ctx);
};

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const optimKernels: KernelsFor<"sumsq" | "sumsq_span" | "clip_coef" | "adamw" | "adamw_fused"> = {
  sumsq: (n) => reduceAllLowering(n, { node: n.inputs[0] }, n.inputs[0].size, n.inputs[1], SUM_OF_SQUARES),
  sumsq_span: sumsqSpanKernel,
  clip_coef: clipCoefKernel,
  adamw: adamwKernel,
  adamw_fused: adamwFusedKernel,
};
