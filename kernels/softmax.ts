// Softmax kernels, one workgroup per row (the last axis), rows folded into a 2-D grid.
//   softmax_fwd: m = max(x), s = Σ exp(x − m), y = exp(x − m)/s (three passes over the row).
//   softmax_bwd: s = Σ dy·y, dx = y·(dy − s).
//
// On software adapters (ctx.isSoftware) both kernels instead give one *thread* a whole row and have no
// workgroup memory or barriers: lavapipe runs a barrier as a switch between coroutines, so the row
// tree reductions cost more than the arithmetic. Measured alone on lavapipe (net of the ~11 ms fixed
// per-dispatch overhead): [272, 272] fwd 12-20 → ~2 ms, bwd 7-13 → ~2 ms; [64, 1000] fwd 5-7 → ~2.5 ms.
// (Few very long rows would leave threads idle; the training jobs' attention has its own kernels.)

import type { Node } from "../compiler/core/ir.ts";
import {
  foldGroups,
  grid1d,
  type KernelsFor,
  type LowerCtx,
  type Lowered,
  rowThreads,
  wgslWorkgroupReduce,
} from "./kernel.ts";
import { bind, read, type ShaderIo, write } from "./bindings.ts";

/** Threads per workgroup of the software (row-per-thread) variants. */
const ROW_WG = 64;

/** The row-per-thread variant (software adapters, see the header): same passes, no barriers. */
function rowPerThread(n: Node, ctx: LowerCtx, backward: boolean): Lowered {
  const d = n.shape[n.rank - 1];
  const rows = n.size / d;
  const g = grid1d(rows, ROW_WG, ctx);
  const io = softmaxIo(n, backward);
  const head = /* wgsl */ `
const ROWS: u32 = ${rows}u;
const D: u32 = ${d}u;
${g.stride}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.x + gid.y * GRID_STRIDE;
  if (row >= ROWS) { return; }
  let base = row * D;`;
  const fwd = /* wgsl */ `
${io.wgsl}
${head}
  var m = -3.4028235e38;
  for (var j = 0u; j < D; j++) { m = max(m, x[base + j]); }
  var s = 0.0;
  for (var j = 0u; j < D; j++) { s += exp(x[base + j] - m); }
  let inv = 1.0 / s;
  for (var j = 0u; j < D; j++) { out[base + j] = exp(x[base + j] - m) * inv; }
}
`;
  const bwd = /* wgsl */ `
${io.wgsl}
${head}
  var s = 0.0;
  for (var j = 0u; j < D; j++) { s += dy[base + j] * y[base + j]; }
  for (var j = 0u; j < D; j++) { dx[base + j] = y[base + j] * (dy[base + j] - s); }
}
`;
  return {
    dispatches: [{
      label: backward ? "softmax_bwd" : "softmax_fwd",
      code: backward ? bwd : fwd,
      bindings: io.bindings,
      workgroups: g.workgroups,
    }],
  };
}

/** Forward: x → out; backward: (y, dy) → dx. */
function softmaxIo(n: Node, backward: boolean): ShaderIo {
  return backward
    ? bind({ y: read(n.inputs[0]), dy: read(n.inputs[1]), dx: write(n) })
    : bind({ x: read(n.inputs[0]), out: write(n) });
}

function rowKernel(n: Node, ctx: LowerCtx, backward: boolean): Lowered {
  if (ctx.isSoftware) return rowPerThread(n, ctx, backward);
  const d = n.shape[n.rank - 1];
  const rows = n.size / d;
  const wg = rowThreads(d, ctx);
  const grid = foldGroups(rows, ctx, backward ? "softmax_bwd" : "softmax_fwd");
  const io = softmaxIo(n, backward);
  const header = /* wgsl */ `
const ROWS: u32 = ${rows}u;
const D: u32 = ${d}u;
const GX: u32 = ${grid.gx}u;
const WG: u32 = ${wg}u;
${wgslWorkgroupReduce("row_sum", "f32", wg, (a, b) => `${a} + ${b}`)}
`;
  const fwd = /* wgsl */ `
${io.wgsl}
${header}
${wgslWorkgroupReduce("row_max", "f32", wg, (a, b) => `max(${a}, ${b})`)}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let row = wid.x + wid.y * GX;
  let live = row < ROWS; // uniform per workgroup: spare workgroups of the folded grid just idle
  let base = row * D;
  var m = -3.4028235e38;
  if (live) { for (var j = t; j < D; j += WG) { m = max(m, x[base + j]); } }
  m = row_max(t, m);
  var s = 0.0;
  if (live) { for (var j = t; j < D; j += WG) { s += exp(x[base + j] - m); } }
  let inv = 1.0 / row_sum(t, s);
  if (!live) { return; }
  for (var j = t; j < D; j += WG) { out[base + j] = exp(x[base + j] - m) * inv; }
}
`;
  const bwd = /* wgsl */ `
${io.wgsl}
${header}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let row = wid.x + wid.y * GX;
  let live = row < ROWS;
  let base = row * D;
  var s = 0.0;
  if (live) { for (var j = t; j < D; j += WG) { s += dy[base + j] * y[base + j]; } }
  s = row_sum(t, s);
  if (!live) { return; }
  for (var j = t; j < D; j += WG) { dx[base + j] = y[base + j] * (dy[base + j] - s); }
}
`;
  return {
    dispatches: [{
      label: backward ? "softmax_bwd" : "softmax_fwd",
      code: backward ? bwd : fwd,
      bindings: io.bindings,
      workgroups: grid.workgroups,
    }],
  };
}

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const softmaxKernels: KernelsFor<"softmax" | "softmax_bwd"> = {
  softmax: (n, ctx) => rowKernel(n, ctx, false),
  softmax_bwd: (n, ctx) => rowKernel(n, ctx, true),
};
