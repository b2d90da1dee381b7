// WGSL kernels of `matmul` (forward and the dA/dB products of its gradient, which are matmuls too).
//
// Two kernel variants, picked per shape and device limits by `chooseVariant`:
//
// "tiled" — classic shared-memory tiling. A workgroup of WX×WY threads computes a BM×BN output tile
// (BM = WY·TM, BN = WX·TN), each thread a TM×TN block held in registers. The K axis is walked in
// steps of BK: the workgroup cooperatively stages the BM×BK slice of op(a) and the BK×BN slice of
// op(b) in workgroup memory (zero-padded past the matrix edges, so any M, N, K works), then every
// thread does TM·TN FMAs per k from registers. Both shared tiles are stored k-major ([k][m] / [k][n])
// whatever the trans flags, so the inner loop is the same for all four combinations; only the
// global→shared load indexing changes, chosen so consecutive threads read consecutive addresses. A
// thread's outputs are strided by WY / WX (rows ty + WY·i, cols tx + WX·j): shared reads are broadcast
// or conflict-free and the output stores are coalesced. Two barriers per BK step: a bigger BK (when
// the device's workgroup memory allows it) halves them, which matters most on software adapters
// (lavapipe runs barriers as coroutine switches).
//
// "direct" — no workgroup memory and no barriers, for skinny products (few rows or few columns, e.g.
// a linear layer applied to a handful of tokens, or a very short K, e.g. its weight gradient): each thread computes a TM×TN block straight from
// global memory, walking K four at a time. Where the memory layout allows it, a and b are read as
// vec4 (f32) or vec2<u32> (four packed f16/bf16) — along k when it is the contiguous axis and K % 4
// == 0, along m / n when TM / TN is 4 and M / N % 4 == 0; otherwise scalar. Rows and columns past
// the edge are clamped (reading valid data whose results are never stored), so the loop has no
// branches; a scalar loop handles the K % 4 tail.
//
// Both read b as f32 or packed f16/bf16. Batches go in dispatch z (tiled; folded into y beyond 65535)
// or in the 1-D thread index (direct). A 2-D b shared by every batch with an untransposed a is one
// big [batch·M, K] product: better tile occupancy, no batch dimension.

import { defineKernel } from "../compiler/registry.ts";
import type { DType, Node } from "../compiler/ir.ts";
import { grid1d, loadF32, type LowerCtx, type Lowered, storageType, WGSL_UNPACK } from "./kernel.ts";
import { matmulDims } from "../compiler/ops/matmul.ts";
import { type Epilogue, epilogueBindings, epilogueWgsl } from "./epilogue.ts";

export interface TiledVariant {
  kind: "tiled";
  /** Threads per workgroup along n (x) and m (y). */
  WX: number;
  WY: number;
  /** Outputs per thread along m and n. */
  TM: number;
  TN: number;
  /** K step staged in workgroup memory. */
  BK: number;
}

export interface DirectVariant {
  kind: "direct";
  /** Outputs per thread along m and n (each 1..8). */
  TM: number;
  TN: number;
}

export type MatmulVariant = TiledVariant | DirectVariant;

/** The geometry a variant is chosen for (after folding a shared-b batch into M). */
export interface MatmulShape {
  M: number;
  K: number;
  N: number;
  batch: number;
}

// Tile configs. On lavapipe (512³ f32), bigger per-thread blocks paid most (more FMAs per shared
// load and per barrier): 16×16 threads of 4×4 took 827 ms, 8×8 of 8×8 491 ms, 16×16 of 8×8 439 ms;
// BK 32 instead of 16 made no measurable difference, so BK stays 16 (half the workgroup memory).
// 128×128 tiles, 8×8 per thread, 256 threads (16.5 KiB): for large products.
const HUGE: TiledVariant = { kind: "tiled", WX: 16, WY: 16, TM: 8, TN: 8, BK: 16 };
// 64×64 tiles, 8×8 per thread, 64 threads (8.3 KiB): large products on default-limit devices, and
// medium ones.
const BIG: TiledVariant = { kind: "tiled", WX: 8, WY: 8, TM: 8, TN: 8, BK: 16 };
// 32×32 tiles, 2×2 per thread: for smaller products (less padding waste, more workgroups).
const SMALL: TiledVariant = { kind: "tiled", WX: 16, WY: 16, TM: 2, TN: 2, BK: 16 };
// devices with tighter limits: 8×8 threads, 2×2 each, BK 8 (1 KiB)
const TINY: TiledVariant = { kind: "tiled", WX: 8, WY: 8, TM: 2, TN: 2, BK: 8 };

