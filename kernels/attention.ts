// WGSL kernels of the attention family, flash-attention style: no kernel materialises the
// [Tq, Tk] score matrix in global memory.
//
//   attention_fwd     one workgroup per (batch, head, tile of BQ queries). Q tile in workgroup memory;
//                     K/V tiles of BK keys stream through workgroup memory; each query row keeps an
//                     online softmax (running max m, running sum l) and its output accumulators,
//                     spread over R threads per row (each owns Dh/R output columns). Writes the output
//                     and the row logsumexp m + log l; a row with no visible key (causal, Tq > Tk)
//                     outputs 0 and stores the lowest finite f32, -3.4028235e38, as its logsumexp.
//   attention_bwd_d   D_i = Σ_d dy_id·o_id, one thread per (batch, head, query).
//   attention_bwd_q   one workgroup per (batch, head, query tile): recomputes P = exp(s - L) per key
//                     tile, dS = P·(dP - D), accumulates dq = scale·dS·K. No atomics.
//   attention_bwd_kv  one workgroup per (batch, kv head, tile of BK keys): loops over the query heads
//                     of its group and the query tiles that can see the keys, accumulating
//                     dv = Pᵀ·dy and dk = scale·dSᵀ·Q in registers — GQA sums need no atomics either.
// Tile sizes are chosen per shape so the workgroup arrays fit maxWorkgroupStorage; causal launches
// skip tiles that are entirely masked. Workgroup counts are folded into 2-D (x + y·GX, foldGroups).

import { defineKernel } from "../compiler/registry.ts";
import type { Node } from "../compiler/ir.ts";
import { type AttnDims, attnDims } from "../compiler/ops/attention.ts";
import { f32lit, foldGroups, grid1d, type LowerCtx } from "./kernel.ts";

/** Preferred (rows, cols) tiles, largest first; rows get R threads each. */
const TILES: [number, number][] = [
  [16, 32],
  [16, 16],
  [8, 16],
  [8, 8],
  [4, 8],
  [4, 4],
  [2, 4],
  [2, 2],
  [1, 2],
  [1, 1],
];

interface Tiling {
  rows: number;
  cols: number;
  /** Threads per row. */
  R: number;
  /** Output columns each thread owns: ceil(Dh / R). */
  DPT: number;
}

/**
 * The largest preferred tile whose workgroup arrays (`floats(rows, cols)` f32s) fit the device,
 * with rows/cols capped at the problem's extents so tiny problems do not launch idle threads.
 */
function pickTiles(
  label: string,
  ctx: LowerCtx,
  Dh: number,
  rowLen: number,
  colLen: number,
  floats: (rows: number, cols: number) => number,
): Tiling {
  for (const [r0, c0] of TILES) {
    const rows = Math.max(1, Math.min(r0, rowLen)), cols = Math.max(1, Math.min(c0, colLen));
    if (floats(rows, cols) * 4 > ctx.maxWorkgroupStorage) continue;
    const R = Math.max(1, Math.min(16, Math.floor(ctx.maxInvocations / rows), Math.max(cols, Dh)));
    return { rows, cols, R, DPT: Math.ceil(Dh / R) };
  }
  throw new Error(
    `${label}: head dim ${Dh} is too large for ${ctx.maxWorkgroupStorage} bytes of workgroup storage`,
  );
}

/**
 * Shape constants, index helpers and tile staging shared by the kernels. The staging functions use
 * module-scope names every kernel declares: BQ, BK, WG, the bindings q, k, v (and dy when `withDy`)
 * and the workgroup tiles sq, sk, sv (and sdo when `withDy`).
 */
