// Reductions over one axis. The input is viewed as [OUTER, LEN, INNER] and reduced over LEN.
// Short axes: one thread per output. Long axes: one workgroup per output, threads stride over the
// axis and combine through workgroup memory (so a bias gradient summed over thousands of rows is not
// a single thread's serial loop) — except on software adapters with enough outputs, see below. max writes the argmax (first index on ties) for max_bwd.

import { type Node, normAxis, type OpNode } from "../compiler/core/ir.ts";
import type { AxisAttrs } from "../compiler/ops/attrs.ts";
import {
  foldGroups,
  grid1d,
  type KernelsFor,
  type LowerCtx,
  type Lowered,
  wgslWorkgroupReduce,
} from "./kernel.ts";
import { bind, read, write } from "./bindings.ts";

const WG = 64;

function view(x: Node, axis: number) {
  const a = normAxis("reduce", axis, x.rank);
  const outer = x.shape.slice(0, a).reduce((p, d) => p * d, 1);
  const inner = x.shape.slice(a + 1).reduce((p, d) => p * d, 1);
  return { outer, len: x.shape[a], inner };
}

function reduceKernel(n: OpNode<AxisAttrs>, ctx: LowerCtx, kind: "sum" | "mean" | "max"): Lowered {
  const x = n.inputs[0];
  const { outer, len, inner } = view(x, n.attrs.axis);
  const outs = outer * inner;
  const isMax = kind === "max";
  const post = kind === "mean" ? ` / ${len}.0` : "";
  const io = bind({ x: read(x), out: write(n), arg: isMax && write({ aux: 0 }, "i32") });
  const header = /* wgsl */ `
${io.wgsl}
const OUTS: u32 = ${outs}u;
const LEN: u32 = ${len}u;
const INNER: u32 = ${inner}u;
`;
  // combine (acc, idx) with (v, j): for max keep the first maximum
  const step = isMax ? `if (v > acc) { acc = v; best = j; }` : `acc = acc + v;`;
  const init = isMax ? `var acc = -3.4028235e38; var best = 0u;` : `var acc = 0.0;`;
  const store = isMax ? `out[o] = acc; arg[o] = i32(best);` : `out[o] = acc${post};`;
  const bindings = io.bindings;
  // software adapters: a thread per output whenever there are enough outputs to fill the SIMD lanes,
  // since a workgroup tree reduction costs a barrier per level there (a [272, 192] bias-gradient sum
  // took ~3 ms as 192 workgroup reductions on lavapipe)
  if (len <= WG || (ctx.isSoftware && outs >= 32)) {
    const g = grid1d(outs, WG, ctx);
    const code = header + /* wgsl */ `
${g.stride}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let o = gid.x + gid.y * GRID_STRIDE;
  if (o >= OUTS) { return; }
  let base = (o / INNER) * LEN * INNER + o % INNER;
  ${init}
  for (var j = 0u; j < LEN; j++) {
    let v = x[base + j * INNER];
    ${step}
  }
  ${store}
}
`;
    return { dispatches: [{ label: `${kind}_fwd`, code, bindings, workgroups: g.workgroups }] };
  }
  // workgroup per output: threads stride over the axis, then one tree reduction. max carries
  // (value, index) pairs and keeps the lower index on ties, so the first maximum still wins.
  const f = foldGroups(outs, ctx, `${kind}_fwd`);
  const reduceFn = isMax
    ? /* wgsl */ `
struct MaxArg { v: f32, j: u32 }
fn max_arg(a: MaxArg, b: MaxArg) -> MaxArg {
  if (b.v > a.v || (b.v == a.v && b.j < a.j)) { return b; }
  return a;
}
${wgslWorkgroupReduce("wg_reduce", "MaxArg", WG, (a, b) => `max_arg(${a}, ${b})`)}`
    : wgslWorkgroupReduce("wg_reduce", "f32", WG, (a, b) => `${a} + ${b}`);
  const code = header + /* wgsl */ `
const GX: u32 = ${f.gx}u;
${reduceFn}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let o = wid.x + wid.y * GX;
  let live = o < OUTS; // uniform per workgroup: spare workgroups of the folded grid just idle
  let base = (o / INNER) * LEN * INNER + o % INNER;
  ${init}
  if (live) {
    for (var j = t; j < LEN; j += ${WG}u) {
      let v = x[base + j * INNER];
      ${step}
    }
  }
  let r = wg_reduce(t, ${isMax ? "MaxArg(acc, best)" : "acc"});
  if (t == 0u && live) {
    ${isMax ? "out[o] = r.v; arg[o] = i32(r.j);" : `out[o] = r${post};`}
  }
}
`;
  return { dispatches: [{ label: `${kind}_fwd`, code, bindings, workgroups: f.workgroups }] };
}

// max backward: every input element takes dy where it was the argmax, else 0.
function maxBwd(n: OpNode<{ axis: number }>, ctx: LowerCtx): Lowered {
  const [dy, arg] = n.inputs;
  const { inner, len } = view(n, n.attrs.axis);
  const g = grid1d(n.size, 256, ctx);
  const io = bind({ dy: read(dy), arg: read(arg), dx: write(n) });
  const code = /* wgsl */ `
${io.wgsl}
const N: u32 = ${n.size}u;
const LEN: u32 = ${len}u;
const INNER: u32 = ${inner}u;
${g.stride}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_STRIDE;
  if (i >= N) { return; }
  let inner = i % INNER;
  let j = (i / INNER) % LEN;
  let o = (i / (INNER * LEN)) * INNER + inner;
  dx[i] = select(0.0, dy[o], u32(arg[o]) == j);
}
`;
  return {
    dispatches: [{
      label: "max_bwd",
      code,
      bindings: io.bindings,
      workgroups: g.workgroups,
    }],
  };
}

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const reduceKernels: KernelsFor<"sum" | "mean" | "max" | "max_bwd"> = {
  sum: (n, ctx) => reduceKernel(n, ctx, "sum"),
  mean: (n, ctx) => reduceKernel(n, ctx, "mean"),
  max: (n, ctx) => reduceKernel(n, ctx, "max"),
  max_bwd: maxBwd,
};
