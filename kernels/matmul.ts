// WGSL kernel of `matmul` (forward and the dA/dB products of its gradient, which are matmuls too).
//
// Classic shared-memory tiling: a workgroup of W×W threads computes a BM×BN output tile (BM = BN =
// W·T), each thread a T×T block held in registers. The K axis is walked in steps of BK: the
// workgroup cooperatively stages the BM×BK slice of op(a) and the BK×BN slice of op(b) in workgroup
// memory (zero-padded past the matrix edges, so any M, N, K works), then every thread does T·T FMAs
// per k from registers. Both shared tiles are stored k-major ([k][m] / [k][n]) whatever the trans
// flags, so the inner loop is the same for all four combinations; only the global→shared load
// indexing changes, chosen so consecutive threads read consecutive addresses. A thread's outputs are
// strided by W (rows ty + W·i, cols tx + W·j): shared reads are broadcast / conflict-free and the
// output stores are coalesced.
//
// Tile configs (W = 16, so 256 invocations; BK = 16):
//   T = 4 → 64×64 tiles, 8.3 KiB of workgroup memory: 16 FMAs per 2 shared loads per k, for large
//           products where there are enough tiles to fill the GPU;
//   T = 2 → 32×32 tiles, 4.2 KiB: for small or skinny products (less padding waste, more workgroups).
// Batches go in dispatch z (and fold into y beyond 65535). A 2-D b shared by every batch with an
// untransposed a is one big [batch·M, K] product: better tile occupancy, no batch dimension.

import { defineKernel } from "../compiler/registry.ts";
import type { Node } from "../compiler/ir.ts";
import { loadF32, type LowerCtx, type Lowered, storageType, WGSL_UNPACK } from "./kernel.ts";
import { matmulDims } from "../compiler/ops/matmul.ts";

export interface TileConfig {
  /** Threads per workgroup side. */
  W: number;
  /** Outputs per thread side. */
  T: number;
  /** K step staged in workgroup memory. */
  BK: number;
}

const BIG: TileConfig = { W: 16, T: 4, BK: 16 };
const SMALL: TileConfig = { W: 16, T: 2, BK: 16 };

/** Workgroup memory a config needs (two padded k-major tiles of f32). */
export function tileBytes(c: TileConfig): number {
  return 2 * c.BK * (c.W * c.T + 1) * 4;
}

/** The big tile once the product has enough 64×64 tiles to keep a GPU busy; the small one otherwise. */
export function chooseTile(M: number, N: number, batch: number, ctx: LowerCtx): TileConfig {
  const fits = (c: TileConfig) => c.W * c.W <= ctx.maxInvocations && tileBytes(c) <= ctx.maxWorkgroupStorage;
  const tiles64 = Math.ceil(M / 64) * Math.ceil(N / 64) * batch;
  if (M >= 64 && N >= 64 && tiles64 >= 16 && fits(BIG)) return BIG;
  if (fits(SMALL)) return SMALL;
  // a device with tighter limits: 8×8 threads, 2×2 each, BK 8 (1 KiB)
  return { W: 8, T: 2, BK: 8 };
}

/** Label of a matmul node's dispatch: matmul_fwd, matmul_bwd_a (dA) or matmul_bwd_b (dB). */
function label(n: Node): string {
  return `matmul_${(n.attrs.role as string | undefined) ?? "fwd"}`;
}