function common(z: AttnDims, attrs: Record<string, unknown>, withDy: boolean): string {
  return /* wgsl */ `
const B: u32 = ${z.B}u;
const TQ: u32 = ${z.Tq}u;
const TK: u32 = ${z.Tk}u;
const H: u32 = ${z.H}u;
const HKV: u32 = ${z.Hkv}u;
const G: u32 = ${z.H / z.Hkv}u;
const DH: u32 = ${z.Dh}u;
const SCALE: f32 = ${f32lit(attrs.scale as number)};
const CAUSAL: bool = ${attrs.causal ? "true" : "false"};
const OFF: i32 = ${z.Tk - z.Tq};
const NEG: f32 = -3.4028235e38;

// start of query (b, i, head h) in q/dy/out, and of key (b, j, kv head hk) in k/v
fn qrow(b: u32, i: u32, h: u32) -> u32 { return ((b * TQ + i) * H + h) * DH; }
fn krow(b: u32, j: u32, hk: u32) -> u32 { return ((b * TK + j) * HKV + hk) * DH; }
// whether query i may attend to key j (also false for padding rows/cols of a partial tile)
fn visible(i: u32, j: u32) -> bool {
  return i < TQ && j < TK && (!CAUSAL || i32(j) <= i32(i) + OFF);
}

// The WG threads (t = local index) copy queries i0..i0+BQ-1 of head h (q${withDy ? ", dy" : ""}) into
// sq${
    withDy ? ", sdo" : ""
  }, and keys j0..j0+BK-1 of kv head hk (k, v) into sk, sv; rows past the end become 0.
fn stage_q(t: u32, b: u32, h: u32, i0: u32) {
  for (var e = t; e < BQ * DH; e += WG) {
    let ii = i0 + e / DH;
    var x = 0.0;${withDy ? "\n    var g = 0.0;" : ""}
    if (ii < TQ) {
      let o = qrow(b, ii, h) + e % DH;
      x = q[o];${withDy ? "\n      g = dy[o];" : ""}
    }
    sq[e] = x;${withDy ? "\n    sdo[e] = g;" : ""}
  }
}
fn stage_kv(t: u32, b: u32, hk: u32, j0: u32) {
  for (var e = t; e < BK * DH; e += WG) {
    let jj = j0 + e / DH;
    var kx = 0.0;
    var vx = 0.0;
    if (jj < TK) {
      let o = krow(b, jj, hk) + e % DH;
      kx = k[o];
      vx = v[o];
    }
    sk[e] = kx;
    sv[e] = vx;
  }
}
`;
}

/** Key tiles (of BK) a query tile starting at i0 can see: all, or up to the last visible key. */
const KEY_TILES = /* wgsl */ `
fn key_tiles(i0: u32) -> u32 {
  if (!CAUSAL) { return NKT; }
  let last = i32(min(i0 + BQ, TQ)) - 1 + OFF;
  if (last < 0) { return 0u; }
  return min(NKT, u32(last) / BK + 1u);
}
`;

