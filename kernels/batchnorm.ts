// BatchNorm and dropout kernels (see compiler/ops/batchnorm.ts for the maths).
//   batchnorm_fwd:       training; one workgroup per channel: tree reductions over all rows for the
//                        mean, then Σ(x − mean)² (two passes, more accurate than Σx² − mean²), then
//                        the channel's column of y; saves mean and biased var as aux outputs.
//   batchnorm_eval_fwd:  eval; one thread per element with the running stats.
//   batchnorm_sums:      one workgroup per channel: (Σdy, Σdy·x̂) over all rows.
//   batchnorm_bwd:       training dx, one thread per element from the channel sums (software: one
//                        thread per channel, see below).
//   batchnorm_eval_bwd:  eval dx = dy·w·rstd(running_var), one thread per element.
//   batchnorm_stats_update: one thread per channel, torch's momentum update of the running stats.
//   dropout_fwd:         one thread per element, mask from the (seed, index) hash (also the backward).
// Channel workgroups fold into a 2-D grid (foldGroups) so C may exceed maxWorkgroupsPerDim.
//
// On software adapters (ctx.isSoftware) batchnorm_fwd and batchnorm_sums instead give one *thread* a
// whole channel (column) and have no workgroup memory or barriers: lavapipe runs a barrier as a switch
// between coroutines, so the channel tree reductions cost more than the arithmetic. batchnorm_bwd has
// no barriers, but there too a thread per channel pays: lavapipe scalarises the five per-channel
// gathers (index i % C) of the element-per-thread form, which made it the costliest BatchNorm kernel
// once the other two lost their barriers ([1024, 512]: 31-32 → 13-15 ms net). Adjacent threads
// read adjacent channels of a row, so the column walks stay contiguous across a workgroup. Measured on
// lavapipe in the point-cloud training step (its two BatchNorms, [rows, 128] and [rows, 512] with rows =
// batch·64; per-dispatch profile net of the ~11 ms fixed overhead, noisy): batch 8, batchnorm_fwd
// 59-75 → 11 ms and batchnorm_sums 33-47 → 9 ms; batch 16, fwd 80-107 → 34-43 ms, sums 50-63 → ~19 ms.
// Alone on [512, 512]: fwd 27-54 → 5-11 ms, sums 16-23 → ~4 ms. Both forms sum in a fixed order (no
// atomics), so each is deterministic; they differ from each other only in that order (f32 rounding).

import type { Node, OpNode } from "../compiler/core/ir.ts";
import { DROPOUT_HASH, dropThreshold } from "../compiler/ops/batchnorm.ts";
import {
  f32lit,
  foldGroups,
  grid1d,
  type KernelOf,
  type KernelsFor,
  loadF32,
  type LowerCtx,
  type Lowered,
  WGSL_UNPACK,
  wgslWorkgroupReduce,
} from "./kernel.ts";
import { bind, read, write } from "./bindings.ts";

const WG = 256;
/** Threads per workgroup of the software (channel-per-thread) variants. */
const COL_WG = 64;

function shapeConsts(x: Node): string {
  const c = x.shape[x.rank - 1];
  return `const C: u32 = ${c}u;\nconst ROWS: u32 = ${x.size / c}u;\nconst N: u32 = ${x.size}u;`;
}

/** Threads per channel workgroup: a power of two up to WG, no more than the rows need. */
function colThreads(rows: number, ctx: LowerCtx): number {
  let t = 32;
  while (t < rows && t < WG) t *= 2;
  while (t > ctx.maxInvocations) t /= 2;
  return t;
}

