// Lowering: from graph outputs to a static plan of buffers and dispatches, built once. The passes, in
// the order they run (each file says what it decides and why):
//
//   live.ts      keep only what the outputs and effects need, in execution order; check in-place updates
//   arenas.ts    spans an op declares (OpDef.spans) share one buffer at 256-byte-aligned offsets
//   storage.ts   persistent nodes (inputs, params, state, consts) own their buffers
//   stream.ts    frozen weights of a streamGroup share two slot buffers (LowerOptions.stream)
//   fuse.ts      matmul epilogues and norm prologues computed inside the matmul kernel
//   liveness.ts  computed values take pooled buffers and give them back after their last use
//   dispatch.ts  each op's kernel lowering, its bindings resolved to buffer ranges
//   stream.ts    dispatches cut into phases, each binding one slot
//
// Buffer ids are creation order, so this order is part of the plan. The plan is plain data
// (types.ts): the runtime turns it into GPU objects once and replays it every step.

import type { Node } from "../core/ir.ts";
import { DEFAULT_LOWER_CTX, type LowerCtx } from "../../kernels/kernel.ts";
import { aliasOffsets, placeArenas } from "./arenas.ts";
import { emitDispatches } from "./dispatch.ts";
import { noFusion, planFusion } from "./fuse.ts";
import { schedule } from "./live.ts";
import { lifetimes, Pool } from "./liveness.ts";
import { Storage } from "./storage.ts";
import { assignPhases, streamedParams, streamLayout } from "./stream.ts";
import type { Plan } from "./types.ts";

export type { Plan, PlannedBinding, PlannedBuffer, PlannedDispatch, StreamPlan } from "./types.ts";
export { aliasRoot } from "./live.ts";
export { spanLayout } from "./arenas.ts";

/** How to lower: device limits and which memory and fusion strategies to use. */
export interface LowerOptions {
  ctx?: LowerCtx;
  /** Largest single binding the device allows (maxStorageBufferBindingSize). */
  maxBindingBytes?: number;
  /** Stream params that have a streamGroup through two slots instead of keeping them resident. */
  stream?: boolean;
  /** Fuse matmul epilogues (bias + activation, residual add; compiler/lower/fuse.ts). Default true. */
  fuse?: boolean;
  /** Let elementwise ops overwrite an input that dies at them (OpDef.inPlace). Default true. */
  inPlace?: boolean;
}

/**
 * Lowers what `outputs` and the in-place updates `effects` need to a plan: buffers (persistent,
 * arenas, pooled by liveness, streaming slots) and dispatches with resolved bindings.
 */
export function lower(
  outputs: readonly Node[],
  effects: readonly Node[] = [],
  opts: LowerOptions = {},
): Plan {
  const ctx = opts.ctx ?? DEFAULT_LOWER_CTX;
  const { order, ops } = schedule(outputs, effects);
  const storage = new Storage();
  const streamed = streamedParams(order, opts.stream);
  placeArenas(ops, streamed, storage);
  storage.ownPersistent(order, streamed);
  const stream = streamed.length ? streamLayout(streamed, storage.newBuffer) : undefined;
  const fusion = opts.fuse === false ? noFusion() : planFusion(ops, outputs, ctx);
  const pool = new Pool(storage, lifetimes(ops, outputs, fusion), outputs, fusion, opts.inPlace !== false);
  const maxBinding = opts.maxBindingBytes ?? Infinity;
  const { dispatches, groups } = emitDispatches(ops, { ctx, maxBinding, fusion, pool, stream });
  const peakBytes = storage.totalBytes();
  if (stream) assignPhases(stream, dispatches, groups);
  aliasOffsets(order, storage.offsets);
  const { buffers, of, offsets } = storage;
  return { order, dispatches, buffers, storage: of, offsets, outputs: [...outputs], peakBytes, stream };
}

/** Kernel labels in execution order, for tests and `--plan` listings. */
export function kernelLabels(plan: Plan): string[] {
  return plan.dispatches.map((d) => d.label);
}
