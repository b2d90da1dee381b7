// Norm kernels, one workgroup per row (row = all of the last axis).
//   layernorm_fwd / rmsnorm_fwd: row statistics by workgroup tree reductions (layernorm: two passes,
//     mean then Σ(x − mean)², which is more accurate than Σx² − mean²), then the normalised row;
//     writes the statistics (mean, rstd) as aux outputs for the backward. When every reader of the
//     output normalises on the fly (a matmul prologue, kernels/prologue.ts), the `statsOnly` form
//     (label <kind>_stats) writes just the statistics: no `out` binding, no normalised row.
//   layernorm_bwd / rmsnorm_bwd: one fused reduction of (Σg, Σg·x̂) per row, then dx.
//   norm_wgrad: Σ dy·x̂ over blocks of rows, one workgroup per (64 columns × block of rows), so the
//     weight gradient of a long [rows, D] tensor is parallel over rows too (the sum op finishes it).
// Rows map to workgroups (x, y) folded to stay within maxWorkgroupsPerDim (rows can exceed 65535).
//
// On software adapters (ctx.isSoftware) each kernel instead gives one *thread* a whole row (or, for
// norm_wgrad, a column of a row block) and has no workgroup memory or barriers: lavapipe runs a
// barrier as a switch between coroutines, so the tree reductions cost more than the arithmetic
// (layernorm_fwd of 272×192 took ~22 ms there, the row-per-thread form ~1 ms).

import type { OpNode } from "../compiler/core/ir.ts";
import type { NormAttrs } from "../compiler/ops/attrs.ts";
import {
  f32lit,
  foldGroups,
  grid1d,
  type KernelsFor,
  loadF32,
  type LowerCtx,
  type Lowered,
  rowThreads,
  WGSL_UNPACK,
  wgslWorkgroupReduce,
} from "./kernel.ts";
import { bind, read, write } from "./bindings.ts";

type Kind = "layernorm" | "rmsnorm";

/** Threads per workgroup of the software (row-per-thread) variants. */
const ROW_WG = 64;

function normFwd(n: OpNode<NormAttrs>, ctx: LowerCtx, kind: Kind, statsOnly = false): Lowered {
  const [x] = n.inputs;
  const d = x.shape[x.rank - 1];
  const rows = x.size / d;
  const w = n.attrs.weight ? n.inputs[1] : undefined;
  const b = n.attrs.bias ? n.inputs[w ? 2 : 1] : undefined;
  const wg = rowThreads(d, ctx);
  const grid = foldGroups(rows, ctx, `${kind}_fwd`);
  const layer = kind === "layernorm";
  const io = bind({
    x: read(x),
    // the statistics alone need neither the affine parameters nor `out`
    w: w && !statsOnly && read(w),
    b: b && !statsOnly && read(b),
    out: !statsOnly && write(n),
    mean_out: layer && write({ aux: 0 }, "f32"),
    rstd_out: write({ aux: layer ? 1 : 0 }, "f32"),
  });
  let y = "v";
  if (w) y = `${y} * ${loadF32(w.dtype, "w", "j")}`;
  if (b) y = `${y} + ${loadF32(b.dtype, "b", "j")}`;
  const bindings = io.bindings;
  const label = statsOnly ? `${kind}_stats` : `${kind}_fwd`;
  if (ctx.isSoftware) {
    // one thread per row, no barriers (see the header)
    const g1 = grid1d(rows, ROW_WG, ctx);
    const code = /* wgsl */ `
${io.wgsl}
const ROWS: u32 = ${rows}u;
const D: u32 = ${d}u;
const EPS: f32 = ${f32lit(n.attrs.eps)};
${g1.stride}
${WGSL_UNPACK}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.x + gid.y * GRID_STRIDE;
  if (row >= ROWS) { return; }
  let base = row * D;
  var mu = 0.0;
  ${layer ? "for (var j = 0u; j < D; j++) { mu += x[base + j]; }\n  mu = mu / f32(D);" : ""}
  var q = 0.0;
  for (var j = 0u; j < D; j++) { let c = x[base + j] - mu; q += c * c; }
  let rstd = inverseSqrt(q / f32(D) + EPS);
  ${
      statsOnly ? "" : `for (var j = 0u; j < D; j++) {
    let v = (x[base + j] - mu) * rstd;
    out[base + j] = ${y};
  }`
    }
  ${layer ? "mean_out[row] = mu;" : ""}
  rstd_out[row] = rstd;
}
`;
    return { dispatches: [{ label, code, bindings, workgroups: g1.workgroups }] };
  }
  const code = /* wgsl */ `
${io.wgsl}
const ROWS: u32 = ${rows}u;
const D: u32 = ${d}u;
const GX: u32 = ${grid.gx}u;
const WG: u32 = ${wg}u;
const EPS: f32 = ${f32lit(n.attrs.eps)};
${WGSL_UNPACK}
${wgslWorkgroupReduce("row_sum", "f32", wg, (a, c) => `${a} + ${c}`)}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let row = wid.x + wid.y * GX;
  let live = row < ROWS; // uniform per workgroup: spare workgroups of the folded grid just idle
  let base = row * D;
  var mu = 0.0;
  ${
    layer
      ? `var s = 0.0;
  if (live) { for (var j = t; j < D; j += WG) { s += x[base + j]; } }
  mu = row_sum(t, s) / f32(D);`
      : ""
  }
  var q = 0.0;
  if (live) { for (var j = t; j < D; j += WG) { let c = x[base + j] - mu; q += c * c; } }
  let rstd = inverseSqrt(row_sum(t, q) / f32(D) + EPS);
  if (!live) { return; }
  ${
    statsOnly ? "" : `for (var j = t; j < D; j += WG) {
    let v = (x[base + j] - mu) * rstd;
    out[base + j] = ${y};
  }`
  }
  if (t == 0u) {
    ${layer ? "mean_out[row] = mu;" : ""}
    rstd_out[row] = rstd;
  }
}
`;
  return { dispatches: [{ label, code, bindings, workgroups: grid.workgroups }] };
}

