// WGSL kernels of the attention family, flash-attention style: no kernel materialises the
// [Tq, Tk] score matrix in global memory. fwd, bwd_q and bwd_kv come in two variants, picked by
// chooseAttentionVariant (setAttentionVariant forces one, for tests and benchmarks):
//
// "direct" — on software adapters (ctx.isSoftware). One thread per (batch, head, query) for fwd and
// bwd_q, one per (batch, kv head, key) for bwd_kv (looping over its GQA group's query heads and the
// queries that see the key); rows read straight from global memory (as vec4 when Dh % 4 == 0),
// online softmax and the Dh-wide accumulators in registers (unrolled in the generated code), no
// workgroup memory, no barriers, no atomics; the same bindings, outputs and logsumexp convention as
// the tiled kernels below. Why: lavapipe runs each workgroup barrier as a coroutine switch per
// thread. In the layer-step benchmark (B=32, T=50, 4 causal heads of 16; .data/prof_layer.ts, same
// plan, ~12 ms per-dispatch overhead subtracted) the tiled kernels took ~265 (fwd), ~215 (bwd_q)
// and ~355 ms (bwd_kv), the direct ones ~20-40 ms each; the step went from ~1100 to ~400 ms.
// Tried and dropped (no gain within the noise, or slower): 4 or 8 keys per softmax rescale,
// workgroups of 16..128, and a workgroup per (batch, head) looping to its last key so k/v addresses
// are workgroup-uniform (fwd 50-58 vs 31-49 ms). Head dims over DIRECT_MAX_DH (128;
// DIRECT_MAX_SCALAR_DH = 32 when Dh % 4 != 0) take the tiled kernels: the unrolled registers make
// lavapipe's shader compile slow beyond that.
//
// "tiled" — real GPUs, where the reuse of staged tiles pays:
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
// skip tiles that are entirely masked. Workgroup counts are folded into 2-D (x + y·GX, foldGroups;
// grid1d for the direct kernels). attention_bwd_d has one variant (it has no barriers).

import type { Node, OpNode } from "../compiler/core/ir.ts";
import { type AttnAttrs, type AttnDims, attnDims } from "../compiler/ops/attention.ts";
import {
  type BufRef,
  f32lit,
  foldGroups,
  grid1d,
  type KernelsFor,
  type LowerCtx,
  type Lowered,
} from "./kernel.ts";
import { bind, read, type ShaderIo, write } from "./bindings.ts";

/** A node of one of the attention ops (they share their attributes). */
type AttnNode = OpNode<AttnAttrs>;

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

/** Shape constants and index helpers; row starts count units of `rowWidth` (Dh floats, or Dh/4 vec4). */
function attnConsts(z: AttnDims, attrs: AttnAttrs, rowWidth: number): string {
  return /* wgsl */ `
const B: u32 = ${z.B}u;
const TQ: u32 = ${z.Tq}u;
const TK: u32 = ${z.Tk}u;
const H: u32 = ${z.H}u;
const HKV: u32 = ${z.Hkv}u;
const G: u32 = ${z.H / z.Hkv}u;
const DH: u32 = ${z.Dh}u;
const RW: u32 = ${rowWidth}u;
const SCALE: f32 = ${f32lit(attrs.scale)};
const CAUSAL: bool = ${attrs.causal ? "true" : "false"};
const OFF: i32 = ${z.Tk - z.Tq};
const NEG: f32 = -3.4028235e38;

// start of query (b, i, head h) in q/dy/out, and of key (b, j, kv head hk) in k/v
fn qrow(b: u32, i: u32, h: u32) -> u32 { return ((b * TQ + i) * H + h) * RW; }
fn krow(b: u32, j: u32, hk: u32) -> u32 { return ((b * TK + j) * HKV + hk) * RW; }
// whether query i may attend to key j (also false for padding rows/cols of a partial tile)
fn visible(i: u32, j: u32) -> bool {
  return i < TQ && j < TK && (!CAUSAL || i32(j) <= i32(i) + OFF);
}
`;
}

/**
 * attnConsts plus the tiled kernels' staging. The staging functions use module-scope names every
 * tiled kernel declares: BQ, BK, WG, the bindings q, k, v (and dy when `withDy`) and the workgroup
 * tiles sq, sk, sv (and sdo when `withDy`).
 */
