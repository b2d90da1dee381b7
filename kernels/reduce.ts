// Reductions over one axis. The input is viewed as [OUTER, LEN, INNER] and reduced over LEN.
// Short axes: one thread per output. Long axes: one workgroup per output, threads stride over the
// axis and combine through workgroup memory (so a bias gradient summed over thousands of rows is not
// a single thread's serial loop) — except on software adapters with enough outputs, see below. max writes the argmax (first index on ties) for max_bwd.

import { defineKernel } from "../compiler/ops/registry.ts";
import { type Node, normAxis } from "../compiler/core/ir.ts";
import { foldGroups, grid1d, type LowerCtx, type Lowered, wgslWorkgroupReduce } from "./kernel.ts";

const WG = 64;

function view(x: Node, axis: number) {
  const a = normAxis("reduce", axis, x.rank);
  const outer = x.shape.slice(0, a).reduce((p, d) => p * d, 1);
  const inner = x.shape.slice(a + 1).reduce((p, d) => p * d, 1);
  return { outer, len: x.shape[a], inner };
}

function reduceKernel(n: Node, ctx: LowerCtx, kind: "sum" | "mean" | "max"): Lowered {
  const x = n.inputs[0];
  const { outer, len, inner } = view(x, n.attrs.axis as number);
  const outs = outer * inner;
  const isMax = kind === "max";
  const post = kind === "mean" ? ` / ${len}.0` : "";
  const header = /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
${isMax ? "@group(0) @binding(2) var<storage, read_write> arg: array<i32>;" : ""}
const OUTS: u32 = ${outs}u;
const LEN: u32 = ${len}u;
const INNER: u32 = ${inner}u;
`;
  // combine (acc, idx) with (v, j): for max keep the first maximum
  const step = isMax ? `if (v > acc) { acc = v; best = j; }` : `acc = acc + v;`;
  const init = isMax ? `var acc = -3.4028235e38; var best = 0u;` : `var acc = 0.0;`;
  const write = isMax ? `out[o] = acc; arg[o] = i32(best);` : `out[o] = acc${post};`;
  const bindings = [
    { name: "x", ref: { node: x } },
    { name: "out", ref: { node: n } },
    ...(isMax ? [{ name: "arg", ref: { aux: 0 } }] : []),
  ];
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
  ${write}
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

defineKernel("sum", (n, ctx) => reduceKernel(n, ctx, "sum"));
defineKernel("mean", (n, ctx) => reduceKernel(n, ctx, "mean"));
defineKernel("max", (n, ctx) => reduceKernel(n, ctx, "max"));

// max backward: every input element takes dy where it was the argmax, else 0.
defineKernel("max_bwd", (n, ctx) => {
  const [dy, arg] = n.inputs;
  const { inner, len } = view(n, n.attrs.axis as number);
  const g = grid1d(n.size, 256, ctx);
  const code = /* wgsl */ `
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> arg: array<i32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
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
      bindings: [{ name: "dy", ref: { node: dy } }, { name: "arg", ref: { node: arg } }, {
        name: "dx",
        ref: { node: n },
      }],
      workgroups: g.workgroups,
    }],
  };
});