function trainFwd(n: OpNode<{ eps: number }>, ctx: LowerCtx): Lowered {
  const [x, w, b] = n.inputs;
  const c = x.shape[x.rank - 1];
  const wg = colThreads(x.size / c, ctx);
  const grid = foldGroups(c, ctx, "batchnorm_fwd");
  const { wgsl: decls, bindings } = bind({
    x: read(x),
    w: read(w),
    b: read(b),
    out: write(n),
    mean_out: write({ aux: 0 }, "f32"),
    var_out: write({ aux: 1 }, "f32"),
  });
  if (ctx.isSoftware) {
    // one thread per channel, no barriers (see the header)
    const g1 = grid1d(c, COL_WG, ctx);
    const code = /* wgsl */ `
${decls}
${shapeConsts(x)}
const EPS: f32 = ${f32lit(n.attrs.eps)};
${g1.stride}
${WGSL_UNPACK}
@compute @workgroup_size(${COL_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let ch = gid.x + gid.y * GRID_STRIDE;
  if (ch >= C) { return; }
  var s = 0.0;
  for (var r = 0u; r < ROWS; r++) { s += x[r * C + ch]; }
  let mu = s / f32(ROWS);
  var q = 0.0;
  for (var r = 0u; r < ROWS; r++) { let d = x[r * C + ch] - mu; q += d * d; }
  let vr = q / f32(ROWS);
  let scl = inverseSqrt(vr + EPS) * ${loadF32(w.dtype, "w", "ch")};
  let sh = ${loadF32(b.dtype, "b", "ch")};
  for (var r = 0u; r < ROWS; r++) { out[r * C + ch] = (x[r * C + ch] - mu) * scl + sh; }
  mean_out[ch] = mu;
  var_out[ch] = vr;
}
`;
    return { dispatches: [{ label: "batchnorm_fwd", code, bindings, workgroups: g1.workgroups }] };
  }
  const code = /* wgsl */ `
${decls}
${shapeConsts(x)}
const GX: u32 = ${grid.gx}u;
const EPS: f32 = ${f32lit(n.attrs.eps)};
${WGSL_UNPACK}
${wgslWorkgroupReduce("col_sum", "f32", wg, (a, c) => `${a} + ${c}`)}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let ch = wid.x + wid.y * GX;
  if (ch >= C) { return; } // uniform per workgroup
  var s = 0.0;
  for (var r = t; r < ROWS; r += ${wg}u) { s += x[r * C + ch]; }
  let mu = col_sum(t, s) / f32(ROWS);
  var q = 0.0;
  for (var r = t; r < ROWS; r += ${wg}u) { let d = x[r * C + ch] - mu; q += d * d; }
  let vr = col_sum(t, q) / f32(ROWS);
  let scl = inverseSqrt(vr + EPS) * ${loadF32(w.dtype, "w", "ch")};
  let sh = ${loadF32(b.dtype, "b", "ch")};
  for (var r = t; r < ROWS; r += ${wg}u) { out[r * C + ch] = (x[r * C + ch] - mu) * scl + sh; }
  if (t == 0u) {
    mean_out[ch] = mu;
    var_out[ch] = vr;
  }
}
`;
  return { dispatches: [{ label: "batchnorm_fwd", code, bindings, workgroups: grid.workgroups }] };
}

function evalFwd(n: OpNode<{ eps: number }>, ctx: LowerCtx): Lowered {
  const [x, w, b, rm, rv] = n.inputs;
  const grid = grid1d(x.size, WG, ctx);
  const { wgsl: decls, bindings } = bind({
    x: read(x),
    w: read(w),
    b: read(b),
    rm: read(rm),
    rv: read(rv),
    out: write(n),
  });
  const code = /* wgsl */ `
${decls}
${shapeConsts(x)}
const EPS: f32 = ${f32lit(n.attrs.eps)};
${grid.stride}
${WGSL_UNPACK}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_STRIDE;
  if (i >= N) { return; }
  let ch = i % C;
  out[i] = (x[i] - rm[ch]) * inverseSqrt(rv[ch] + EPS) * ${loadF32(w.dtype, "w", "ch")} + ${
    loadF32(b.dtype, "b", "ch")
  };
}
`;
  return { dispatches: [{ label: "batchnorm_eval_fwd", code, bindings, workgroups: grid.workgroups }] };
}

