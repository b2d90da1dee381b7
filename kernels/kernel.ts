// What a kernel lowering produces, and small WGSL helpers shared by the kernel families.
//
// A lowering turns one IR node into one or more compute dispatches. Shapes are static, so sizes and
// strides are baked into the WGSL as `const`s: each distinct shape gets its own pipeline, compiled
// once when the plan is built. Kernels write a shader's buffer declarations and its Binding list with
// one call (kernels/bindings.ts). Bindings are matched to the shader's variables *by name* and checked
// against wgsl_reflect's view of the shader (compiler/runtime/reflect.ts): every declared binding must
// be bound, read_write bindings may only point at the node's own outputs, its scratch, or inputs the op
// declares it writes.

import { type Attrs, byteSize, type DType, type Node, type OpNode } from "../compiler/core/ir.ts";
import type { OpAttrs, OpName } from "../compiler/ops/attrs.ts";
import type { Activation } from "../compiler/ops/activation.ts";

/** Which storage a binding refers to. */
export type BufRef =
  /** A node's main storage (an input of the op, or the op's own output when node is the op). */
  | { node: Node }
  /** The k-th extra output of the op being lowered (e.g. argmax saved for backward). */
  | { aux: number }
  /** A temporary that lives only during this op's dispatches (size given in Lowered.scratch). */
  | { scratch: number }
  /**
   * Inputs stored back to back in one arena (a span the op declares in OpDef.spans): bound from the
   * first node's offset to the end of the last, 256-byte padding (zeros) included.
   */
  | { span: readonly Node[] }
  /**
   * The k-th extra output of another node: a matmul with a norm prologue (kernels/prologue.ts)
   * reads the norm's row statistics.
   */
  | { auxOf: Node; k: number };

/** One buffer a dispatch binds: the WGSL variable and the storage it refers to. */
export interface Binding {
  /** The WGSL variable name, e.g. `a`, `out`. */
  name: string;
  ref: BufRef;
}

/** One compute dispatch: WGSL, entry point, bindings and workgroup counts. */
export interface Dispatch {
  /** Kernel name shown in plans and errors, e.g. `matmul_fwd`, `layernorm_bwd`. */
  label: string;
  code: string;
  entry?: string;
  bindings: Binding[];
  workgroups: readonly [number, number, number];
}

/** What a kernel lowering returns for one node. */
export interface Lowered {
  dispatches: Dispatch[];
  /** Byte sizes of scratch buffers used by the dispatches ({scratch: i}). */
  scratch?: number[];
}

/** Device facts a lowering may use to pick variants and must respect. */
export interface LowerCtx {
  maxWorkgroupsPerDim: number;
  maxWorkgroupStorage: number;
  maxInvocations: number;
  hasF16: boolean;
  /** A CPU-emulated adapter (lavapipe, llvmpipe, SwiftShader): workgroup barriers are expensive there. */
  isSoftware?: boolean;
  /** maxStorageBuffersPerShaderStage: bounds what fusion may add to one kernel (default 8). */
  maxStorageBuffers?: number;
}

/**
 * A matmul epilogue (kernels/epilogue.ts): what the matmul kernel does with each finished
 * accumulator when the fusion pass (compiler/lower/fuse.ts) hands it its consumer.
 */
export interface Epilogue {
  /** The consumer whose value the fused kernel writes to `out`. */
  out: Node;
  /** out = act(acc + bias). */
  act?: Activation;
  /**
   * out = (acc + bias) · act'(residual[i]): the activation's backward, when the matmul computes its
   * incoming gradient (dy) and `residual` is the activation's saved input x.
   */
  actBwd?: Activation;
  /** out = acc + bias + residual (same shape as the output); with actBwd, the activation's input. */
  residual?: Node;
  /** Also write acc + bias to the matmul node's own storage (`pre`): a backward reads it. */
  keepPre: boolean;
}

/**
 * A matmul prologue (kernels/prologue.ts): a norm computed on the fly as the matmul loads its A
 * operand.
 */