/** Workgroup memory a tiled variant needs (two padded k-major tiles of f32). */
export function tileBytes(c: TiledVariant): number {
  return c.BK * (c.WY * c.TM + 1 + c.WX * c.TN + 1) * 4;
}

function fits(c: TiledVariant, ctx: LowerCtx): boolean {
  return c.WX * c.WY <= ctx.maxInvocations && tileBytes(c) <= ctx.maxWorkgroupStorage;
}

let forced: MatmulVariant | undefined;

/**
 * Forces every matmul lowered from now on to use `v` (undefined restores the heuristic). For tests
 * and benchmarks, which must prove each variant whatever the heuristic would pick.
 */
export function setMatmulVariant(v: MatmulVariant | undefined): void {
  forced = v;
}

/**
 * The variant for a product: "direct" when it is skinny (≤ 16 rows or columns, or K ≤ 8: a tile would be
 * mostly padding and its barriers pure overhead; 4×512·512×1376 took 664 ms tiled, 40 ms direct on
 * lavapipe), else the biggest tile of which there are enough (16) to keep a GPU busy and that fits
 * the device's workgroup limits, else the 32×32 tile; the 8×8-thread tile on tight devices.
 */
export function chooseVariant(s: MatmulShape, ctx: LowerCtx): MatmulVariant {
  if (forced) return forced;
  const { M, K, N, batch } = s;
  // very short K (the dB of a few-token linear layer): one mostly-padded K step per tile, all
  // overhead (512×4·4×1376 on lavapipe: 38 ms tiled, 22 ms direct)
  if (M <= 16 || N <= 16 || K <= 8) {
    return { kind: "direct", TM: Math.min(M, 4), TN: Math.min(N, 4) };
  }
  // on CPU-emulated adapters barriers cost more than the reuse workgroup tiles buy: 8×8 outputs per
  // thread straight from memory (512³ on lavapipe: 283 ms vs 424 ms for the best tiled variant)
  if (ctx.isSoftware) return { kind: "direct", TM: 8, TN: 8 };
  const tiles = (side: number) => Math.ceil(M / side) * Math.ceil(N / side) * batch;
  if (M >= 128 && N >= 128 && tiles(128) >= 16 && fits(HUGE, ctx)) return HUGE;
  if (M >= 64 && N >= 64 && tiles(64) >= 16 && fits(BIG, ctx)) return BIG;
  if (fits(SMALL, ctx)) return SMALL;
  return TINY;
}

/** Label of a matmul node's dispatch: matmul_fwd, matmul_bwd_a (dA) or matmul_bwd_b (dB). */
function label(n: Node): string {
  return `matmul_${(n.attrs.role as string | undefined) ?? "fwd"}`;
}

/** What both variants need to know about a node. */
interface Geometry extends MatmulShape {
  n: Node;
  ta: boolean;
  tb: boolean;
  tOut: boolean;
  bias?: Node;
  bDtype: DType;
  aStride: number;
  bStride: number;
  /** A fused consumer (compiler/fuse.ts), if any. */
  epi?: Epilogue;
}

function lowerMatmul(n: Node, ctx: LowerCtx, epi?: Epilogue): Lowered {
  const [a, b, bias] = n.inputs;
  const ta = !!n.attrs.transA, tb = !!n.attrs.transB, tOut = !!n.attrs.transOut;
  const dims = matmulDims(n.inputs, n.attrs);
  let batch = dims.batch.reduce((p, d) => p * d, 1);
  let M = dims.M;
  const { K, N } = dims;
  // shared b, row-major a and output: the batch is just more rows
  if (dims.sharedB && !ta && !tOut && batch > 1) {
    M *= batch;
    batch = 1;
  }
  const geo: Geometry = {
    n,
    M,
    K,
    N,
    batch,
    ta,
    tb,
    tOut,
    bias,
    bDtype: b.dtype,
    aStride: M * K,
    bStride: dims.sharedB ? 0 : K * N,
    epi,
  };
  const v = chooseVariant({ M, K, N, batch }, ctx);
  const { code, workgroups } = v.kind === "tiled" ? tiledCode(geo, v, ctx) : directCode(geo, v, ctx);
  const bindings = [
    { name: "a", ref: { node: a } },
    { name: "b", ref: { node: b } },
    ...epilogueBindings(n, bias, epi),
  ];
  return { dispatches: [{ label: label(n), code, bindings, workgroups }] };
}

