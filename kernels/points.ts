// WGSL kernels of the point-cloud grouping family (see compiler/ops/points.ts for semantics).
//
// fps_fwd: one workgroup per batch element; threads stride over the points. Each point's running min
//   squared distance to the chosen set lives in a scratch buffer [B, N] (N can be thousands, too many
//   for workgroup memory). Each of the G-1 rounds updates the distances against the last chosen point
//   and reduces (dist, index) over the workgroup: larger distance wins, equal distance → lower index.
//   Every thread scans its points in increasing order with a strict `>`, so its local winner is
//   already its lowest-index maximum. The round loop has a constant trip count and the reduction's
//   barriers are reached by every thread (spare workgroups of a folded grid return on a
//   workgroup-uniform condition).
//   On software adapters (ctx.isSoftware) fps_fwd instead gives one *thread* a whole cloud, with no
//   workgroup memory or barriers (lavapipe runs a barrier as a switch between coroutines, and the
//   workgroup form has ~log2(WG) + 2 of them per chosen point). Its scratch holds (x, y, z, running min
//   distance) per point with the clouds interleaved [N, B], so the 8 threads of a workgroup (one
//   256-bit SIMD row) read consecutive vec4s. The scan order and strict `>` are the same, so both forms
//   pick the same indices. Measured alone on lavapipe (net of the ~11 ms per-dispatch overhead):
//   B=16 N=256 G=32 18-41 → 3-6 ms, B=8 N=1024 G=64 28-70 → 16-23 ms; at the train-points defaults
//   (B=16 N=64 G=8) both are < 2 ms. Parallel over clouds only, so a GPU keeps the workgroup form.
// knn_fwd: one thread per center; a sorted insertion list of the k best (distance, index) in private
//   memory. Points are scanned in increasing index and inserted after any equal distance, so ties
//   keep the lower index first.
// gather_points_fwd: one thread per output element. gather_points_bwd: one thread per (b, point),
//   summing the dy rows of the positions that picked it in increasing order (deterministic, no
//   atomics; O(B·N·S) index compares, fine for clouds of thousands and groups·k of thousands).

import type { Node } from "../compiler/core/ir.ts";
import {
  foldGroups,
  grid1d,
  type KernelOf,
  type KernelsFor,
  type LowerCtx,
  type Lowered,
  wgslWorkgroupReduce,
} from "./kernel.ts";
import { bind, read, write } from "./bindings.ts";

const WG = 256;

/** Threads per workgroup of the software (cloud-per-thread) fps. */
const FPS_SW_WG = 8;

/** fps on software adapters: one thread per cloud, no barriers (see the header). */
function fpsPerThread(n: Node, ctx: LowerCtx): Lowered {
  const points = n.inputs[0];
  const [B, N] = points.shape;
  const G = n.shape[1];
  const g = grid1d(B, FPS_SW_WG, ctx);
  const io = bind({ pts: read(points), work: write({ scratch: 0 }, "vec4f"), out: write(n) });
  const code = /* wgsl */ `
${io.wgsl}
const B: u32 = ${B}u;
const N: u32 = ${N}u;
const G: u32 = ${G}u;
${g.stride}
@compute @workgroup_size(${FPS_SW_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let b = gid.x + gid.y * GRID_STRIDE;
  if (b >= B) { return; }
  // (x, y, z, running min distance) per point, clouds interleaved [N, B] so that the threads of a
  // workgroup (consecutive clouds) read consecutive vec4s
  for (var i = 0u; i < N; i++) {
    let o = (b * N + i) * 3u;
    work[i * B + b] = vec4f(pts[o], pts[o + 1u], pts[o + 2u], 1e10);
  }
  out[b * G] = 0;
  var last = 0u;
  for (var j = 1u; j < G; j++) {
    let q = work[last * B + b].xyz;
    var best = -1.0;
    var arg = 0u;
    for (var i = 0u; i < N; i++) {
      let p = work[i * B + b];
      let dx = p.x - q.x;
      let dy = p.y - q.y;
      let dz = p.z - q.z;
      let m = min(p.w, dx * dx + dy * dy + dz * dz);
      work[i * B + b].w = m;
      if (m > best) { best = m; arg = i; } // strict: the lowest index wins ties
    }
    last = arg;
    out[b * G + j] = i32(last);
  }
}
`;
  return {
    scratch: [16 * B * N],
    dispatches: [{
      label: "fps_fwd",
      code,
      bindings: io.bindings,
      workgroups: g.workgroups,
    }],
  };
}

