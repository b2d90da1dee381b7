// Softmax kernels, one workgroup per row (the last axis), rows folded into a 2-D grid.
//   softmax_fwd: m = max(x), s = Σ exp(x − m), y = exp(x − m)/s (three passes over the row).
//   softmax_bwd: s = Σ dy·y, dx = y·(dy − s).

import { defineKernel } from "../compiler/registry.ts";
import type { Node } from "../compiler/ir.ts";
import { foldGroups, type LowerCtx, type Lowered, rowThreads, wgslWorkgroupReduce } from "./kernel.ts";

function rowKernel(n: Node, ctx: LowerCtx, backward: boolean): Lowered {
  const d = n.shape[n.rank - 1];
  const rows = n.size / d;
  const wg = rowThreads(d, ctx);
  const grid = foldGroups(rows, ctx, backward ? "softmax_bwd" : "softmax_fwd");
  const header = /* wgsl */ `
const ROWS: u32 = ${rows}u;
const D: u32 = ${d}u;
const GX: u32 = ${grid.gx}u;
const WG: u32 = ${wg}u;
${wgslWorkgroupReduce("row_sum", "f32", wg, (a, b) => `${a} + ${b}`)}
`;
  const fwd = /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
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
@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
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
  const bindings = backward
    ? [{ name: "y", ref: { node: n.inputs[0] } }, { name: "dy", ref: { node: n.inputs[1] } }, {
      name: "dx",
      ref: { node: n },
    }]
    : [{ name: "x", ref: { node: n.inputs[0] } }, { name: "out", ref: { node: n } }];
  return {
    dispatches: [{
      label: backward ? "softmax_bwd" : "softmax_fwd",
      code: backward ? bwd : fwd,
      bindings,
      workgroups: grid.workgroups,
    }],
  };
}

defineKernel("softmax", (n, ctx) => rowKernel(n, ctx, false));
defineKernel("softmax_bwd", (n, ctx) => rowKernel(n, ctx, true));