/** Repeats f(i) for i < count, joined by sep. */
function rep(count: number, f: (i: number) => string, sep = "\n  "): string {
  return Array.from({ length: count }, (_, i) => f(i)).join(sep);
}

/** f(i, j) for i < TM, j < TN. */
function grid(TM: number, TN: number, f: (i: number, j: number) => string, sep = "\n  "): string {
  return rep(TM, (i) => rep(TN, (j) => f(i, j), sep), sep);
}

function outIndex(g: Geometry): string {
  return g.tOut ? "bat * M * N + gn * M + gm" : "(bat * M + gm) * N + gn";
}

function commonConsts(g: Geometry): string {
  return `const M: u32 = ${g.M}u;
const N: u32 = ${g.N}u;
const K: u32 = ${g.K}u;
const BATCH: u32 = ${g.batch}u;
const A_BSTRIDE: u32 = ${g.aStride}u;
const B_BSTRIDE: u32 = ${g.bStride}u;`;
}

function tiledCode(g: Geometry, c: TiledVariant, ctx: LowerCtx) {
  const { M, N, batch, ta, tb, bias } = g;
  const { WX, WY, TM, TN, BK } = c;
  const BM = WY * TM, BN = WX * TN;
  const NT = WX * WY;
  const loadsA = Math.ceil((BM * BK) / NT), loadsB = Math.ceil((BN * BK) / NT);
  const tilesM = Math.max(1, Math.ceil(M / BM)), tilesN = Math.max(1, Math.ceil(N / BN));
  const maxDim = ctx.maxWorkgroupsPerDim;
  const zc = Math.min(batch, maxDim), yb = Math.ceil(batch / zc);
  if (tilesN > maxDim || tilesM * yb > maxDim) {
    throw new Error(`matmul: ${g.n} needs ${tilesN}x${tilesM * yb} tiles, over ${maxDim} per dimension`);
  }
  // global → shared staging; `idx` is this thread's slot in the tile. Decompose idx so that
  // consecutive threads walk the contiguous axis of the stored matrix.
  const aIdx = ta ? "gk * M + gm" : "gm * K + gk";
  const bIdx = tb ? "gn * K + gk" : "gk * N + gn";
  const aCoord = ta ? "let kk = idx / BM; let mm = idx % BM;" : "let mm = idx / BK; let kk = idx % BK;";
  const bCoord = tb ? "let nn = idx / BK; let kk = idx % BK;" : "let kk = idx / BN; let nn = idx % BN;";
  const guardA = loadsA * NT > BM * BK ? "if (idx >= BM * BK) { break; }" : "";
  const guardB = loadsB * NT > BN * BK ? "if (idx >= BN * BK) { break; }" : "";

  const code = /* wgsl */ `
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<${storageType(g.bDtype)}>;
${epilogueWgsl(!!bias, g.epi)}
${commonConsts(g)}
const TILES_M: u32 = ${tilesM}u;
const ZC: u32 = ${zc}u;
const BM: u32 = ${BM}u;
const BN: u32 = ${BN}u;
const BK: u32 = ${BK}u;
const LDA: u32 = ${BM + 1}u;
const LDB: u32 = ${BN + 1}u;
var<workgroup> As: array<f32, ${BK * (BM + 1)}>;
var<workgroup> Bs: array<f32, ${BK * (BN + 1)}>;
${WGSL_UNPACK}
@compute @workgroup_size(${WX}, ${WY})
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  // workgroup_id is uniform, so this exit keeps the barriers below in uniform control flow
  let bat = (wid.y / TILES_M) * ZC + wid.z;
  if (bat >= BATCH) { return; }
  let m0 = (wid.y % TILES_M) * BM;
  let n0 = wid.x * BN;
  let aBase = bat * A_BSTRIDE;
  let bBase = bat * B_BSTRIDE;
  ${grid(TM, TN, (i, j) => `var acc${i}_${j} = 0.0;`)}
  for (var k0 = 0u; k0 < K; k0 += BK) {
    for (var l = 0u; l < ${loadsA}u; l++) {
      let idx = t + l * ${NT}u;
      ${guardA}
      ${aCoord}
      let gm = m0 + mm; let gk = k0 + kk;
      var v = 0.0;
      if (gm < M && gk < K) { v = a[aBase + ${aIdx}]; }
      As[kk * LDA + mm] = v;
    }
    for (var l = 0u; l < ${loadsB}u; l++) {
      let idx = t + l * ${NT}u;
      ${guardB}
      ${bCoord}
      let gn = n0 + nn; let gk = k0 + kk;
      var v = 0.0;
      if (gn < N && gk < K) { let bi = bBase + ${bIdx}; v = ${loadF32(g.bDtype, "b", "bi")}; }
      Bs[kk * LDB + nn] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      ${rep(TM, (i) => `let a${i} = As[kk * LDA + lid.y + ${i * WY}u];`, "\n      ")}
      ${rep(TN, (j) => `let b${j} = Bs[kk * LDB + lid.x + ${j * WX}u];`, "\n      ")}
      ${grid(TM, TN, (i, j) => `acc${i}_${j} = fma(a${i}, b${j}, acc${i}_${j});`, "\n      ")}
    }
    workgroupBarrier();
  }
  ${
    grid(TM, TN, (i, j) =>
      /* wgsl */ `{
    let gm = m0 + lid.y + ${i * WY}u; let gn = n0 + lid.x + ${j * WX}u;
    if (gm < M && gn < N) { store(${outIndex(g)}, gn, acc${i}_${j}); }
  }`)
  }
}
`;
  return { code, workgroups: [tilesN, tilesM * yb, zc] as [number, number, number] };
}