export interface Prologue {
  /** The norm node whose output the matmul reads as A (it gets no storage of its own). */
  norm: Node;
  kind: "layernorm" | "rmsnorm";
  /** The norm's input, bound as the matmul's `a`. */
  x: Node;
  weight?: Node;
  bias?: Node;
}

/** Fusion facts for one lowering beyond the epilogue (compiler/fuse.ts). */
export interface LowerExtra {
  /** matmul: its A operand is this norm's output, computed on the fly from x and the statistics. */
  prologue?: Prologue;
  /** layernorm/rmsnorm: only the statistics (aux outputs) are needed; write no `out`. */
  statsOnly?: boolean;
}

/**
 * Lowers one node of an op with attributes A. `epilogue` is only passed to kernels that accept a
 * fused consumer (matmul; see kernels/epilogue.ts and compiler/lower/fuse.ts). `inPlace` is only
 * passed to ops that declare OpDef.inPlace: the index of the input whose values are already in `out`
 * (read it from there and do not bind it). `extra` carries the norm → matmul prologue fusion
 * (kernels/prologue.ts).
 */
export type KernelLowering<A = Attrs> = (
  node: OpNode<A>,
  ctx: LowerCtx,
  epilogue?: Epilogue,
  inPlace?: number,
  extra?: LowerExtra,
) => Lowered;

/** The kernel lowering of op P, typed by P's attributes. */
export type KernelOf<P extends OpName> = KernelLowering<OpAttrs[P]>;

/** The kernel lowerings of the ops K, each typed by its op's attributes (a family's table entries). */
export type KernelsFor<K extends OpName> = { readonly [P in K]: KernelLowering<OpAttrs[P]> };

/** Storage-buffer offsets must be multiples of this (WebGPU's minStorageBufferOffsetAlignment). */
export const SPAN_ALIGN = 256;

/**
 * Where the nodes of a span (OpDef.spans) lie in their arena: back to back, each at a multiple of
 * 256 bytes (the padding between them stays zero), and the bytes up to the end of the last one.
 * Lowering places arenas by it and kernels that bind a { span } index into it.
 */
export function spanLayout(nodes: readonly Node[]): { offsets: number[]; bytes: number } {
  const offsets: number[] = [];
  let end = 0;
  for (const n of nodes) {
    const off = Math.ceil(end / SPAN_ALIGN) * SPAN_ALIGN;
    offsets.push(off);
    end = off + byteSize(n.shape, n.dtype);
  }
  return { offsets, bytes: end };
}

/** Device facts assumed when none are given (WebGPU's default limits). */
export const DEFAULT_LOWER_CTX: LowerCtx = {
  maxWorkgroupsPerDim: 65535,
  maxWorkgroupStorage: 16384,
  maxInvocations: 256,
  hasF16: false,
  maxStorageBuffers: 8,
};

/**
 * Workgroups for `groups` independent workgroup-sized tasks (rows, tiles, outputs), folded into a
 * 2-D grid when they exceed the per-dimension limit. Kernels compute the task index as
 * `wid.x + wid.y * GX` (gx is returned for the WGSL const) and let the spare workgroups of the last
 * grid row idle. `what` names the kernel in the error when even x·y cannot hold the tasks.
 */
export function foldGroups(
  groups: number,
  ctx: Pick<LowerCtx, "maxWorkgroupsPerDim"> = DEFAULT_LOWER_CTX,
  what = "foldGroups",
): { workgroups: [number, number, number]; gx: number } {
  const max = ctx.maxWorkgroupsPerDim;
  const gx = Math.min(Math.max(1, groups), max);
  const gy = Math.ceil(Math.max(1, groups) / gx);
  if (gy > max) {
    throw new Error(
      `${what}: ${groups} workgroups exceed the ${max}x${max} grid (maxWorkgroupsPerDim ${max})`,
    );
  }
  return { workgroups: [gx, gy, 1], gx };
}

/**
 * A 1-D launch of `n` threads in workgroups of `wg`, folded into 2-D when it would exceed the per-
 * dimension limit. Kernels compute the linear thread index as `gid.x + gid.y * GRID_STRIDE` and
 * return when it is >= n. Returns the workgroup counts and the WGSL const for the stride.
 */