const batchnormSumsKernel: KernelOf<"batchnorm_sums"> = (n, ctx) => {
  const [x, dy, mean, vr] = n.inputs;
  const c = x.shape[x.rank - 1];
  const wg = colThreads(x.size / c, ctx);
  const grid = foldGroups(c, ctx, "batchnorm_sums");
  const { wgsl: decls, bindings } = bind({
    x: read(x),
    dy: read(dy),
    mean: read(mean),
    vr: read(vr),
    sum_dy: write(n),
    sum_dyxh: write({ aux: 0 }, "f32"),
  });
  if (ctx.isSoftware) {
    // one thread per channel, no barriers (see the header)
    const g1 = grid1d(c, COL_WG, ctx);
    const code = /* wgsl */ `
${decls}
${shapeConsts(x)}
const EPS: f32 = ${f32lit(n.attrs.eps)};
${g1.stride}
@compute @workgroup_size(${COL_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let ch = gid.x + gid.y * GRID_STRIDE;
  if (ch >= C) { return; }
  let mu = mean[ch];
  let rs = inverseSqrt(vr[ch] + EPS);
  var acc = vec2f(0.0);
  for (var r = 0u; r < ROWS; r++) {
    let g = dy[r * C + ch];
    acc += vec2f(g, g * (x[r * C + ch] - mu) * rs);
  }
  sum_dy[ch] = acc.x;
  sum_dyxh[ch] = acc.y;
}
`;
    return { dispatches: [{ label: "batchnorm_sums", code, bindings, workgroups: g1.workgroups }] };
  }
  const code = /* wgsl */ `
${decls}
${shapeConsts(x)}
const GX: u32 = ${grid.gx}u;
const EPS: f32 = ${f32lit(n.attrs.eps)};
${wgslWorkgroupReduce("col_sum2", "vec2f", wg, (a, c) => `${a} + ${c}`)}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let ch = wid.x + wid.y * GX;
  if (ch >= C) { return; } // uniform per workgroup
  let mu = mean[ch];
  let rs = inverseSqrt(vr[ch] + EPS);
  var acc = vec2f(0.0);
  for (var r = t; r < ROWS; r += ${wg}u) {
    let g = dy[r * C + ch];
    acc += vec2f(g, g * (x[r * C + ch] - mu) * rs);
  }
  let s = col_sum2(t, acc);
  if (t == 0u) {
    sum_dy[ch] = s.x;
    sum_dyxh[ch] = s.y;
  }
}
`;
  return { dispatches: [{ label: "batchnorm_sums", code, bindings, workgroups: grid.workgroups }] };
};

const batchnormBwdKernel: KernelOf<"batchnorm_bwd"> = (n, ctx) => {
  const [x, dy, mean, vr, w, sdy, sdyxh] = n.inputs;
  const grid = grid1d(x.size, WG, ctx);
  const { wgsl: decls, bindings } = bind({
    x: read(x),
    dy: read(dy),
    mean: read(mean),
    vr: read(vr),
    w: read(w),
    sdy: read(sdy),
    sdyxh: read(sdyxh),
    dx: write(n),
  });
  if (ctx.isSoftware) {
    // one thread per channel: the five per-channel loads and the rsqrt once per channel, not per
    // element (see the header); the per-element expression is the element-per-thread form's
    const g1 = grid1d(x.shape[x.rank - 1], COL_WG, ctx);
    const code = /* wgsl */ `
${decls}
${shapeConsts(x)}
const EPS: f32 = ${f32lit(n.attrs.eps)};
${g1.stride}
${WGSL_UNPACK}
@compute @workgroup_size(${COL_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let ch = gid.x + gid.y * GRID_STRIDE;
  if (ch >= C) { return; }
  let rs = inverseSqrt(vr[ch] + EPS);
  let mu = mean[ch];
  let inv_n = 1.0 / f32(ROWS);
  let wr = ${loadF32(w.dtype, "w", "ch")} * rs;
  let a = sdy[ch] * inv_n;
  let sx = sdyxh[ch];
  for (var r = 0u; r < ROWS; r++) {
    let i = r * C + ch;
    let xh = (x[i] - mu) * rs;
    dx[i] = wr * (dy[i] - a - xh * sx * inv_n);
  }
}
`;
    return { dispatches: [{ label: "batchnorm_bwd", code, bindings, workgroups: g1.workgroups }] };
  }
  const code = /* wgsl */ `
${decls}
${shapeConsts(x)}
const EPS: f32 = ${f32lit(n.attrs.eps)};
${grid.stride}
${WGSL_UNPACK}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_STRIDE;
  if (i >= N) { return; }
  let ch = i % C;
  let rs = inverseSqrt(vr[ch] + EPS);
  let xh = (x[i] - mean[ch]) * rs;
  let inv_n = 1.0 / f32(ROWS);
  dx[i] = ${loadF32(w.dtype, "w", "ch")} * rs * (dy[i] - sdy[ch] * inv_n - xh * sdyxh[ch] * inv_n);
}
`;
  return { dispatches: [{ label: "batchnorm_bwd", code, bindings, workgroups: grid.workgroups }] };
};

const batchnormEvalBwdKernel: KernelOf<"batchnorm_eval_bwd"> = (n, ctx) => {
  const [dy, w, rv] = n.inputs;
  const grid = grid1d(dy.size, WG, ctx);
  const { wgsl: decls, bindings } = bind({
    dy: read(dy),
    w: read(w),
    rv: read(rv),
    dx: write(n),
  });
  const code = /* wgsl */ `
${decls}
${shapeConsts(dy)}
const EPS: f32 = ${f32lit(n.attrs.eps)};
${grid.stride}
${WGSL_UNPACK}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_STRIDE;
  if (i >= N) { return; }
  let ch = i % C;
  dx[i] = dy[i] * ${loadF32(w.dtype, "w", "ch")} * inverseSqrt(rv[ch] + EPS);
}
`;
  return { dispatches: [{ label: "batchnorm_eval_bwd", code, bindings, workgroups: grid.workgroups }] };
};

