// Cross-entropy kernels (hard labels, and soft targets at the end of the file).
//   cross_entropy_fwd:  one workgroup per row: row max, then Σexp(x−max) and Σ(x−max) in one pass;
//                       writes the row's loss to scratch and its log-sum-exp to the aux output.
//   cross_entropy_mean: one workgroup sums the N row losses (fixed order, deterministic) → out[0].
//   cross_entropy_bwd:  one thread per logit: (exp(x − lse) − target) · dy / N.
// Smoothing enters only through two constants: the target weight of the label (ON) and of every other
// class (OFF); Σ target = 1 in both modes, so the row loss is lse − OFF·Σx − (ON−OFF)·x_label, which
// is computed on max-shifted values to avoid cancellation.
// A label outside [0, C) is never used as an index: its row gets NaN (loss and gradient).
//
// On software adapters (ctx.isSoftware) cross_entropy_fwd instead gives one *thread* a whole row and
// cross_entropy_mean is one thread summing the rows in index order: no workgroup memory or barriers,
// since lavapipe runs a barrier as a switch between coroutines. Measured alone on lavapipe (net of the
// ~11 ms fixed per-dispatch overhead): [256, 1000] fwd 11-15 → ~5 ms; at a training head's [16, 10]
// both forms are within noise of the overhead (< 1 ms). Both sum in a fixed order (deterministic).

import type { OpNode } from "../compiler/core/ir.ts";
import type { CrossEntropyAttrs } from "../compiler/ops/attrs.ts";
import {
  type BufRef,
  type Dispatch,
  f32lit,
  foldGroups,
  grid1d,
  type KernelOf,
  type KernelsFor,
  wgslWorkgroupReduce,
} from "./kernel.ts";
import { bind, read, write } from "./bindings.ts";

const WG = 128;
/** Threads per workgroup of the software (row-per-thread) forward. */
const ROW_WG = 64;

/** Target weights (label, other classes) for a cross_entropy node's attrs. */
function targetWeights(n: OpNode<CrossEntropyAttrs>, c: number): { on: number; off: number } {
  const eps = n.attrs.smoothing;
  if (n.attrs.mode === "others") return { on: 1 - eps, off: c > 1 ? eps / (c - 1) : 0 };
  return { on: 1 - eps + eps / c, off: eps / c };
}

/**
 * `value`, or NaN where `ok` is false. The NaN is made from bits at run time on purpose: a NaN
 * const-expression such as `bitcast<f32>(0x7fc00000u)` is a shader-creation error in WGSL (Dawn/Tint
 * reject it; naga happens to accept it).
 */
const OR_NAN = /* wgsl */ `
fn or_nan(value: f32, ok: bool) -> f32 {
  return bitcast<f32>(select(0x7fc00000u, bitcast<u32>(value), ok));
}
`;

/** The dispatch that averages the `rows` row losses in `rowloss` into out[0] (fixed order). */
function meanDispatch(label: string, n: OpNode, rowloss: BufRef, rows: number, sw?: boolean): Dispatch {
  const io = bind({ rowloss: read(rowloss, "f32"), out: write(n) });
  const code = sw
    ? /* wgsl */ `
${io.wgsl}
const ROWS: u32 = ${rows}u;
@compute @workgroup_size(1)
fn main() {
  var s = 0.0;
  for (var i = 0u; i < ROWS; i++) { s += rowloss[i]; }
  out[0] = s / ${rows}.0;
}
`
    : /* wgsl */ `
${io.wgsl}
const ROWS: u32 = ${rows}u;
${wgslWorkgroupReduce("wg_sum", "f32", 256, (a, b) => `${a} + ${b}`)}
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32) {
  var s = 0.0;
  for (var i = t; i < ROWS; i += 256u) { s += rowloss[i]; }
  let total = wg_sum(t, s);
  if (t == 0u) { out[0] = total / ${rows}.0; }
}
`;
  return { label, code, bindings: io.bindings, workgroups: [1, 1, 1] };
}