export function grid1d(
  n: number,
  wg: number,
  ctx: Pick<LowerCtx, "maxWorkgroupsPerDim"> = DEFAULT_LOWER_CTX,
): { workgroups: [number, number, number]; stride: string } {
  const f = foldGroups(Math.ceil(n / wg), ctx, `grid1d: ${n} threads in workgroups of ${wg}`);
  return { workgroups: f.workgroups, stride: `const GRID_STRIDE: u32 = ${f.gx * wg}u;` };
}

/** Threads per row workgroup: a power of two (for the tree reduction) ≥ the row length, 32..256. */
export function rowThreads(len: number, ctx: Pick<LowerCtx, "maxInvocations">): number {
  let t = 32;
  while (t < len && t < 256) t *= 2;
  while (t > ctx.maxInvocations) t /= 2;
  return t;
}

/**
 * WGSL for a workgroup-wide tree reduction `fn <name>(t: u32, v: <type>) -> <type>` over `wg`
 * threads (a power of two; t = local_invocation_index), combining with the WGSL expression
 * `combine(a, b)` (b comes from the higher thread indices: keep a on ties for a first-wins
 * order). Every thread gets the result. It holds barriers, so it must be called from uniform control
 * flow: kernels whose folded grid has spare workgroups keep them running to the call (a `live` flag)
 * or return before it on a workgroup-uniform condition.
 */
export function wgslWorkgroupReduce(
  name: string,
  type: string,
  wg: number,
  combine: (a: string, b: string) => string,
): string {
  if (!Number.isInteger(Math.log2(wg))) throw new Error(`wgslWorkgroupReduce: ${wg} is not a power of 2`);
  return /* wgsl */ `
var<workgroup> ${name}_buf: array<${type}, ${wg}>;
fn ${name}(t: u32, v: ${type}) -> ${type} {
  ${name}_buf[t] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (t < s) { ${name}_buf[t] = ${combine(`${name}_buf[t]`, `${name}_buf[t + s]`)}; }
    workgroupBarrier();
  }
  let r = ${name}_buf[0];
  workgroupBarrier(); // everyone has read the result before the buffer is reused
  return r;
}
`;
}

/** The WGSL element type a tensor of this dtype is stored as. 16-bit types are packed in u32 words. */
export function storageType(dtype: DType): string {
  switch (dtype) {
    case "f32":
      return "f32";
    case "i32":
      return "i32";
    case "u32":
    case "f16":
    case "bf16":
      return "u32";
  }
}

/**
 * A WGSL expression reading element `idx` (a u32 expression) of `arr` as f32, whatever its storage
 * dtype: bf16 is the high half of an f32, f16 is unpacked with the core `unpack2x16float` (so no
 * `shader-f16` feature is needed to *read* f16 weights).
 */
export function loadF32(dtype: DType, arr: string, idx: string): string {
  switch (dtype) {
    case "f32":
      return `${arr}[${idx}]`;
    case "i32":
    case "u32":
      return `f32(${arr}[${idx}])`;
    case "bf16":
      return `bf16_at(${arr}[(${idx}) >> 1u], (${idx}) & 1u)`;
    case "f16":
      return `unpack2x16float(${arr}[(${idx}) >> 1u])[(${idx}) & 1u]`;
  }
}

/** WGSL helper functions that loadF32 expressions may call; include once per shader. */
export const WGSL_UNPACK = /* wgsl */ `
fn bf16_at(word: u32, half: u32) -> f32 {
  return bitcast<f32>(select(word << 16u, word & 0xffff0000u, half == 1u));
}
`;

/** Formats a JS number as a WGSL f32 literal. */
export function f32lit(x: number): string {
  const f = Math.fround(x);
  // checked after rounding: 1e39 is finite in f64 but becomes Infinity in f32 (not a WGSL literal)
  if (!Number.isFinite(f)) throw new Error(`f32lit: ${x} must be finite in f32 (it rounds to ${f})`);
  const s = String(f);
  return s.includes(".") || s.includes("e") ? `f32(${s})` : `${s}.0`;
}