function forward(n: Node, ctx: LowerCtx) {
  const [q, k, v] = n.inputs;
  const z = attnDims(q, k, n.attrs);
  const t = pickTiles("attention_fwd", ctx, z.Dh, z.Tq, z.Tk, (r, c) => r * z.Dh + 2 * c * z.Dh + r * c);
  const nqt = Math.ceil(z.Tq / t.rows), nkt = Math.ceil(z.Tk / t.cols);
  const groups = z.B * z.H * nqt;
  const f = foldGroups(groups, ctx, "attention_fwd");
  const code = /* wgsl */ `
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
${common(z, n.attrs, false)}
const BQ: u32 = ${t.rows}u;
const BK: u32 = ${t.cols}u;
const R: u32 = ${t.R}u;
const WG: u32 = ${t.rows * t.R}u;
const DPT: u32 = ${t.DPT}u;
const NQT: u32 = ${nqt}u;
const NKT: u32 = ${nkt}u;
const NGROUPS: u32 = ${groups}u;
const GX: u32 = ${f.gx}u;
${KEY_TILES}
var<workgroup> sq: array<f32, ${t.rows * z.Dh}>;
var<workgroup> sk: array<f32, ${t.cols * z.Dh}>;
var<workgroup> sv: array<f32, ${t.cols * z.Dh}>;
var<workgroup> sp: array<f32, ${t.rows * t.cols}>;

@compute @workgroup_size(${t.rows * t.R})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let grp = wid.x + wid.y * GX;
  if (grp >= NGROUPS) { return; }
  let bh = grp / NQT;
  let b = bh / H;
  let h = bh % H;
  let hk = h / G;
  let i0 = (grp % NQT) * BQ;
  let r = t / R;
  let c = t % R;
  let i = i0 + r;
  stage_q(t, b, h, i0);
  var m = NEG; // running max of the row's scores
  var l = 0.0; // running sum of exp(s - m)
  var acc: array<f32, DPT>; // unnormalised output columns c, c + R, ...
  let nkt = key_tiles(i0);
  for (var kt = 0u; kt < nkt; kt++) {
    let j0 = kt * BK;
    workgroupBarrier(); // the previous tile is consumed before it is overwritten
    stage_kv(t, b, hk, j0);
    workgroupBarrier();
    for (var jj = c; jj < BK; jj += R) {
      var s = NEG;
      if (visible(i, j0 + jj)) {
        var qk = 0.0;
        for (var d = 0u; d < DH; d++) { qk += sq[r * DH + d] * sk[jj * DH + d]; }
        s = qk * SCALE;
      }
      sp[r * BK + jj] = s;
    }
    workgroupBarrier();
    var mt = m;
    for (var jj = 0u; jj < BK; jj++) { mt = max(mt, sp[r * BK + jj]); }
    workgroupBarrier(); // every thread of the row has read the scores before they become P
    for (var jj = c; jj < BK; jj += R) {
      sp[r * BK + jj] = select(0.0, exp(sp[r * BK + jj] - mt), visible(i, j0 + jj));
    }
    workgroupBarrier();
    let alpha = exp(m - mt); // rescales what was accumulated under the old max
    m = mt;
    var rs = 0.0;
    for (var jj = 0u; jj < BK; jj++) { rs += sp[r * BK + jj]; }
    l = l * alpha + rs;
    for (var u = 0u; u < DPT; u++) {
      let d = c + u * R;
      if (d < DH) {
        var a = acc[u] * alpha;
        for (var jj = 0u; jj < BK; jj++) { a += sp[r * BK + jj] * sv[jj * DH + d]; }
        acc[u] = a;
      }
    }
  }
  if (i < TQ) {
    // a row with no visible key (causal, Tq > Tk) outputs 0
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var u = 0u; u < DPT; u++) {
      let d = c + u * R;
      if (d < DH) { out[qrow(b, i, h) + d] = acc[u] * inv; }
    }
    if (c == 0u) { lse[bh * TQ + i] = select(NEG, m + log(l), l > 0.0); }
  }
}
`;
  return {
    dispatches: [{
      label: "attention_fwd",
      code,
      bindings: [
        { name: "q", ref: { node: q } },
        { name: "k", ref: { node: k } },
        { name: "v", ref: { node: v } },
        { name: "out", ref: { node: n } },
        { name: "lse", ref: { aux: 0 } },
      ],
      workgroups: f.workgroups,
    }],
  };
}

function rowDot(n: Node, ctx: LowerCtx) {
  const [o, dy] = n.inputs;
  const [B, T, F] = o.shape, H = n.attrs.heads as number, Dh = F / H;
  const g = grid1d(B * H * T, 64, ctx);
  const code = /* wgsl */ `
@group(0) @binding(0) var<storage, read> o: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
const N: u32 = ${B * H * T}u;
const T: u32 = ${T}u;
const H: u32 = ${H}u;
const DH: u32 = ${Dh}u;
${g.stride}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let x = gid.x + gid.y * GRID_STRIDE; // (b·H + h)·T + i, the output order
  if (x >= N) { return; }
  let i = x % T;
  let bh = x / T;
  let base = ((bh / H * T + i) * H + bh % H) * DH;
  var s = 0.0;
  for (var d = 0u; d < DH; d++) { s += o[base + d] * dy[base + d]; }
  out[x] = s;
}
`;
  return {
    dispatches: [{
      label: "attention_bwd_d",
      code,
      bindings: [{ name: "o", ref: { node: o } }, { name: "dy", ref: { node: dy } }, {
        name: "out",
        ref: { node: n },
      }],
      workgroups: g.workgroups,
    }],
  };
}

const BWD_INPUTS = /* wgsl */ `
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> dd: array<f32>;
`;

function bwdBindings(n: Node) {
  return ["q", "k", "v", "dy", "lse", "dd"].map((name, i) => ({ name, ref: { node: n.inputs[i] } }));
}

