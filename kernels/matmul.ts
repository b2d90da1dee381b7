// WGSL kernels of `matmul` (forward and the dA/dB products of its gradient, which are matmuls too).
//
// Two kernel variants, picked per shape and device limits by `chooseVariant`:
//
// "tiled" — classic shared-memory tiling, for GPUs. A workgroup of WX×WY threads computes a BM×BN
// output tile (BM = WY·TM, BN = WX·TN), each thread a TM×TN block held in registers. The K axis is
// walked in steps of BK: the workgroup cooperatively stages the BM×BK slice of op(a) and the BK×BN
// slice of op(b) in workgroup memory (zero-padded past the matrix edges, so any M, N, K works), then
// every thread does TM·TN FMAs per k from registers. Both shared tiles are stored k-major ([k][m] /
// [k][n]) whatever the trans flags, so the inner loop is the same for all four combinations; only
// the global→shared staging changes, chosen so consecutive threads read consecutive addresses. A
// thread's outputs are strided by WY / WX (rows ty + WY·i, cols tx + WX·j): shared reads are
// broadcast or conflict-free and the output stores are coalesced.
//   Staging (see `stager`) reads vec4 (or vec2<u32>: four packed f16/bf16) along the stored matrix's
// contiguous axis when that axis is a multiple of 4 long (row-major a: K % 4; transposed a: M % 4;
// b: N % 4, or K % 4 when transposed), else scalars: a quarter of the load instructions, 16-byte
// transactions. It is software-pipelined: the next slice is read from global memory into registers
// before the current one is multiplied from workgroup memory, so the load latency hides behind the
// FMAs instead of stalling every thread at the barrier. With `double` (two workgroup buffers, chosen
// where twice the tile fits, e.g. the 128×128 tile in NVIDIA's 48 KiB) the registers go to the other
// buffer right after the FMAs and one barrier per K step suffices; otherwise barrier, store, barrier.
// (Not measurable here: lavapipe never picks this variant and no GPU was at hand; correctness of
// every path is tested on lavapipe by forcing the variant.)
//
// "direct" — no workgroup memory and no barriers: for skinny products (few rows or few columns, e.g.
// a linear layer applied to a handful of tokens, or a very short K, e.g. its weight gradient) and for
// everything on software adapters (see `softwareVariant` for why: there, only the number of values
// loaded per FMA matters). Each thread computes a TM×TN block (up to 16×16) straight from global
// memory, walking K four at a time. Where the memory layout allows it, a and b are read as vec4 (f32)
// or vec2<u32> (four packed f16/bf16) — along k when it is the contiguous axis and K % 4 == 0, along
// m / n in groups of 4 rows / columns when TM / TN and M / N are multiples of 4; otherwise scalar.
// Rows and columns past the edge are clamped (reading valid data whose results are never stored), so
// the loop has no branches; a scalar loop handles the K % 4 tail.
//
// Both read b as f32 or packed f16/bf16 and store every output through the epilogue hook (`store`,
// kernels/epilogue.ts). With a norm prologue (kernels/prologue.ts; only for an untransposed a) `a` is
// the norm's input x and every element of A is normalised as it is loaded — in the tiled staging
// (scalar and vec4 slots, single and double buffered: the slots' row statistics are fetched once,
// outside the K loop) and in the direct loads (vec4 along k, scalar, and the K % 4 tail; each
// thread's TM rows' statistics fetched once before its K loop, each column's weight/bias once per k
// for all of them). No path is disabled for it. Batches go in dispatch z (tiled; folded into y beyond
// 65535) or in the 1-D thread index (direct). A 2-D b shared by every batch with an untransposed a is
// one big [batch·M, K] product: better tile occupancy, no batch dimension.

import type { DType, Node } from "../compiler/core/ir.ts";
import {
  grid1d,
  type KernelsFor,
  loadF32,
  type LowerCtx,
  type Lowered,
  storageType,
  WGSL_UNPACK,
} from "./kernel.ts";
import { matmulDims } from "../compiler/ops/matmul.ts";
import { type Epilogue, epilogueVars, epilogueWgsl } from "./epilogue.ts";
import { type Prologue, prologueVars, prologueWgsl } from "./prologue.ts";
import { bind, read, type ShaderIo } from "./bindings.ts";

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
  /** Two workgroup buffers, one barrier per K step (twice the workgroup memory). */
  double?: boolean;
}