const crossEntropyKernel: KernelOf<"cross_entropy"> = (n, ctx) => {
  const [x, labels] = n.inputs;
  const [rows, c] = x.shape;
  const { on, off } = targetWeights(n, c);
  const sw = ctx.isSoftware;
  // software: a thread per row (grid1d); otherwise a workgroup per row (foldGroups)
  const g1 = grid1d(rows, ROW_WG, ctx);
  const f = sw ? undefined : foldGroups(rows, ctx, "cross_entropy_fwd");
  const rowloss = { scratch: 0 };
  const rowIo = bind({
    x: read(x),
    labels: read(labels),
    rowloss: write(rowloss, "f32"),
    lse: write({ aux: 0 }, "f32"),
  });
  const rowHead = /* wgsl */ `
${rowIo.wgsl}
const ROWS: u32 = ${rows}u;
const C: u32 = ${c}u;
const OFF: f32 = ${f32lit(off)};
const ON_MINUS_OFF: f32 = ${f32lit(on - off)};
${OR_NAN}
// the row's outputs from its max and (Σ exp(x − max), Σ (x − max))
fn finish(row: u32, rmax: f32, sums: vec2f) {
  let lab = labels[row];
  let ok = lab >= 0 && lab < i32(C);
  let xl = x[row * C + u32(select(0, lab, ok))] - rmax;
  let shifted = log(sums.x);
  lse[row] = rmax + shifted;
  rowloss[row] = or_nan(shifted - OFF * sums.y - ON_MINUS_OFF * xl, ok);
}
`;
  // software: one thread per row, no barriers (see the header)
  const swRowCode = /* wgsl */ `
${rowHead}
${g1.stride}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.x + gid.y * GRID_STRIDE;
  if (row >= ROWS) { return; }
  let base = row * C;
  var m = -3.4028235e38;
  for (var j = 0u; j < C; j++) { m = max(m, x[base + j]); }
  var es = vec2f(0.0);
  for (var j = 0u; j < C; j++) {
    let v = x[base + j] - m;
    es += vec2f(exp(v), v);
  }
  finish(row, m, es);
}
`;
  const rowCode = /* wgsl */ `
${rowHead}
const GX: u32 = ${f?.gx ?? 0}u;
${wgslWorkgroupReduce("wg_max", "f32", WG, (a, b) => `max(${a}, ${b})`)}
${wgslWorkgroupReduce("wg_sum2", "vec2f", WG, (a, b) => `${a} + ${b}`)}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let row = wid.x + wid.y * GX;
  if (row >= ROWS) { return; } // uniform per workgroup, so the barriers below stay uniform
  let base = row * C;
  var m = -3.4028235e38;
  for (var j = t; j < C; j += ${WG}u) { m = max(m, x[base + j]); }
  let rmax = wg_max(t, m);
  var es = vec2f(0.0); // (Σ exp(x − max), Σ (x − max)) over this thread's columns
  for (var j = t; j < C; j += ${WG}u) {
    let v = x[base + j] - rmax;
    es += vec2f(exp(v), v);
  }
  let sums = wg_sum2(t, es);
  if (t == 0u) { finish(row, rmax, sums); }
}
`;
  return {
    scratch: [4 * rows],
    dispatches: [
      {
        label: "cross_entropy_fwd",
        code: sw ? swRowCode : rowCode,
        bindings: rowIo.bindings,
        workgroups: f?.workgroups ?? g1.workgroups,
      },
      meanDispatch("cross_entropy_mean", n, rowloss, rows, sw),
    ],
  };
};

const crossEntropyBwdKernel: KernelOf<"cross_entropy_bwd"> = (n, ctx) => {
  const [x, labels, lse, dy] = n.inputs;
  const [rows, c] = x.shape;
  const { on, off } = targetWeights(n, c);
  const g = grid1d(n.size, 256, ctx);
  const io = bind({ x: read(x), labels: read(labels), lse: read(lse), dy: read(dy), dx: write(n) });
  const code = /* wgsl */ `
${io.wgsl}
const N: u32 = ${n.size}u;
const C: u32 = ${c}u;
const ON: f32 = ${f32lit(on)};
const OFF: f32 = ${f32lit(off)};
${g.stride}
${OR_NAN}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_STRIDE;
  if (i >= N) { return; }
  let row = i / C;
  let lab = labels[row];
  let ok = lab >= 0 && lab < i32(C);
  let tgt = select(OFF, ON, i32(i % C) == lab);
  let p = exp(x[i] - lse[row]);
  dx[i] = or_nan((p - tgt) * (dy[0] / ${rows}.0), ok);
}
`;
  return {
    dispatches: [{
      label: "cross_entropy_bwd",
      code,
      bindings: io.bindings,
      workgroups: g.workgroups,
    }],
  };
};