/** Unpacks four f16/bf16 values from a vec2<u32> expression, in element order. */
function unpack4(dtype: DType, w: string): string[] {
  if (dtype === "bf16") {
    return [
      `bitcast<f32>(${w}.x << 16u)`,
      `bitcast<f32>(${w}.x & 0xffff0000u)`,
      `bitcast<f32>(${w}.y << 16u)`,
      `bitcast<f32>(${w}.y & 0xffff0000u)`,
    ];
  }
  return [
    `unpack2x16float(${w}.x).x`,
    `unpack2x16float(${w}.x).y`,
    `unpack2x16float(${w}.y).x`,
    `unpack2x16float(${w}.y).y`,
  ];
}

function directCode(g: Geometry, c: DirectVariant, ctx: LowerCtx) {
  const { M, K, N, batch, ta, tb, bias, bDtype } = g;
  const { TM, TN } = c;
  const tilesM = Math.ceil(M / TM), tilesN = Math.ceil(N / TN);
  const tasks = batch * tilesM * tilesN;
  const WG = 64;
  const grid1 = grid1d(tasks, WG, ctx);
  const K4 = K - (K % 4);
  const wide = bDtype !== "f32";
  // vector reads: along k (the contiguous axis of a row-major a / transposed b) when K % 4 == 0;
  // along m / n when a thread's 4 rows / columns are contiguous and aligned
  const aVecK = !ta && K % 4 === 0;
  const aVecM = ta && TM === 4 && M % 4 === 0;
  const bVecK = tb && K % 4 === 0;
  const bVecN = !tb && TN === 4 && N % 4 === 0;
  const aVec = aVecK || aVecM, bVec = bVecK || bVecN;
  const aType = aVec ? "vec4<f32>" : "f32";
  const bType = bVec ? (wide ? "vec2<u32>" : "vec4<f32>") : storageType(bDtype);
  // scalar element reads whatever the binding's element type (vec2<u32> holds four 16-bit values)
  const ldA = aVec ? "a[i >> 2u][i & 3u]" : "a[i]";
  const word = "b[i >> 2u][(i >> 1u) & 1u]";
  const ldB = !bVec
    ? loadF32(bDtype, "b", "i")
    : !wide
    ? "b[i >> 2u][i & 3u]"
    : bDtype === "bf16"
    ? `bf16_at(${word}, i & 1u)`
    : `unpack2x16float(${word})[i & 1u]`;

  const aAt = (i: string, k: string) => ta ? `(${k}) * M + ${i}` : `${i} * K + ${k}`;
  const bAt = (k: string, j: string) => tb ? `${j} * K + ${k}` : `(${k}) * N + ${j}`;

  // loads of one 4-deep k chunk: av(i, kk) and bv(kk, j) name the values
  const aLoads: string[] = [];
  let av: (i: number, kk: number) => string;
  if (aVecK) {
    for (let i = 0; i < TM; i++) aLoads.push(`let av${i} = a[(aBase + ${aAt(`r${i}`, "k")}) >> 2u];`);
    av = (i, kk) => `av${i}[${kk}]`;
  } else if (aVecM) {
    for (let kk = 0; kk < 4; kk++) {
      aLoads.push(`let av${kk} = a[(aBase + ${aAt("m0", `k + ${kk}u`)}) >> 2u];`);
    }
    av = (i, kk) => `av${kk}[${i}]`;
  } else {
    for (let i = 0; i < TM; i++) {
      for (let kk = 0; kk < 4; kk++) {
        aLoads.push(`let av${i}_${kk} = ldA(aBase + ${aAt(`r${i}`, `k + ${kk}u`)});`);
      }
    }
    av = (i, kk) => `av${i}_${kk}`;
  }
  const bLoads: string[] = [];
  let bv: (kk: number, j: number) => string;
  if (bVecK) {
    for (let j = 0; j < TN; j++) {
      bLoads.push(`let bw${j} = b[(bBase + ${bAt("k", `c${j}`)}) >> 2u];`);
      if (wide) bLoads.push(...unpack4(bDtype, `bw${j}`).map((e, kk) => `let bv${kk}_${j} = ${e};`));
    }
    bv = wide ? (kk, j) => `bv${kk}_${j}` : (kk, j) => `bw${j}[${kk}]`;
  } else if (bVecN) {
    for (let kk = 0; kk < 4; kk++) {
      bLoads.push(`let bw${kk} = b[(bBase + ${bAt(`k + ${kk}u`, "n0")}) >> 2u];`);
      if (wide) bLoads.push(...unpack4(bDtype, `bw${kk}`).map((e, j) => `let bv${kk}_${j} = ${e};`));
    }
    bv = wide ? (kk, j) => `bv${kk}_${j}` : (kk, j) => `bw${kk}[${j}]`;
  } else {
    for (let kk = 0; kk < 4; kk++) {
      for (let j = 0; j < TN; j++) {
        bLoads.push(`let bv${kk}_${j} = ldB(bBase + ${bAt(`k + ${kk}u`, `c${j}`)});`);
      }
    }
    bv = (kk, j) => `bv${kk}_${j}`;
  }
  const fmas: string[] = [];
  for (let kk = 0; kk < 4; kk++) {
    for (let i = 0; i < TM; i++) {
      for (let j = 0; j < TN; j++) fmas.push(`acc${i}_${j} = fma(${av(i, kk)}, ${bv(kk, j)}, acc${i}_${j});`);
    }
  }
  const tail = K4 < K
    ? /* wgsl */ `
  for (var k = ${K4}u; k < K; k++) {
    ${rep(TM, (i) => `let at${i} = ldA(aBase + ${aAt(`r${i}`, "k")});`, "\n    ")}
    ${rep(TN, (j) => `let bt${j} = ldB(bBase + ${bAt("k", `c${j}`)});`, "\n    ")}
    ${grid(TM, TN, (i, j) => `acc${i}_${j} = fma(at${i}, bt${j}, acc${i}_${j});`, "\n    ")}
  }`
    : "";

  const code = /* wgsl */ `
@group(0) @binding(0) var<storage, read> a: array<${aType}>;
@group(0) @binding(1) var<storage, read> b: array<${bType}>;
${epilogueWgsl(!!bias, g.epi)}
${commonConsts(g)}
const TILES_N: u32 = ${tilesN}u;
const TILES: u32 = ${tilesM * tilesN}u;
const TASKS: u32 = ${tasks}u;
${grid1.stride}
${WGSL_UNPACK}
fn ldA(i: u32) -> f32 { return ${ldA}; }
fn ldB(i: u32) -> f32 { return ${ldB}; }
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let id = gid.x + gid.y * GRID_STRIDE;
  if (id >= TASKS) { return; }
  let bat = id / TILES;
  let m0 = (id % TILES / TILES_N) * ${TM}u;
  let n0 = (id % TILES_N) * ${TN}u;
  let aBase = bat * A_BSTRIDE;
  let bBase = bat * B_BSTRIDE;
  // rows / columns past the edge read the last valid one; their results are not stored
  ${rep(TM, (i) => `let r${i} = min(m0 + ${i}u, M - 1u);`)}
  ${rep(TN, (j) => `let c${j} = min(n0 + ${j}u, N - 1u);`)}
  ${grid(TM, TN, (i, j) => `var acc${i}_${j} = 0.0;`)}
  for (var k = 0u; k < ${K4}u; k += 4u) {
    ${aLoads.join("\n    ")}
    ${bLoads.join("\n    ")}
    ${fmas.join("\n    ")}
  }${tail}
  ${
    grid(TM, TN, (i, j) =>
      /* wgsl */ `{
    let gm = m0 + ${i}u; let gn = n0 + ${j}u;
    if (gm < M && gn < N) { store(${outIndex(g)}, gn, acc${i}_${j}); }
  }`)
  }
}
`;
  return { code, workgroups: grid1.workgroups };
}

defineKernel("matmul", (n, ctx, epi) => lowerMatmul(n, ctx, epi));