export interface DirectVariant {
  kind: "direct";
  /** Outputs per thread along m and n (each 1..16). */
  TM: number;
  TN: number;
  /** Threads per workgroup (default 64). */
  WG?: number;
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
// With the staged/pipelined loads (best of 3, busy machine): 16×16 of 8×8 309 ms, 8×8 of 8×8 with
// two buffers 362 ms, BK 32 250 ms, 4×4 threads of 16×16 with BK 32 212 ms (and 16 s to compile),
// vs 146 ms for the direct 16×16 blocks: on lavapipe tiles stay a loss (see softwareVariant).
// 128×128 tiles, 8×8 per thread, 256 threads (16.5 KiB): for large products.
const HUGE: TiledVariant = { kind: "tiled", WX: 16, WY: 16, TM: 8, TN: 8, BK: 16 };
// 64×64 tiles, 8×8 per thread, 64 threads (8.3 KiB): large products on default-limit devices, and
// medium ones.
const BIG: TiledVariant = { kind: "tiled", WX: 8, WY: 8, TM: 8, TN: 8, BK: 16 };
// 32×32 tiles, 2×2 per thread: for smaller products (less padding waste, more workgroups).
const SMALL: TiledVariant = { kind: "tiled", WX: 16, WY: 16, TM: 2, TN: 2, BK: 16 };
// devices with tighter limits: 8×8 threads, 2×2 each, BK 8 (1 KiB)
const TINY: TiledVariant = { kind: "tiled", WX: 8, WY: 8, TM: 2, TN: 2, BK: 8 };

/** Workgroup memory a tiled variant needs (padded k-major tiles of a and b in f32; two sets if `double`). */
export function tileBytes(c: TiledVariant): number {
  return (c.double ? 2 : 1) * c.BK * (c.WY * c.TM + 1 + c.WX * c.TN + 1) * 4;
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
 * lavapipe; 4×4 blocks: 4×16 ones saved ~1 ms of ~17 there and compile 6× slower), and always on
 * software adapters (softwareVariant); else the biggest tile of which there are enough (16) to keep a
 * GPU busy and that fits the device's workgroup limits, else the 32×32 tile; the 8×8-thread tile on
 * tight devices — each with two workgroup buffers where twice its memory fits.
 */
export function chooseVariant(s: MatmulShape, ctx: LowerCtx): MatmulVariant {
  if (forced) return forced;
  const { M, K, N, batch } = s;
  // very short K (the dB of a few-token linear layer): one mostly-padded K step per tile, all
  // overhead (512×4·4×1376 on lavapipe: 38 ms tiled, 22 ms direct)
  if (M <= 16 || N <= 16 || K <= 8) {
    return { kind: "direct", TM: Math.min(M, 4), TN: Math.min(N, 4) };
  }
  if (ctx.isSoftware) return softwareVariant(s);
  const tiles = (side: number) => Math.ceil(M / side) * Math.ceil(N / side) * batch;
  // two workgroup buffers (one barrier per K step) where the device's workgroup memory allows it
  const best = (c: TiledVariant): TiledVariant => {
    const d = { ...c, double: true };
    return fits(d, ctx) ? d : c;
  };
  if (M >= 128 && N >= 128 && tiles(128) >= 16 && fits(HUGE, ctx)) return best(HUGE);
  if (M >= 64 && N >= 64 && tiles(64) >= 16 && fits(BIG, ctx)) return best(BIG);
  if (fits(SMALL, ctx)) return best(SMALL);
  return best(TINY);
}

// Direct blocks for CPU-emulated adapters (see softwareVariant).
const SOFT_BIG: DirectVariant = { kind: "direct", TM: 16, TN: 16, WG: 32 };
const SOFT_MID: DirectVariant = { kind: "direct", TM: 8, TN: 8 };

/**
 * The variant for a software adapter. lavapipe (Mesa 22.3) runs 8 invocations as the lanes of one
 * AVX2 vector, so FMAs are nearly free, but it emulates every load from a buffer lane by lane: ~7.5 ns
 * per invocation and component, measured the same for uniform and divergent addresses and for
 * storage and workgroup memory (a vec4 costs ~3.7 scalar loads). The time is thus the number of
 * values loaded, M·N·K·(1/TM + 1/TN) for TM×TN outputs per thread: workgroup tiles cannot help (their
 * reads from workgroup memory cost as much as global ones, plus barriers) and vector loads barely
 * do; only bigger register blocks count. 1024³ on lavapipe, 2 cores (CPU ms per product, noisy):
 * 8×8 ~2150, 16×8 ~1700, 16×16 ~1150, 24×16 ~1060, 32×16 ~950, 32×32 ~730; `deno task bench`
 * matmul-1024 went from 1155 ms (8×8) to 617-680 ms (16×16), matmul-512 from 155 to 91-95 ms. But
 * the compile time of the unrolled block grows with it: ~0.4 s for 8×8, ~1-2 s for 16×16, ~6 s for
 * 32×16, ~17 s for 32×32; so 16×16, and only for products big enough to repay it (≥ 2^26 FMAs: ≥ 0.1 s
 * a run) with blocks for ≥ 8 workgroups. 16, 32 or 64 threads per workgroup measured the same; 32
 * gives the cores more workgroups to share. Unrolling K by 1 instead of 4 halves the compile time and
 * costs ~7%.
 */
function softwareVariant({ M, K, N, batch }: MatmulShape): DirectVariant {
  const blocks16 = Math.ceil(M / 16) * Math.ceil(N / 16) * batch;
  return M * N * K * batch >= 2 ** 26 && blocks16 >= 8 * SOFT_BIG.WG! ? SOFT_BIG : SOFT_MID;
}

/** Label of a matmul node's dispatch: matmul_fwd, matmul_bwd_a (dA) or matmul_bwd_b (dB). */
function label(n: Node): string {
  return `matmul_${n.attrs.role}`;
}

/** What both variants need to know about a node. */
interface Geometry extends MatmulShape {
  n: Node;
  /** The operands bound as a and b (a is the norm's input under a prologue). */
  a: Node;
  b: Node;
  ta: boolean;
  tb: boolean;
  tOut: boolean;
  bias?: Node;
  bDtype: DType;
  aStride: number;
  bStride: number;
  /** A fused consumer (compiler/fuse.ts), if any. */
  epi?: Epilogue;
  /** A fused norm producing A (compiler/fuse.ts), if any: a is then the norm's input. */
  pro?: Prologue;
}

function lowerMatmul(n: Node, ctx: LowerCtx, epi?: Epilogue, pro?: Prologue): Lowered {
  const [a0, b, bias] = n.inputs;
  const ta = !!n.attrs.transA, tb = !!n.attrs.transB, tOut = !!n.attrs.transOut;
  if (pro && (ta || pro.norm !== a0)) throw new Error(`matmul: ${n} cannot take a prologue for ${pro.norm}`);
  const a = pro ? pro.x : a0;
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
    a,
    b,
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
    pro,
  };
  const v = chooseVariant({ M, K, N, batch }, ctx);
  const { code, bindings, workgroups } = v.kind === "tiled"
    ? tiledCode(geo, v, ctx)
    : directCode(geo, v, ctx);
  return { dispatches: [{ label: label(n), code, bindings, workgroups }] };
}