function normBwd(n: OpNode<{ weight: boolean }>, ctx: LowerCtx, kind: Kind): Lowered {
  const layer = kind === "layernorm";
  const [x, dy] = n.inputs;
  const mean = layer ? n.inputs[2] : undefined;
  const rstd = n.inputs[layer ? 3 : 2];
  const w = n.attrs.weight ? n.inputs[layer ? 4 : 3] : undefined;
  const d = x.shape[x.rank - 1];
  const rows = x.size / d;
  const wg = rowThreads(d, ctx);
  const grid = foldGroups(rows, ctx, `${kind}_bwd`);
  const io = bind({
    x: read(x),
    dy: read(dy),
    mean: mean && read(mean),
    rstd: read(rstd),
    w: w && read(w),
    dx: write(n),
  });
  const g = w ? `dy[base + j] * ${loadF32(w.dtype, "w", "j")}` : "dy[base + j]";
  const bindings = io.bindings;
  if (ctx.isSoftware) {
    const g1 = grid1d(rows, ROW_WG, ctx);
    const code = /* wgsl */ `
${io.wgsl}
const ROWS: u32 = ${rows}u;
const D: u32 = ${d}u;
${g1.stride}
${WGSL_UNPACK}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.x + gid.y * GRID_STRIDE;
  if (row >= ROWS) { return; }
  let base = row * D;
  let mu = ${mean ? "mean[row]" : "0.0"};
  let r = rstd[row];
  var acc = vec2f(0.0);
  for (var j = 0u; j < D; j++) {
    let g = ${g};
    acc += vec2f(g, g * (x[base + j] - mu) * r);
  }
  let m = acc / f32(D);
  for (var j = 0u; j < D; j++) {
    let g = ${g};
    let xh = (x[base + j] - mu) * r;
    dx[base + j] = r * (g${layer ? " - m.x" : ""} - xh * m.y);
  }
}
`;
    return { dispatches: [{ label: `${kind}_bwd`, code, bindings, workgroups: g1.workgroups }] };
  }
  const code = /* wgsl */ `
${io.wgsl}
const ROWS: u32 = ${rows}u;
const D: u32 = ${d}u;
const GX: u32 = ${grid.gx}u;
const WG: u32 = ${wg}u;
${WGSL_UNPACK}
${wgslWorkgroupReduce("row_sum2", "vec2f", wg, (a, c) => `${a} + ${c}`)}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let row = wid.x + wid.y * GX;
  let live = row < ROWS;
  let base = row * D;
  var mu = 0.0;
  var r = 0.0;
  var acc = vec2f(0.0);
  if (live) {
    ${mean ? "mu = mean[row];" : ""}
    r = rstd[row];
    for (var j = t; j < D; j += WG) {
      let g = ${g};
      acc += vec2f(g, g * (x[base + j] - mu) * r);
    }
  }
  // (mean(g), mean(g·x̂)) over the row
  let m = row_sum2(t, acc) / f32(D);
  if (!live) { return; }
  for (var j = t; j < D; j += WG) {
    let g = ${g};
    let xh = (x[base + j] - mu) * r;
    dx[base + j] = r * (g${layer ? " - m.x" : ""} - xh * m.y);
  }
}
`;
  return { dispatches: [{ label: `${kind}_bwd`, code, bindings, workgroups: grid.workgroups }] };
}