function backwardQ(n: Node, ctx: LowerCtx) {
  const [q, k] = n.inputs;
  const z = attnDims(q, k, n.attrs);
  const t = pickTiles(
    "attention_bwd_q",
    ctx,
    z.Dh,
    z.Tq,
    z.Tk,
    (r, c) => 2 * r * z.Dh + 2 * c * z.Dh + r * c,
  );
  const nqt = Math.ceil(z.Tq / t.rows), nkt = Math.ceil(z.Tk / t.cols);
  const groups = z.B * z.H * nqt;
  const f = foldGroups(groups, ctx, "attention_bwd_q");
  const code = /* wgsl */ `
${BWD_INPUTS}
@group(0) @binding(6) var<storage, read_write> dq: array<f32>;
${common(z, n.attrs, true)}
const BQ: u32 = ${t.rows}u;
const BK: u32 = ${t.cols}u;
const R: u32 = ${t.R}u;
const WG: u32 = ${t.rows * t.R}u;
const DPT: u32 = ${t.DPT}u;
const NQT: u32 = ${nqt}u;
const NKT: u32 = ${nkt}u;
const NGROUPS: u32 = ${groups}u;
const GX: u32 = ${f.gx}u;
${KEY_TILES}
var<workgroup> sq: array<f32, ${t.rows * z.Dh}>;
var<workgroup> sdo: array<f32, ${t.rows * z.Dh}>;
var<workgroup> sk: array<f32, ${t.cols * z.Dh}>;
var<workgroup> sv: array<f32, ${t.cols * z.Dh}>;
var<workgroup> sds: array<f32, ${t.rows * t.cols}>;

@compute @workgroup_size(${t.rows * t.R})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let grp = wid.x + wid.y * GX;
  if (grp >= NGROUPS) { return; }
  let bh = grp / NQT;
  let b = bh / H;
  let h = bh % H;
  let hk = h / G;
  let i0 = (grp % NQT) * BQ;
  let r = t / R;
  let c = t % R;
  let i = i0 + r;
  stage_q(t, b, h, i0);
  var lrow = 0.0;
  var drow = 0.0;
  if (i < TQ) {
    lrow = lse[bh * TQ + i];
    drow = dd[bh * TQ + i];
  }
  var acc: array<f32, DPT>; // dq columns c, c + R, ... (before the scale)
  let nkt = key_tiles(i0);
  for (var kt = 0u; kt < nkt; kt++) {
    let j0 = kt * BK;
    workgroupBarrier();
    stage_kv(t, b, hk, j0);
    workgroupBarrier();
    for (var jj = c; jj < BK; jj += R) {
      var ds = 0.0;
      if (visible(i, j0 + jj)) {
        var qk = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < DH; d++) {
          qk += sq[r * DH + d] * sk[jj * DH + d];
          dp += sdo[r * DH + d] * sv[jj * DH + d];
        }
        let p = exp(qk * SCALE - lrow);
        ds = p * (dp - drow);
      }
      sds[r * BK + jj] = ds;
    }
    workgroupBarrier();
    for (var u = 0u; u < DPT; u++) {
      let d = c + u * R;
      if (d < DH) {
        var a = acc[u];
        for (var jj = 0u; jj < BK; jj++) { a += sds[r * BK + jj] * sk[jj * DH + d]; }
        acc[u] = a;
      }
    }
  }
  if (i < TQ) {
    for (var u = 0u; u < DPT; u++) {
      let d = c + u * R;
      if (d < DH) { dq[qrow(b, i, h) + d] = acc[u] * SCALE; }
    }
  }
}
`;
  return {
    dispatches: [{
      label: "attention_bwd_q",
      code,
      bindings: [...bwdBindings(n), { name: "dq", ref: { node: n } }],
      workgroups: f.workgroups,
    }],
  };
}