function lowerMatmul(n: Node, ctx: LowerCtx): Lowered {
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
  const c = chooseTile(M, N, batch, ctx);
  const { W, T, BK } = c;
  const BM = W * T, LDS = BM + 1;
  const NT = W * W;
  const loads = Math.ceil((BM * BK) / NT);
  const tilesM = Math.max(1, Math.ceil(M / BM)), tilesN = Math.max(1, Math.ceil(N / BM));
  const maxDim = ctx.maxWorkgroupsPerDim;
  const zc = Math.min(batch, maxDim), yb = Math.ceil(batch / zc);
  if (tilesN > maxDim || tilesM * yb > maxDim) {
    throw new Error(`matmul: ${n} needs ${tilesN}x${tilesM * yb} tiles, over ${maxDim} per dimension`);
  }
  const aStride = M * K, bStride = dims.sharedB ? 0 : K * N;

  // global → shared staging of one element per (l) step; `idx` is this thread's slot in the tile
  const aIdx = ta ? "gk * M + gm" : "gm * K + gk";
  const bIdx = tb ? "gn * K + gk" : "gk * N + gn";
  // decompose idx so that consecutive threads walk the contiguous axis of the stored matrix
  const aCoord = ta ? "let kk = idx / BM; let mm = idx % BM;" : "let mm = idx / BK; let kk = idx % BK;";
  const bCoord = tb ? "let nn = idx / BK; let kk = idx % BK;" : "let kk = idx / BM; let nn = idx % BM;";
  const guard = loads * NT > BM * BK ? "if (idx >= BM * BK) { break; }" : "";

  const lines = (f: (i: number, j: number) => string, sep = "\n    ") => {
    const r: string[] = [];
    for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) r.push(f(i, j));
    return r.join(sep);
  };
  const range = (f: (i: number) => string, sep = "\n      ") =>
    Array.from({ length: T }, (_, i) => f(i)).join(sep);
  const outIdx = tOut ? "bat * M * N + gn * M + gm" : "(bat * M + gm) * N + gn";

  const code = /* wgsl */ `
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<${storageType(b.dtype)}>;
${bias ? "@group(0) @binding(2) var<storage, read> bias: array<f32>;" : ""}
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
const M: u32 = ${M}u;
const N: u32 = ${N}u;
const K: u32 = ${K}u;
const BATCH: u32 = ${batch}u;
const A_BSTRIDE: u32 = ${aStride}u;
const B_BSTRIDE: u32 = ${bStride}u;
const TILES_M: u32 = ${tilesM}u;
const ZC: u32 = ${zc}u;
const BM: u32 = ${BM}u;
const BK: u32 = ${BK}u;
const LDS: u32 = ${LDS}u;
const W: u32 = ${W}u;
var<workgroup> As: array<f32, ${BK * LDS}>;
var<workgroup> Bs: array<f32, ${BK * LDS}>;
${WGSL_UNPACK}
@compute @workgroup_size(${W}, ${W})
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) t: u32,
) {
  // workgroup_id is uniform, so this exit keeps the barriers below in uniform control flow
  let bat = (wid.y / TILES_M) * ZC + wid.z;
  if (bat >= BATCH) { return; }
  let m0 = (wid.y % TILES_M) * BM;
  let n0 = wid.x * BM;
  let aBase = bat * A_BSTRIDE;
  let bBase = bat * B_BSTRIDE;
  ${lines((i, j) => `var acc${i}${j} = 0.0;`, "\n  ")}
  for (var k0 = 0u; k0 < K; k0 += BK) {
    for (var l = 0u; l < ${loads}u; l++) {
      let idx = t + l * ${NT}u;
      ${guard}
      {
        ${aCoord}
        let gm = m0 + mm; let gk = k0 + kk;
        var v = 0.0;
        if (gm < M && gk < K) { v = a[aBase + ${aIdx}]; }
        As[kk * LDS + mm] = v;
      }
      {
        ${bCoord}
        let gn = n0 + nn; let gk = k0 + kk;
        var v = 0.0;
        if (gn < N && gk < K) { let bi = bBase + ${bIdx}; v = ${loadF32(b.dtype, "b", "bi")}; }
        Bs[kk * LDS + nn] = v;
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      ${range((i) => `let a${i} = As[kk * LDS + lid.y + ${i * W}u];`)}
      ${range((j) => `let b${j} = Bs[kk * LDS + lid.x + ${j * W}u];`)}
      ${lines((i, j) => `acc${i}${j} = fma(a${i}, b${j}, acc${i}${j});`, "\n      ")}
    }
    workgroupBarrier();
  }
  ${
    range((i) =>
      range((j) =>
        /* wgsl */ `{
    let gm = m0 + lid.y + ${i * W}u; let gn = n0 + lid.x + ${j * W}u;
    if (gm < M && gn < N) { out[${outIdx}] = acc${i}${j}${bias ? " + bias[gn]" : ""}; }
  }`, "\n  "), "\n  ")
  }
}
`;
  const bindings = [
    { name: "a", ref: { node: a } },
    { name: "b", ref: { node: b } },
    ...(bias ? [{ name: "bias", ref: { node: bias } }] : []),
    { name: "out", ref: { node: n } },
  ];
  return { dispatches: [{ label: label(n), code, bindings, workgroups: [tilesN, tilesM * yb, zc] }] };
}

defineKernel("matmul", (n, ctx) => lowerMatmul(n, ctx));