const batchnormStatsUpdateKernel: KernelOf<"batchnorm_stats_update"> = (n, ctx) => {
  const [rm, rv, mean, vr] = n.inputs;
  const c = rm.size;
  const m = n.attrs.momentum, rows = n.attrs.n;
  const grid = grid1d(c, WG, ctx);
  const { wgsl: decls, bindings } = bind({
    rm: write(rm),
    rv: write(rv),
    mean: read(mean),
    vr: read(vr),
  });
  // 1 − m and the unbiasing factor n/(n − 1) are formed in f64 on the host
  const code = /* wgsl */ `
${decls}
const C: u32 = ${c}u;
const M: f32 = ${f32lit(m)};
const ONE_MINUS_M: f32 = ${f32lit(1 - m)};
const UNBIAS: f32 = ${f32lit(rows / (rows - 1))};
${grid.stride}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_STRIDE;
  if (i >= C) { return; }
  rm[i] = ONE_MINUS_M * rm[i] + M * mean[i];
  rv[i] = ONE_MINUS_M * rv[i] + M * vr[i] * UNBIAS;
}
`;
  return { dispatches: [{ label: "batchnorm_stats_update", code, bindings, workgroups: grid.workgroups }] };
};

/** What a dropout-style mask draws its keep bits from: see dropLowering. */
export interface DropMask {
  /** Extra WGSL constants the key or unit need (after `N`, the element count). */
  consts?: string;
  /** WGSL for the u32 key of the mask, given the seed's key (pcg of seed[0] + seedOffset). */
  key: (seedKey: string) => string;
  /** WGSL for the u32 the element `i` draws its bit for: `i` itself, or its sample. */
  unit: string;
}

/**
 * One thread per element of x (inputs [x, seed]): out = 0 where pcg(pcg(unit) ^ key) is below
 * round(p·2³²) (dropThreshold), else x / (1 − p). pcg is DROPOUT_HASH's PCG hash, as the CPU
 * reference computes it. Dropout draws per element; drop path (kernels/droppath.ts) per sample.
 */
export function dropLowering(label: string, n: Node, p: number, mask: DropMask, ctx: LowerCtx): Lowered {
  const [x, seed] = n.inputs;
  const grid = grid1d(x.size, WG, ctx);
  const { wgsl: decls, bindings } = bind({
    x: read(x),
    seed: read(seed),
    out: write(n),
  });
  const h = DROPOUT_HASH;
  const code = /* wgsl */ `
${decls}
const N: u32 = ${x.size}u;
${mask.consts ? `${mask.consts}\n` : ""}const THRESHOLD: u32 = ${dropThreshold(p)}u;
const SCALE: f32 = ${f32lit(1 / (1 - p))};
${grid.stride}
fn pcg(v: u32) -> u32 {
  let state = v * ${h.lcgMul}u + ${h.lcgAdd}u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * ${h.rxsMul}u;
  return (word >> 22u) ^ word;
}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_STRIDE;
  if (i >= N) { return; }
  let key = ${mask.key(`pcg(bitcast<u32>(seed[0]) + ${h.seedOffset}u)`)};
  let hv = pcg(pcg(${mask.unit}) ^ key);
  out[i] = select(x[i] * SCALE, 0.0, hv < THRESHOLD);
}
`;
  return { dispatches: [{ label, code, bindings, workgroups: grid.workgroups }] };
}

const dropoutKernel: KernelOf<"dropout"> = (n, ctx) =>
  dropLowering("dropout_fwd", n, n.attrs.p, { key: (seedKey) => seedKey, unit: "i" }, ctx);

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const batchnormKernels: KernelsFor<
  | "batchnorm"
  | "batchnorm_sums"
  | "batchnorm_bwd"
  | "batchnorm_eval_bwd"
  | "batchnorm_stats_update"
  | "dropout"
> = {
  batchnorm: (n, ctx) => n.attrs.training ? trainFwd(n, ctx) : evalFwd(n, ctx),
  batchnorm_sums: batchnormSumsKernel,
  batchnorm_bwd: batchnormBwdKernel,
  batchnorm_eval_bwd: batchnormEvalBwdKernel,
  batchnorm_stats_update: batchnormStatsUpdateKernel,
  dropout: dropoutKernel,
};