/** The buffers of a matmul kernel: a and b as the variant reads them, then its epilogue's and prologue's. */
function matmulIo(g: Geometry, aType: string, bType: string): ShaderIo {
  return bind({
    a: read(g.a, aType),
    b: read(g.b, bType),
    ...epilogueVars(g.n, g.bias, g.epi),
    ...prologueVars(g.pro),
  });
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

/**
 * Global → workgroup staging of one operand's BK-deep slice for the tiled variant: `R` rows of the
 * output side (m for a, n for b) × BK. Each thread owns fixed slots of the slice (their coordinates
 * are computed once, outside the K loop) and moves them through registers `<p>r<l>`: `load` fills the
 * registers from global memory (zero past the matrix edges), `store` writes them to the workgroup
 * tile (stored k-major: `<p>_tile[buf + k·LD + row]`). A slot is a vec4 along the stored matrix's
 * contiguous axis when that axis is a multiple of 4 long (4 packed 16-bit values are a vec2<u32>),
 * else one element; consecutive threads take consecutive slots along that axis (coalesced reads).
 */
interface Stager {
  /** The binding's element type. */
  elem: string;
  /** Whether slots are vec4. */
  vec: boolean;
  setup: string;
  load: (k0: string) => string;
  store: (buf: string) => string;
}

function stager(
  p: "a" | "b",
  o: {
    R: number;
    BK: number;
    NT: number;
    outer: number;
    K: number;
    kMajor: boolean;
    dtype: DType;
    pro?: boolean;
  },
): Stager {
  const { R, BK, NT, outer, K, kMajor, dtype } = o;
  // a norm prologue (kernels/prologue.ts) needs a k-major a (untransposed): its slot rows are fixed
  const pro = !!o.pro && p === "a" && kMajor;
  const wide = dtype !== "f32";
  // the stored matrix is [outer, K] when k is its contiguous axis, else [K, outer]
  const vec = kMajor ? K % 4 === 0 && BK % 4 === 0 : outer % 4 === 0 && R % 4 === 0;
  const V = vec ? 4 : 1;
  const slots = (R * BK) / V, loads = Math.ceil(slots / NT);
  const guard = loads * NT > slots;
  const row0 = p === "a" ? "m0" : "n0";
  const LD = `${R + 1}u`;
  const lines: string[] = [];
  for (let l = 0; l < loads; l++) {
    const idx = `t + ${l * NT}u`;
    // fastest along the contiguous axis
    const [r, k] = kMajor
      ? [`(${idx}) / ${BK / V}u`, `(${idx}) % ${BK / V}u * ${V}u`]
      : [`(${idx}) % ${R / V}u * ${V}u`, `(${idx}) / ${R / V}u`];
    lines.push(`let ${p}o${l} = ${r}; let ${p}k${l} = ${k};`);
    if (guard) lines.push(`let ${p}live${l} = ${idx} < ${slots}u;`);
    lines.push(`var ${p}r${l}: ${vec ? "vec4<f32>" : "f32"};`);
    if (pro) {
      // the slot's row statistics, once for the whole K loop (a clamped row where it is past the edge)
      lines.push(`let apr${l} = bat * M + min(m0 + ao${l}, M - 1u);`);
      lines.push(`let apm${l} = pro_mean(apr${l}); let aps${l} = pro_rstd(apr${l});`);
    }
  }
  const at = (go: string, gk: string) => kMajor ? `${go} * K + ${gk}` : `${gk} * ${outer}u + ${go}`;
  const base = p === "a" ? "aBase" : "bBase";
  const read = (i: string, l: number) => {
    if (pro) {
      if (!vec) return `pro(a[${i}], apm${l}, aps${l}, pro_wb(gk))`;
      const wb = rep(4, (q) => `pro_wb(gk + ${q}u)`, ", ");
      return `pro4(a[(${i}) >> 2u], apm${l}, aps${l}, ${wb})`;
    }
    if (!vec) return p === "a" ? `a[${i}]` : loadF32(dtype, "b", i);
    if (!wide) return `${p}[(${i}) >> 2u]`;
    return `vec4<f32>(${unpack4(dtype, `b[(${i}) >> 2u]`).join(", ")})`;
  };
  const load = (k0: string) =>
    Array.from({ length: loads }, (_, l) => {
      const cond = `${guard ? `${p}live${l} && ` : ""}go < ${outer}u && gk < K`;
      return `{
      let go = ${row0} + ${p}o${l}; let gk = ${k0} + ${p}k${l};
      ${p}r${l} = ${vec ? "vec4<f32>()" : "0.0"};
      if (${cond}) { let i = ${base} + ${at("go", "gk")}; ${p}r${l} = ${read("i", l)}; }
    }`;
    }).join("\n    ");
  const store = (buf: string) =>
    Array.from({ length: loads }, (_, l) => {
      const at = (q: number) =>
        kMajor ? `(${p}k${l} + ${q}u) * ${LD} + ${p}o${l}` : `${p}k${l} * ${LD} + ${p}o${l} + ${q}u`;
      const sts = vec
        ? rep(4, (q) => `${p}_tile[${buf} + ${at(q)}] = ${p}r${l}[${q}];`, " ")
        : `${p}_tile[${buf} + ${at(0)}] = ${p}r${l};`;
      return guard ? `if (${p}live${l}) { ${sts} }` : sts;
    }).join("\n    ");
  const elem = p === "a"
    ? (vec ? "vec4<f32>" : "f32")
    : vec
    ? (wide ? "vec2<u32>" : "vec4<f32>")
    : storageType(dtype);
  return { elem, vec, setup: lines.join("\n  "), load, store };
}

function tiledCode(g: Geometry, c: TiledVariant, ctx: LowerCtx) {
  const { M, N, K, batch, ta, tb, bias } = g;
  const { WX, WY, TM, TN, BK } = c;
  const BM = WY * TM, BN = WX * TN;
  const NT = WX * WY;
  const tilesM = Math.max(1, Math.ceil(M / BM)), tilesN = Math.max(1, Math.ceil(N / BN));
  const maxDim = ctx.maxWorkgroupsPerDim;
  const zc = Math.min(batch, maxDim), yb = Math.ceil(batch / zc);
  if (tilesN > maxDim || tilesM * yb > maxDim) {
    throw new Error(`matmul: ${g.n} needs ${tilesN}x${tilesM * yb} tiles, over ${maxDim} per dimension`);
  }
  const sa = stager("a", { R: BM, BK, NT, outer: M, K, kMajor: !ta, dtype: "f32", pro: !!g.pro });
  const sb = stager("b", { R: BN, BK, NT, outer: N, K, kMajor: tb, dtype: g.bDtype });
  const sizeA = BK * (BM + 1), sizeB = BK * (BN + 1);
  const nbuf = c.double ? 2 : 1;
  // double: compute from one buffer while the next slice is stored into the other, one barrier per
  // step; single: wait until everyone is done with the buffer before overwriting it
  const step = c.double
    ? /* wgsl */ `
    if (more) {
      let nxt = (((k0 / BK) + 1u) & 1u);
      ${sa.store(`nxt * ${sizeA}u`)}
      ${sb.store(`nxt * ${sizeB}u`)}
    }
    workgroupBarrier();`
    : /* wgsl */ `
    workgroupBarrier();
    if (more) {
      ${sa.store("0u")}
      ${sb.store("0u")}
    }
    workgroupBarrier();`;

  const io = matmulIo(g, sa.elem, sb.elem);
  const code = /* wgsl */ `
${io.wgsl}
${epilogueWgsl(!!bias, g.epi)}
${prologueWgsl(g.pro)}
${commonConsts(g)}
const TILES_M: u32 = ${tilesM}u;
const ZC: u32 = ${zc}u;
const BM: u32 = ${BM}u;
const BN: u32 = ${BN}u;
const BK: u32 = ${BK}u;
const LDA: u32 = ${BM + 1}u;
const LDB: u32 = ${BN + 1}u;
var<workgroup> a_tile: array<f32, ${nbuf * sizeA}>;
var<workgroup> b_tile: array<f32, ${nbuf * sizeB}>;
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
  ${sa.setup}
  ${sb.setup}
  ${grid(TM, TN, (i, j) => `var acc${i}_${j} = 0.0;`)}
  {
    ${sa.load("0u")}
    ${sb.load("0u")}
    ${sa.store("0u")}
    ${sb.store("0u")}
  }
  workgroupBarrier();
  for (var k0 = 0u; k0 < K; k0 += BK) {
    // prefetch the next slice into registers; the loads are in flight during the FMAs below
    let more = k0 + BK < K;
    if (more) {
    ${sa.load("k0 + BK")}
    ${sb.load("k0 + BK")}
    }
    let ca = ${c.double ? `((k0 / BK) & 1u) * ${sizeA}u` : "0u"};
    let cb = ${c.double ? `((k0 / BK) & 1u) * ${sizeB}u` : "0u"};
    for (var kk = 0u; kk < BK; kk++) {
      ${rep(TM, (i) => `let a${i} = a_tile[ca + kk * LDA + lid.y + ${i * WY}u];`, "\n      ")}
      ${rep(TN, (j) => `let b${j} = b_tile[cb + kk * LDB + lid.x + ${j * WX}u];`, "\n      ")}
      ${grid(TM, TN, (i, j) => `acc${i}_${j} = fma(a${i}, b${j}, acc${i}_${j});`, "\n      ")}
    }${step}
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
  return { code, bindings: io.bindings, workgroups: [tilesN, tilesM * yb, zc] as [number, number, number] };
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
  const WG = c.WG ?? 64;
  const tilesM = Math.ceil(M / TM), tilesN = Math.ceil(N / TN);
  const tasks = batch * tilesM * tilesN;
  const grid1 = grid1d(tasks, WG, ctx);
  const K4 = K - (K % 4);
  const wide = bDtype !== "f32";
  // vector reads: along k (the contiguous axis of a row-major a / transposed b) when K % 4 == 0;
  // along m / n when a thread's rows / columns come in aligned groups of 4 (TM / TN and M / N % 4 == 0)
  const aVecK = !ta && K % 4 === 0;
  const aVecM = ta && TM % 4 === 0 && M % 4 === 0;
  const bVecK = tb && K % 4 === 0;
  const bVecN = !tb && TN % 4 === 0 && N % 4 === 0;
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
  // with a prologue (never transposed a): normalise each loaded element with its row's statistics
  const pro = !!g.pro;
  // (column k's weight and bias are loaded once per k for all TM rows: pwb<kk>, or pwt in the tail)
  const pv = (i: number, e: string, wb: string) => pro ? `pro(${e}, pm${i}, ps${i}, ${wb})` : e;
  if (pro) aLoads.push(rep(4, (kk) => `let pwb${kk} = pro_wb(k + ${kk}u);`, " "));
  if (aVecK) {
    for (let i = 0; i < TM; i++) {
      const e = `a[(aBase + ${aAt(`r${i}`, "k")}) >> 2u]`;
      aLoads.push(`let av${i} = ${pro ? `pro4(${e}, pm${i}, ps${i}, pwb0, pwb1, pwb2, pwb3)` : e};`);
    }
    av = (i, kk) => `av${i}[${kk}]`;
  } else if (aVecM) {
    for (let kk = 0; kk < 4; kk++) {
      for (let q = 0; q < TM / 4; q++) {
        aLoads.push(`let av${kk}_${q} = a[(aBase + ${aAt(`rq${q}`, `k + ${kk}u`)}) >> 2u];`);
      }
    }
    av = (i, kk) => `av${kk}_${i >> 2}[${i & 3}]`;
  } else {
    for (let i = 0; i < TM; i++) {
      for (let kk = 0; kk < 4; kk++) {
        aLoads.push(`let av${i}_${kk} = ${pv(i, `ldA(aBase + ${aAt(`r${i}`, `k + ${kk}u`)})`, `pwb${kk}`)};`);
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
      for (let q = 0; q < TN / 4; q++) {
        bLoads.push(`let bw${kk}_${q} = b[(bBase + ${bAt(`k + ${kk}u`, `cq${q}`)}) >> 2u];`);
        if (wide) {
          bLoads.push(...unpack4(bDtype, `bw${kk}_${q}`).map((e, j) => `let bv${kk}_${4 * q + j} = ${e};`));
        }
      }
    }
    bv = wide ? (kk, j) => `bv${kk}_${j}` : (kk, j) => `bw${kk}_${j >> 2}[${j & 3}]`;
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
    ${pro ? "let pwt = pro_wb(k);" : ""}
    ${rep(TM, (i) => `let at${i} = ${pv(i, `ldA(aBase + ${aAt(`r${i}`, "k")})`, "pwt")};`, "\n    ")}
    ${rep(TN, (j) => `let bt${j} = ldB(bBase + ${bAt("k", `c${j}`)});`, "\n    ")}
    ${grid(TM, TN, (i, j) => `acc${i}_${j} = fma(at${i}, bt${j}, acc${i}_${j});`, "\n    ")}
  }`
    : "";

  const io = matmulIo(g, aType, bType);
  const code = /* wgsl */ `
${io.wgsl}
${epilogueWgsl(!!bias, g.epi)}
${prologueWgsl(g.pro)}
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
  // rows / columns past the edge read the last valid one (group of 4); their results are not stored
  ${rep(TM, (i) => `let r${i} = min(m0 + ${i}u, M - 1u);`)}
  ${
    pro
      ? rep(TM, (i) => `let pm${i} = pro_mean(bat * M + r${i}); let ps${i} = pro_rstd(bat * M + r${i});`)
      : ""
  }
  ${rep(TN, (j) => `let c${j} = min(n0 + ${j}u, N - 1u);`)}
  ${aVecM ? rep(TM / 4, (q) => `let rq${q} = min(m0 + ${4 * q}u, M - 4u);`) : ""}
  ${bVecN ? rep(TN / 4, (q) => `let cq${q} = min(n0 + ${4 * q}u, N - 4u);`) : ""}
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
  return { code, bindings: io.bindings, workgroups: grid1.workgroups };
}

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const matmulKernels: KernelsFor<"matmul"> = {
  matmul: (n, ctx, epi, _inPlace, extra) => lowerMatmul(n, ctx, epi, extra?.prologue),
};