function common(z: AttnDims, attrs: AttnAttrs, withDy: boolean): string {
  return /* wgsl */ `${attnConsts(z, attrs, z.Dh)}
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

/**
 * The tiled kernels' launch constants: tiles of `rows` × `cols` (named BQ × BK when a tile's rows are
 * queries, BK × BQ when they are keys), R threads per row owning DPT output columns each, the tile
 * counts, and the NGROUPS workgroups folded into a grid GX wide.
 */
function tileConsts(
  rows: "BQ" | "BK",
  cols: "BK" | "BQ",
  t: Tiling,
  nqt: number,
  nkt: number,
  groups: number,
  gx: number,
): string {
  return /* wgsl */ `const ${rows}: u32 = ${t.rows}u;
const ${cols}: u32 = ${t.cols}u;
const R: u32 = ${t.R}u;
const WG: u32 = ${t.rows * t.R}u;
const DPT: u32 = ${t.DPT}u;
const NQT: u32 = ${nqt}u;
const NKT: u32 = ${nkt}u;
const NGROUPS: u32 = ${groups}u;
const GX: u32 = ${gx}u;`;
}

/**
 * The opening of a query-tile kernel (forward, backward q): the workgroup's batch b, head h, kv head
 * hk and first query i0; the thread's row r (query i) and column c; the tile's queries staged.
 */
function queryTileMain(t: Tiling): string {
  return /* wgsl */ `@compute @workgroup_size(${t.rows * t.R})
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
  stage_q(t, b, h, i0);`;
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

function forward(n: AttnNode, ctx: LowerCtx) {
  const [q, k] = n.inputs;
  const z = attnDims(q, k, n.attrs);
  const t = pickTiles("attention_fwd", ctx, z.Dh, z.Tq, z.Tk, (r, c) => r * z.Dh + 2 * c * z.Dh + r * c);
  const nqt = Math.ceil(z.Tq / t.rows), nkt = Math.ceil(z.Tk / t.cols);
  const groups = z.B * z.H * nqt;
  const f = foldGroups(groups, ctx, "attention_fwd");
  const io = fwdIo(n, "f32");
  const code = /* wgsl */ `
${io.wgsl}
${common(z, n.attrs, false)}
${tileConsts("BQ", "BK", t, nqt, nkt, groups, f.gx)}
${KEY_TILES}
var<workgroup> sq: array<f32, ${t.rows * z.Dh}>;
var<workgroup> sk: array<f32, ${t.cols * z.Dh}>;
var<workgroup> sv: array<f32, ${t.cols * z.Dh}>;
var<workgroup> sp: array<f32, ${t.rows * t.cols}>;

${queryTileMain(t)}
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
      bindings: io.bindings,
      workgroups: f.workgroups,
    }],
  };
}

function rowDot(n: AttnNode, ctx: LowerCtx) {
  const [o, dy] = n.inputs;
  const [B, T, F] = o.shape, H = n.attrs.heads, Dh = F / H;
  const g = grid1d(B * H * T, 64, ctx);
  const io = bind({ o: read(o), dy: read(dy), out: write(n) });
  const code = /* wgsl */ `
${io.wgsl}
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
      bindings: io.bindings,
      workgroups: g.workgroups,
    }],
  };
}

/** The forward's buffers: q, k, v and out as rows of `T` (f32 or vec4<f32>), the logsumexp aux. */
function fwdIo(n: Node, T: string): ShaderIo {
  const [q, k, v] = n.inputs;
  return bind({
    q: read(q, T),
    k: read(k, T),
    v: read(v, T),
    out: write(n, T),
    lse: write({ aux: 0 }, "f32"),
  });
}

/**
 * A backward kernel's buffers: its inputs q, k, v, dy (as rows of `T`), lse, dd, then `outs`, the
 * gradients it writes (also rows of `T`).
 */
function bwdIo(n: Node, T: string, outs: Record<string, BufRef>): ShaderIo {
  const [q, k, v, dy, lse, dd] = n.inputs;
  return bind({
    q: read(q, T),
    k: read(k, T),
    v: read(v, T),
    dy: read(dy, T),
    lse: read(lse),
    dd: read(dd),
    ...Object.fromEntries(Object.entries(outs).map(([name, ref]) => [name, write(ref, T)])),
  });
}

function backwardQ(n: AttnNode, ctx: LowerCtx) {
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
  const io = bwdIo(n, "f32", { dq: { node: n } });
  const code = /* wgsl */ `
${io.wgsl}
${common(z, n.attrs, true)}
${tileConsts("BQ", "BK", t, nqt, nkt, groups, f.gx)}
${KEY_TILES}
var<workgroup> sq: array<f32, ${t.rows * z.Dh}>;
var<workgroup> sdo: array<f32, ${t.rows * z.Dh}>;
var<workgroup> sk: array<f32, ${t.cols * z.Dh}>;
var<workgroup> sv: array<f32, ${t.cols * z.Dh}>;
var<workgroup> sds: array<f32, ${t.rows * t.cols}>;

${queryTileMain(t)}
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
      bindings: io.bindings,
      workgroups: f.workgroups,
    }],
  };
}