function backwardKV(n: Node, ctx: LowerCtx) {
  const [q, k] = n.inputs;
  const z = attnDims(q, k, n.attrs);
  // rows are keys here, cols are queries
  const t = pickTiles(
    "attention_bwd_kv",
    ctx,
    z.Dh,
    z.Tk,
    z.Tq,
    (r, c) => 2 * r * z.Dh + 2 * c * z.Dh + 2 * r * c + 2 * c,
  );
  const nkt = Math.ceil(z.Tk / t.rows), nqt = Math.ceil(z.Tq / t.cols);
  const groups = z.B * z.Hkv * nkt;
  const f = foldGroups(groups, ctx, "attention_bwd_kv");
  const code = /* wgsl */ `
${BWD_INPUTS}
@group(0) @binding(6) var<storage, read_write> dk: array<f32>;
@group(0) @binding(7) var<storage, read_write> dv: array<f32>;
${common(z, n.attrs, true)}
const BK: u32 = ${t.rows}u;
const BQ: u32 = ${t.cols}u;
const R: u32 = ${t.R}u;
const WG: u32 = ${t.rows * t.R}u;
const DPT: u32 = ${t.DPT}u;
const NQT: u32 = ${nqt}u;
const NKT: u32 = ${nkt}u;
const NGROUPS: u32 = ${groups}u;
const GX: u32 = ${f.gx}u;
var<workgroup> sk: array<f32, ${t.rows * z.Dh}>;
var<workgroup> sv: array<f32, ${t.rows * z.Dh}>;
var<workgroup> sq: array<f32, ${t.cols * z.Dh}>;
var<workgroup> sdo: array<f32, ${t.cols * z.Dh}>;
var<workgroup> sp: array<f32, ${t.rows * t.cols}>;
var<workgroup> sds: array<f32, ${t.rows * t.cols}>;
var<workgroup> sl: array<f32, ${t.cols}>;
var<workgroup> sd: array<f32, ${t.cols}>;

@compute @workgroup_size(${t.rows * t.R})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let grp = wid.x + wid.y * GX;
  if (grp >= NGROUPS) { return; }
  let bhk = grp / NKT;
  let b = bhk / HKV;
  let hk = bhk % HKV;
  let j0 = (grp % NKT) * BK;
  let r = t / R;
  let c = t % R;
  let j = j0 + r;
  stage_kv(t, b, hk, j0);
  // causal: the first query tile with a query that can see key j0 (i >= j0 - OFF)
  var qt0 = 0u;
  if (CAUSAL && i32(j0) - OFF > 0) { qt0 = u32(i32(j0) - OFF) / BQ; }
  var dka: array<f32, DPT>; // dk columns c, c + R, ... (before the scale)
  var dva: array<f32, DPT>;
  for (var g = 0u; g < G; g++) {
    let h = hk * G + g; // the query heads sharing this kv head
    let bh = b * H + h;
    for (var qt = qt0; qt < NQT; qt++) {
      let i0 = qt * BQ;
      workgroupBarrier();
      stage_q(t, b, h, i0);
      for (var e = t; e < BQ; e += WG) {
        var lv = 0.0;
        var dv0 = 0.0;
        if (i0 + e < TQ) {
          lv = lse[bh * TQ + i0 + e];
          dv0 = dd[bh * TQ + i0 + e];
        }
        sl[e] = lv;
        sd[e] = dv0;
      }
      workgroupBarrier();
      for (var ii = c; ii < BQ; ii += R) {
        var p = 0.0;
        var ds = 0.0;
        if (visible(i0 + ii, j)) {
          var qk = 0.0;
          var dp = 0.0;
          for (var d = 0u; d < DH; d++) {
            qk += sq[ii * DH + d] * sk[r * DH + d];
            dp += sdo[ii * DH + d] * sv[r * DH + d];
          }
          p = exp(qk * SCALE - sl[ii]);
          ds = p * (dp - sd[ii]);
        }
        sp[r * BQ + ii] = p;
        sds[r * BQ + ii] = ds;
      }
      workgroupBarrier();
      for (var u = 0u; u < DPT; u++) {
        let d = c + u * R;
        if (d < DH) {
          var a = dka[u];
          var bv = dva[u];
          for (var ii = 0u; ii < BQ; ii++) {
            a += sds[r * BQ + ii] * sq[ii * DH + d];
            bv += sp[r * BQ + ii] * sdo[ii * DH + d];
          }
          dka[u] = a;
          dva[u] = bv;
        }
      }
    }
  }
  if (j < TK) {
    for (var u = 0u; u < DPT; u++) {
      let d = c + u * R;
      if (d < DH) {
        dk[krow(b, j, hk) + d] = dka[u] * SCALE;
        dv[krow(b, j, hk) + d] = dva[u];
      }
    }
  }
}
`;
  return {
    dispatches: [{
      label: "attention_bwd_kv",
      code,
      bindings: [...bwdBindings(n), { name: "dk", ref: { node: n } }, { name: "dv", ref: { aux: 0 } }],
      workgroups: f.workgroups,
    }],
  };
}

defineKernel("attention", forward);
defineKernel("attention_bwd_d", rowDot);
defineKernel("attention_bwd_q", backwardQ);
defineKernel("attention_bwd_kv", backwardKV);