const fpsKernel: KernelOf<"fps"> = (n, ctx) => {
  const points = n.inputs[0];
  const [B, N] = points.shape;
  const G = n.shape[1];
  if (N >= 2 ** 24) throw new Error(`fps_fwd: ${N} points per cloud; indices ride in f32 (max 2^24)`);
  if (ctx.isSoftware) return fpsPerThread(n, ctx);
  let wg = 32;
  while (wg < N && wg < WG) wg *= 2;
  while (wg > ctx.maxInvocations) wg /= 2;
  const f = foldGroups(B, ctx, "fps_fwd");
  // (dist, index as f32: exact below 2^24): larger dist wins, ties → lower index
  const reduce = wgslWorkgroupReduce(
    "best",
    "vec2f",
    wg,
    (a, b) => `select(${a}, ${b}, ${b}.x > ${a}.x || (${b}.x == ${a}.x && ${b}.y < ${a}.y))`,
  );
  const io = bind({ pts: read(points), mind: write({ scratch: 0 }, "f32"), out: write(n) });
  const code = /* wgsl */ `
${io.wgsl}
const B: u32 = ${B}u;
const N: u32 = ${N}u;
const G: u32 = ${G}u;
const GX: u32 = ${f.gx}u;
const WG: u32 = ${wg}u;
${reduce}
fn pt(b: u32, i: u32) -> vec3f {
  let o = (b * N + i) * 3u;
  return vec3f(pts[o], pts[o + 1u], pts[o + 2u]);
}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let b = wid.x + wid.y * GX;
  if (b >= B) { return; } // workgroup-uniform
  for (var i = t; i < N; i += WG) { mind[b * N + i] = 1e10; }
  if (t == 0u) { out[b * G] = 0; }
  var last = 0u;
  for (var j = 1u; j < G; j++) {
    let q = pt(b, last);
    var mine = vec2f(-1.0, 0.0);
    for (var i = t; i < N; i += WG) {
      let p = pt(b, i);
      let dx = p.x - q.x;
      let dy = p.y - q.y;
      let dz = p.z - q.z;
      let m = min(mind[b * N + i], dx * dx + dy * dy + dz * dz);
      mind[b * N + i] = m;
      if (m > mine.x) { mine = vec2f(m, f32(i)); }
    }
    let r = best(t, mine);
    last = u32(r.y);
    if (t == 0u) { out[b * G + j] = i32(last); }
  }
}
`;
  return {
    scratch: [4 * B * N],
    dispatches: [{
      label: "fps_fwd",
      code,
      bindings: io.bindings,
      workgroups: f.workgroups,
    }],
  };
};