function backwardKV(n: AttnNode, ctx: LowerCtx) {
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
  const io = bwdIo(n, "f32", { dk: { node: n }, dv: { aux: 0 } });
  const code = /* wgsl */ `
${io.wgsl}
${common(z, n.attrs, true)}
${tileConsts("BK", "BQ", t, nqt, nkt, groups, f.gx)}
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
      bindings: io.bindings,
      workgroups: f.workgroups,
    }],
  };
}

// ---- "direct" variants: one thread per row, no workgroup memory, no barriers ----

export type AttentionVariant = "tiled" | "direct";

/**
 * Largest head dims of the direct variants, with vec4 rows (Dh % 4 == 0) and with scalar rows: a
 * thread keeps 2 (fwd), 3 (bwd_q) or 4 (bwd_kv) rows of Dh floats in registers, unrolled in the
 * generated code, and lavapipe's shader compile time grows fast with that (first compile of fwd +
 * bwd_q + bwd_kv, vec4 rows: ~3 s at Dh=64, ~9 s at 128, vs ~1.5-2.5 s tiled; scalar rows: ~20 s at
 * Dh=127). Beyond these the tiled kernels run.
 */
export const DIRECT_MAX_DH = 128;
export const DIRECT_MAX_SCALAR_DH = 32;

let forced: AttentionVariant | undefined;

/**
 * Forces every attention kernel lowered from now on to use `v` (undefined restores the heuristic).
 * For tests and benchmarks. A head dim over DIRECT_MAX_DH (DIRECT_MAX_SCALAR_DH when Dh % 4 != 0)
 * still gets the tiled kernels.
 */
export function setAttentionVariant(v: AttentionVariant | undefined): void {
  forced = v;
}

/** Direct on software adapters (barriers are coroutine switches there), tiled on real GPUs. */
export function chooseAttentionVariant(Dh: number, ctx: LowerCtx): AttentionVariant {
  if (Dh > (Dh % 4 === 0 ? DIRECT_MAX_DH : DIRECT_MAX_SCALAR_DH)) return "tiled";
  return forced ?? (ctx.isSoftware ? "direct" : "tiled");
}

/** How a direct kernel holds a row of Dh floats: Dh/4 vec4 (when Dh % 4 == 0) or Dh scalars. */
interface RowRegs {
  /** WGSL element type of the row bindings and the registers. */
  T: string;
  /** Elements per row. */
  n: number;
  /** Horizontal sum of a `T` expression. */
  hsum: (x: string) => string;
}

function rowRegs(Dh: number): RowRegs {
  return Dh % 4 === 0
    ? { T: "vec4<f32>", n: Dh / 4, hsum: (x) => `dot(${x}, vec4<f32>(1.0))` }
    : { T: "f32", n: Dh, hsum: (x) => x };
}

/** `f(u)` for every element u of a row, one statement a line. */
function each(r: RowRegs, f: (u: number) => string, indent = "  "): string {
  return Array.from({ length: r.n }, (_, u) => f(u)).join(`\n${indent}`);
}

/** Statements that set `let name: f32` to Σ a(u)·b(u): vertical FMAs, one horizontal sum. */
function dotRows(
  r: RowRegs,
  name: string,
  a: (u: number) => string,
  b: (u: number) => string,
  indent: string,
) {
  const lines = [`var ${name}v = ${a(0)} * ${b(0)};`];
  for (let u = 1; u < r.n; u++) lines.push(`${name}v = fma(${a(u)}, ${b(u)}, ${name}v);`);
  lines.push(`let ${name} = ${r.hsum(`${name}v`)};`);
  return lines.join(`\n${indent}`);
}

/** Shared head of a direct kernel: the visible key/query ranges. */
const DIRECT_RANGES = /* wgsl */ `
// keys 0..key_end(i)-1 are visible to query i; queries query_start(j)..TQ-1 see key j
fn key_end(i: u32) -> u32 {
  if (!CAUSAL) { return TK; }
  return u32(clamp(i32(i) + OFF + 1, 0, i32(TK)));
}
fn query_start(j: u32) -> u32 {
  if (!CAUSAL) { return 0u; }
  return u32(clamp(i32(j) - OFF, 0, i32(TQ)));
}
`;

const DIRECT_WG = 64;

/** Opening of the thread-per-query kernels (fwd, bwd_q): which (batch, head, query) this thread is. */
const DIRECT_QUERY =
  /* wgsl */ `let x = gid.x + gid.y * GRID_STRIDE; // (b·H + h)·TQ + i, the logsumexp's order
  if (x >= N) { return; }
  let i = x % TQ;
  let bh = x / TQ;
  let b = bh / H;
  let h = bh % H;
  let hk = h / G;
  let qb = qrow(b, i, h);`;

function forwardDirect(n: AttnNode, ctx: LowerCtx) {
  const [q, k] = n.inputs;
  const z = attnDims(q, k, n.attrs);
  const r = rowRegs(z.Dh);
  const N = z.B * z.H * z.Tq;
  const g = grid1d(N, DIRECT_WG, ctx);
  const io = fwdIo(n, r.T);
  const code = /* wgsl */ `
${io.wgsl}
${attnConsts(z, n.attrs, r.n)}
const N: u32 = ${N}u;
${g.stride}
${DIRECT_RANGES}
@compute @workgroup_size(${DIRECT_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  ${DIRECT_QUERY}
  ${each(r, (u) => `let q${u} = q[qb + ${u}u];`)}
  // the unnormalised output
  ${each(r, (u) => `var o${u} = ${r.T}(0.0);`)}
  var m = NEG; // running max of the row's scores
  var l = 0.0; // running sum of exp(s - m)
  let jn = key_end(i);
  for (var j = 0u; j < jn; j++) {
    let kb = krow(b, j, hk);
    ${dotRows(r, "qk", (u) => `q${u}`, (u) => `k[kb + ${u}u]`, "    ")}
    let s = qk * SCALE;
    let mn = max(m, s);
    let alpha = exp(m - mn); // rescales what was accumulated under the old max
    let p = exp(s - mn);
    m = mn;
    l = l * alpha + p;
    ${each(r, (u) => `o${u} = fma(${r.T}(p), v[kb + ${u}u], o${u} * alpha);`, "    ")}
  }
  // a row with no visible key (causal, Tq > Tk) outputs 0
  let inv = select(0.0, 1.0 / l, l > 0.0);
  ${each(r, (u) => `out[qb + ${u}u] = o${u} * inv;`)}
  lse[x] = select(NEG, m + log(l), l > 0.0);
}
`;
  return {
    dispatches: [{
      label: "attention_fwd",
      code,
      bindings: io.bindings,
      workgroups: g.workgroups,
    }],
  };
}

function backwardQDirect(n: AttnNode, ctx: LowerCtx) {
  const [q, k] = n.inputs;
  const z = attnDims(q, k, n.attrs);
  const r = rowRegs(z.Dh);
  const N = z.B * z.H * z.Tq;
  const g = grid1d(N, DIRECT_WG, ctx);
  const io = bwdIo(n, r.T, { dq: { node: n } });
  const code = /* wgsl */ `
${io.wgsl}
${attnConsts(z, n.attrs, r.n)}
const N: u32 = ${N}u;
${g.stride}
${DIRECT_RANGES}
@compute @workgroup_size(${DIRECT_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  ${DIRECT_QUERY}
  ${each(r, (u) => `let q${u} = q[qb + ${u}u];`)}
  ${each(r, (u) => `let g${u} = dy[qb + ${u}u];`)}
  // dq before the scale
  ${each(r, (u) => `var a${u} = ${r.T}(0.0);`)}
  let lrow = lse[x];
  let drow = dd[x];
  let jn = key_end(i);
  for (var j = 0u; j < jn; j++) {
    let kb = krow(b, j, hk);
    ${each(r, (u) => `let k${u} = k[kb + ${u}u];`, "    ")}
    ${dotRows(r, "qk", (u) => `q${u}`, (u) => `k${u}`, "    ")}
    ${dotRows(r, "dp", (u) => `g${u}`, (u) => `v[kb + ${u}u]`, "    ")}
    let ds = exp(qk * SCALE - lrow) * (dp - drow);
    ${each(r, (u) => `a${u} = fma(${r.T}(ds), k${u}, a${u});`, "    ")}
  }
  ${each(r, (u) => `dq[qb + ${u}u] = a${u} * SCALE;`)}
}
`;
  return {
    dispatches: [{
      label: "attention_bwd_q",
      code,
      bindings: io.bindings,
      workgroups: g.workgroups,
    }],
  };
}

function backwardKVDirect(n: AttnNode, ctx: LowerCtx) {
  const [q, k] = n.inputs;
  const z = attnDims(q, k, n.attrs);
  const r = rowRegs(z.Dh);
  const N = z.B * z.Hkv * z.Tk;
  const g = grid1d(N, DIRECT_WG, ctx);
  const io = bwdIo(n, r.T, { dk: { node: n }, dv: { aux: 0 } });
  const code = /* wgsl */ `
${io.wgsl}
${attnConsts(z, n.attrs, r.n)}
const N: u32 = ${N}u;
${g.stride}
${DIRECT_RANGES}
@compute @workgroup_size(${DIRECT_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let x = gid.x + gid.y * GRID_STRIDE; // (b·HKV + hk)·TK + j
  if (x >= N) { return; }
  let j = x % TK;
  let bhk = x / TK;
  let b = bhk / HKV;
  let hk = bhk % HKV;
  let kb = krow(b, j, hk);
  ${each(r, (u) => `let k${u} = k[kb + ${u}u];`)}
  ${each(r, (u) => `let v${u} = v[kb + ${u}u];`)}
  // dk (before the scale) and dv
  ${each(r, (u) => `var dk${u} = ${r.T}(0.0);`)}
  ${each(r, (u) => `var dv${u} = ${r.T}(0.0);`)}
  let i0 = query_start(j);
  for (var g = 0u; g < G; g++) {
    let h = hk * G + g; // the query heads sharing this kv head
    let bh = b * H + h;
    for (var i = i0; i < TQ; i++) {
      let qb = qrow(b, i, h);
      ${each(r, (u) => `let q${u} = q[qb + ${u}u];`, "      ")}
      ${each(r, (u) => `let g${u} = dy[qb + ${u}u];`, "      ")}
      ${dotRows(r, "qk", (u) => `q${u}`, (u) => `k${u}`, "      ")}
      ${dotRows(r, "dp", (u) => `g${u}`, (u) => `v${u}`, "      ")}
      let p = exp(qk * SCALE - lse[bh * TQ + i]);
      let ds = p * (dp - dd[bh * TQ + i]);
      ${each(r, (u) => `dv${u} = fma(${r.T}(p), g${u}, dv${u});`, "      ")}
      ${each(r, (u) => `dk${u} = fma(${r.T}(ds), q${u}, dk${u});`, "      ")}
    }
  }
  ${each(r, (u) => `dk[kb + ${u}u] = dk${u} * SCALE;`)}
  ${each(r, (u) => `dv[kb + ${u}u] = dv${u};`)}
}
`;
  return {
    dispatches: [{
      label: "attention_bwd_kv",
      code,
      bindings: io.bindings,
      workgroups: g.workgroups,
    }],
  };
}

/** Lowers with the direct kernel when chooseAttentionVariant says so, else the tiled one. */
function byVariant(
  tiled: (n: AttnNode, ctx: LowerCtx) => Lowered,
  direct: (n: AttnNode, ctx: LowerCtx) => Lowered,
) {
  return (n: AttnNode, ctx: LowerCtx) =>
    chooseAttentionVariant(attnDims(n.inputs[0], n.inputs[1], n.attrs).Dh, ctx) === "direct"
      ? direct(n, ctx)
      : tiled(n, ctx);
}

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const attentionKernels: KernelsFor<
  "attention" | "attention_bwd_d" | "attention_bwd_q" | "attention_bwd_kv"
> = {
  attention: byVariant(forward, forwardDirect),
  attention_bwd_d: rowDot,
  attention_bwd_q: byVariant(backwardQ, backwardQDirect),
  attention_bwd_kv: byVariant(backwardKV, backwardKVDirect),
};