// Weight gradient partials: workgroup (64 columns × 4 row lanes) per (column block, row block).
const WCOLS = 64, WLANES = 4;
function normWgrad(n: OpNode<{ rowsPerBlock: number }>, ctx: LowerCtx): Lowered {
  const [x, dy, rstd, mean] = n.inputs;
  const d = x.shape[x.rank - 1];
  const rows = x.size / d;
  const rpb = n.attrs.rowsPerBlock;
  const blocks = n.shape[0];
  const colBlocks = Math.ceil(d / WCOLS);
  const grid = foldGroups(colBlocks * blocks, ctx, "norm_wgrad");
  const io = bind({ x: read(x), dy: read(dy), rstd: read(rstd), mean: mean && read(mean), out: write(n) });
  const bindings = io.bindings;
  if (ctx.isSoftware) {
    // one thread per (column, block of rows); consecutive threads take consecutive columns
    const g1 = grid1d(d * blocks, ROW_WG, ctx);
    const code = /* wgsl */ `
${io.wgsl}
const ROWS: u32 = ${rows}u;
const D: u32 = ${d}u;
const RPB: u32 = ${rpb}u;
const TASKS: u32 = ${d * blocks}u;
${g1.stride}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let task = gid.x + gid.y * GRID_STRIDE;
  if (task >= TASKS) { return; }
  let col = task % D;
  let blk = task / D;
  var acc = 0.0;
  for (var row = blk * RPB; row < min(ROWS, (blk + 1u) * RPB); row++) {
    acc += dy[row * D + col] * (x[row * D + col]${mean ? " - mean[row]" : ""}) * rstd[row];
  }
  out[blk * D + col] = acc;
}
`;
    return { dispatches: [{ label: "norm_wgrad", code, bindings, workgroups: g1.workgroups }] };
  }
  const code = /* wgsl */ `
${io.wgsl}
const ROWS: u32 = ${rows}u;
const D: u32 = ${d}u;
const RPB: u32 = ${rpb}u;
const COL_BLOCKS: u32 = ${colBlocks}u;
const TASKS: u32 = ${colBlocks * blocks}u;
const GX: u32 = ${grid.gx}u;
var<workgroup> part: array<f32, ${WCOLS * WLANES}>;
@compute @workgroup_size(${WCOLS}, ${WLANES})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let task = wid.x + wid.y * GX;
  let col = (task % COL_BLOCKS) * ${WCOLS}u + lid.x;
  let blk = task / COL_BLOCKS;
  let live = task < TASKS && col < D;
  var acc = 0.0;
  if (live) {
    let end = min(ROWS, (blk + 1u) * RPB);
    for (var row = blk * RPB + lid.y; row < end; row += ${WLANES}u) {
      let xh = (x[row * D + col]${mean ? " - mean[row]" : ""}) * rstd[row];
      acc += dy[row * D + col] * xh;
    }
  }
  part[lid.y * ${WCOLS}u + lid.x] = acc;
  workgroupBarrier();
  if (live && lid.y == 0u) {
    var s = 0.0;
    for (var k = 0u; k < ${WLANES}u; k++) { s += part[k * ${WCOLS}u + lid.x]; }
    out[blk * D + col] = s;
  }
}
`;
  return { dispatches: [{ label: "norm_wgrad", code, bindings, workgroups: grid.workgroups }] };
}

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const normKernels: KernelsFor<
  "layernorm" | "rmsnorm" | "layernorm_bwd" | "rmsnorm_bwd" | "norm_wgrad"
> = {
  layernorm: (n, ctx, _e, _i, extra) => normFwd(n, ctx, "layernorm", extra?.statsOnly),
  rmsnorm: (n, ctx, _e, _i, extra) => normFwd(n, ctx, "rmsnorm", extra?.statsOnly),
  layernorm_bwd: (n, ctx) => normBwd(n, ctx, "layernorm"),
  rmsnorm_bwd: (n, ctx) => normBwd(n, ctx, "rmsnorm"),
  norm_wgrad: normWgrad,
};