const knnKernel: KernelOf<"knn"> = (n, ctx) => {
  const [points, centers] = n.inputs;
  const [B, N] = points.shape;
  const [, G, K] = n.shape;
  if (K > 1024) throw new Error(`knn_fwd: k = ${K} exceeds the private insertion list (max 1024)`);
  const wg = 64;
  const g = grid1d(B * G, wg, ctx);
  const io = bind({ pts: read(points), ctr: read(centers), out: write(n) });
  const code = /* wgsl */ `
${io.wgsl}
const N: u32 = ${N}u;
const G: u32 = ${G}u;
const K: u32 = ${K}u;
const BG: u32 = ${B * G}u;
${g.stride}
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x + gid.y * GRID_STRIDE;
  if (c >= BG) { return; }
  let b = c / G;
  let q = vec3f(ctr[c * 3u], ctr[c * 3u + 1u], ctr[c * 3u + 2u]);
  var bd: array<f32, ${K}>;
  var bi: array<u32, ${K}>;
  var cnt = 0u;
  for (var i = 0u; i < N; i++) {
    let o = (b * N + i) * 3u;
    let dx = pts[o] - q.x;
    let dy = pts[o + 1u] - q.y;
    let dz = pts[o + 2u] - q.z;
    let d = dx * dx + dy * dy + dz * dz;
    if (cnt == K && d >= bd[K - 1u]) { continue; } // not better than the worst kept (ties: keep earlier)
    // shift larger entries right, dropping the last one when full; insert after equal distances
    var pos = select(cnt, K - 1u, cnt == K);
    while (pos > 0u && bd[pos - 1u] > d) {
      bd[pos] = bd[pos - 1u];
      bi[pos] = bi[pos - 1u];
      pos--;
    }
    bd[pos] = d;
    bi[pos] = i;
    cnt = min(cnt + 1u, K);
  }
  for (var j = 0u; j < K; j++) { out[c * K + j] = i32(bi[j]); }
}
`;
  return {
    dispatches: [{
      label: "knn_fwd",
      code,
      bindings: io.bindings,
      workgroups: g.workgroups,
    }],
  };
};

const gatherPointsKernel: KernelOf<"gather_points"> = (n, ctx) => {
  const [points, idx] = n.inputs;
  const [, N, C] = points.shape;
  const S = idx.size / idx.shape[0]; // positions per batch element
  const g = grid1d(n.size, WG, ctx);
  const io = bind({ pts: read(points), idx: read(idx), out: write(n) });
  const code = /* wgsl */ `
${io.wgsl}
const TOTAL: u32 = ${n.size}u;
const N: i32 = ${N};
const C: u32 = ${C}u;
const S: u32 = ${S}u;
${g.stride}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_STRIDE;
  if (i >= TOTAL) { return; }
  let p = i / C; // flat position b * S + s
  let v = idx[p];
  var r = 0.0;
  if (v >= 0 && v < N) { r = pts[((p / S) * u32(N) + u32(v)) * C + i % C]; }
  out[i] = r;
}
`;
  return {
    dispatches: [{
      label: "gather_points_fwd",
      code,
      bindings: io.bindings,
      workgroups: g.workgroups,
    }],
  };
};

const gatherPointsBwdKernel: KernelOf<"gather_points_bwd"> = (n, ctx) => {
  const [idx, dy] = n.inputs;
  const [B, N, C] = n.shape;
  const S = idx.size / idx.shape[0];
  const g = grid1d(B * N, WG, ctx);
  const io = bind({ idx: read(idx), dy: read(dy), out: write(n) });
  const code = /* wgsl */ `
${io.wgsl}
const BN: u32 = ${B * N}u;
const N: u32 = ${N}u;
const C: u32 = ${C}u;
const S: u32 = ${S}u;
${g.stride}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let r = gid.x + gid.y * GRID_STRIDE;
  if (r >= BN) { return; }
  let b = r / N;
  let j = i32(r % N);
  for (var ch = 0u; ch < C; ch++) { out[r * C + ch] = 0.0; }
  for (var s = 0u; s < S; s++) {
    if (idx[b * S + s] != j) { continue; }
    for (var ch = 0u; ch < C; ch++) { out[r * C + ch] += dy[(b * S + s) * C + ch]; }
  }
}
`;
  return {
    dispatches: [{
      label: "gather_points_bwd",
      code,
      bindings: io.bindings,
      workgroups: g.workgroups,
    }],
  };
};

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const pointsKernels: KernelsFor<"fps" | "knn" | "gather_points" | "gather_points_bwd"> = {
  fps: fpsKernel,
  knn: knnKernel,
  gather_points: gatherPointsKernel,
  gather_points_bwd: gatherPointsBwdKernel,
};