// soft_cross_entropy: the row pass gathers max, then (Σ exp(x − max), Σ t, Σ t·(x − max)); the row
// loss is T·log Σexp − Σ t·(x − max) (= T·lse − Σ t·x, on shifted values). Same two layouts as
// cross_entropy_fwd (workgroup per row; thread per row on software adapters), then meanDispatch.
const softCrossEntropyKernel: KernelOf<"soft_cross_entropy"> = (n, ctx) => {
  const [x, t] = n.inputs;
  const [rows, c] = x.shape;
  const sw = ctx.isSoftware;
  const g1 = grid1d(rows, ROW_WG, ctx);
  const f = sw ? undefined : foldGroups(rows, ctx, "soft_cross_entropy_fwd");
  const rowloss = { scratch: 0 };
  const io = bind({
    x: read(x),
    t: read(t),
    rowloss: write(rowloss, "f32"),
    lse: write({ aux: 0 }, "f32"),
    tsum: write({ aux: 1 }, "f32"),
  });
  const head = /* wgsl */ `
${io.wgsl}
const ROWS: u32 = ${rows}u;
const C: u32 = ${c}u;
// the row's outputs from its max and (Σ exp(x − max), Σ t, Σ t·(x − max))
fn finish(row: u32, rmax: f32, sums: vec3f) {
  let shifted = log(sums.x);
  lse[row] = rmax + shifted;
  tsum[row] = sums.y;
  rowloss[row] = sums.y * shifted - sums.z;
}
`;
  const swCode = /* wgsl */ `
${head}
${g1.stride}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.x + gid.y * GRID_STRIDE;
  if (row >= ROWS) { return; }
  let base = row * C;
  var m = -3.4028235e38;
  for (var j = 0u; j < C; j++) { m = max(m, x[base + j]); }
  var s = vec3f(0.0);
  for (var j = 0u; j < C; j++) {
    let v = x[base + j] - m;
    let tv = t[base + j];
    s += vec3f(exp(v), tv, tv * v);
  }
  finish(row, m, s);
}
`;
  const wgCode = /* wgsl */ `
${head}
const GX: u32 = ${f?.gx ?? 0}u;
${wgslWorkgroupReduce("wg_max", "f32", WG, (a, b) => `max(${a}, ${b})`)}
${wgslWorkgroupReduce("wg_sum3", "vec3f", WG, (a, b) => `${a} + ${b}`)}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lt: u32) {
  let row = wid.x + wid.y * GX;
  if (row >= ROWS) { return; } // uniform per workgroup, so the barriers below stay uniform
  let base = row * C;
  var m = -3.4028235e38;
  for (var j = lt; j < C; j += ${WG}u) { m = max(m, x[base + j]); }
  let rmax = wg_max(lt, m);
  var s = vec3f(0.0);
  for (var j = lt; j < C; j += ${WG}u) {
    let v = x[base + j] - rmax;
    let tv = t[base + j];
    s += vec3f(exp(v), tv, tv * v);
  }
  let sums = wg_sum3(lt, s);
  if (lt == 0u) { finish(row, rmax, sums); }
}
`;
  return {
    scratch: [4 * rows],
    dispatches: [
      {
        label: "soft_cross_entropy_fwd",
        code: sw ? swCode : wgCode,
        bindings: io.bindings,
        workgroups: f?.workgroups ?? g1.workgroups,
      },
      meanDispatch("soft_cross_entropy_mean", n, rowloss, rows, sw),
    ],
  };
};

const softCrossEntropyBwdKernel: KernelOf<"soft_cross_entropy_bwd"> = (n, ctx) => {
  const [x, t, lse, tsum, dy] = n.inputs;
  const [rows, c] = x.shape;
  const logits = n.attrs.wrt === "logits";
  const g = grid1d(n.size, 256, ctx);
  const io = bind({
    x: read(x),
    t: logits && read(t),
    lse: read(lse),
    tsum: logits && read(tsum),
    dy: read(dy),
    dx: write(n),
  });
  const value = logits ? "exp(x[i] - lse[row]) * tsum[row] - t[i]" : "lse[row] - x[i]";
  const code = /* wgsl */ `
${io.wgsl}
const N: u32 = ${n.size}u;
const C: u32 = ${c}u;
${g.stride}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_STRIDE;
  if (i >= N) { return; }
  let row = i / C;
  dx[i] = (${value}) * (dy[0] / ${rows}.0);
}
`;
  return {
    dispatches: [{
      label: `soft_cross_entropy_bwd_${n.attrs.wrt}`,
      code,
      bindings: io.bindings,
      workgroups: g.workgroups,
    }],
  };
};

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const lossKernels: KernelsFor<
  "cross_entropy" | "cross_entropy_bwd" | "soft_cross_entropy" | "soft_cross_entropy_bwd"
> = {
  cross_entropy: crossEntropyKernel,
  cross_entropy_bwd: crossEntropyBwdKernel,
  soft_cross_entropy: softCrossEntropyKernel,
  soft_cross_entropy_bwd: softCrossEntropyBwdKernel,
};
