// Optimizer kernels.
//   sumsq_fwd:     one workgroup strides over the tensor (or over sumsq_partial's partials) and adds acc.
//   sumsq_partial: for large tensors, up to 256 workgroups each write a partial Σg² to scratch first.
//   clip_coef_fwd: one thread: min(1, maxNorm / (sqrt(total) + 1e-6)).
//   adamw_update:  one thread per element, updating p, m, v in place (see compiler/ops/optim.ts).
// Summation order is fixed (no atomics), so results are deterministic run to run.

import { defineKernel } from "../compiler/registry.ts";
import { f32lit, grid1d, wgslWorkgroupReduce } from "./kernel.ts";
import { ADAMW_HYPER, type AdamWAttrs } from "../compiler/ops/optim.ts";

const WG = 256;
/** Elements per thread above which sumsq splits into partials. */
const PER_THREAD = 16;

/** Σ over the workgroup's threads (every thread gets it); see wgslWorkgroupReduce. */
const WG_SUM = wgslWorkgroupReduce("wg_sum", "f32", WG, (a, b) => `${a} + ${b}`);

defineKernel("sumsq", (n) => {
  const [g, acc] = n.inputs;
  const len = g.size;
  const parts = Math.min(WG, Math.ceil(len / (WG * PER_THREAD)));
  const accDecl = acc ? "@group(0) @binding(2) var<storage, read> acc: array<f32>;" : "";
  const accAdd = acc ? " + acc[0]" : "";
  const finalDispatch = (src: "g" | "parts", count: number) => ({
    label: "sumsq_fwd",
    code: /* wgsl */ `
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
${accDecl}
const LEN: u32 = ${count}u;
${WG_SUM}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) t: u32) {
  var s = 0.0;
  for (var i = t; i < LEN; i += ${WG}u) { let v = src[i]; s += ${src === "g" ? "v * v" : "v"}; }
  let total = wg_sum(t, s);
  if (t == 0u) { out[0] = total${accAdd}; }
}
`,
    bindings: [
      { name: "src", ref: src === "g" ? { node: g } : { scratch: 0 } },
      { name: "out", ref: { node: n } },
      ...(acc ? [{ name: "acc", ref: { node: acc } }] : []),
    ],
    workgroups: [1, 1, 1] as const,
  });
  if (parts <= 1) return { dispatches: [finalDispatch("g", len)] };
  const partial = {
    label: "sumsq_partial",
    code: /* wgsl */ `
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> parts: array<f32>;
const LEN: u32 = ${len}u;
const STRIDE: u32 = ${parts * WG}u;
${WG_SUM}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  var s = 0.0;
  for (var i = wid.x * ${WG}u + t; i < LEN; i += STRIDE) { let v = g[i]; s += v * v; }
  let total = wg_sum(t, s);
  if (t == 0u) { parts[wid.x] = total; }
}
`,
    bindings: [{ name: "g", ref: { node: g } }, { name: "parts", ref: { scratch: 0 } }],
    workgroups: [parts, 1, 1] as const,
  };
  return { scratch: [4 * parts], dispatches: [partial, finalDispatch("parts", parts)] };
});

defineKernel("clip_coef", (n) => ({
  dispatches: [{
    label: "clip_coef_fwd",
    code: /* wgsl */ `
@group(0) @binding(0) var<storage, read> total: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1)
fn main() {
  out[0] = min(1.0, ${f32lit(n.attrs.maxNorm as number)} / (sqrt(total[0]) + 1e-6));
}
`,
    bindings: [{ name: "total", ref: { node: n.inputs[0] } }, { name: "out", ref: { node: n } }],
    workgroups: [1, 1, 1],
  }],
}));

defineKernel("adamw", (n, ctx) => {
  const [p, g, m, v, hyper, coef] = n.inputs;
  const a = n.attrs as unknown as AdamWAttrs;
  const grid = grid1d(p.size, WG, ctx);
  const code = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> p: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> hyper: array<f32>;
${coef ? "@group(0) @binding(5) var<storage, read> coef: array<f32>;" : ""}
const N: u32 = ${p.size}u;
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
  let gr = g[i]${coef ? " * coef[0]" : ""};
  let pd = p[i] * (1.0 - lr * WD);
  let mn = m[i] + ONE_MINUS_B1 * (gr - m[i]); // torch's lerp_(g, 1 − β1)
  let vn = BETA2 * v[i] + ONE_MINUS_B2 * gr * gr;
  m[i] = mn;
  v[i] = vn;
  p[i] = pd - (lr / bc1) * mn / (sqrt(vn) / sqrt(bc2) + EPS);
}
`;
  return {
    dispatches: [{
      label: "adamw_update",
      code,
      bindings: [
        { name: "p", ref: { node: p } },
        { name: "g", ref: { node: g } },
        { name: "m", ref: { node: m } },
        { name: "v", ref: { node: v } },
        { name: "hyper", ref: { node: hyper } },
        ...(coef ? [{ name: "coef", ref: { node: coef } }] : []),
      ],
      workgroups: grid.workgroups,
    }],
  };
});
