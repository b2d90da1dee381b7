// The plan that lowering builds: plain data (buffers, dispatches, offsets, streaming phases) that the
// runtime turns into GPU objects once and replays every step. The passes (live.ts … stream.ts) fill it
// in; plan.ts runs them. Kept apart from plan.ts so the passes can name these types without an import
// cycle through the driver.

import type { Node } from "../core/ir.ts";

/** One GPU buffer of the plan. */
export interface PlannedBuffer {
  id: number;
  bytes: number;
  persistent: boolean;
  /** The persistent node owning it (for uploads and reads). */
  owner?: Node;
  /** An arena (OpDef.spans): the nodes stored in it, in order, at Plan.offsets. */
  arena?: Node[];
}

/** One binding of a dispatch, resolved to a buffer range. */
export interface PlannedBinding {
  name: string;
  buffer: number;
  /** Bytes bound (the tensor's size; a pooled buffer may be larger). */
  bytes: number;
  /** Byte offset into the buffer (non-zero for streamed weights inside a slot and arena members). */
  offset: number;
  /** Whether the plan allows writing through this binding. */
  writable: boolean;
  what: string;
}

/** One compute dispatch of the plan, in execution order. */
export interface PlannedDispatch {
  label: string;
  node: Node;
  code: string;
  entry: string;
  bindings: PlannedBinding[];
  workgroups: readonly [number, number, number];
}

/** A lowered graph: its buffers, dispatches and where every live value lives. */
export interface Plan {
  /** Ops in execution order (aliases included; they have no dispatch). */
  order: Node[];
  dispatches: PlannedDispatch[];
  buffers: PlannedBuffer[];
  /** Where each live node's value lives (buffer id). */
  storage: Map<Node, number>;
  /** Byte offset of a node's value in its buffer: set for arena members (and their reshapes), else 0. */
  offsets: Map<Node, number>;
  outputs: Node[];
  /** Sum of all buffers the plan allocates. */
  peakBytes: number;
  /** Present when frozen weights are streamed. */
  stream?: StreamPlan;
}

/** Frozen weights streamed through two slot buffers (stream.ts). */
export interface StreamPlan {
  /** The two slot buffers (ids into buffers). */
  slots: [number, number];
  slotBytes: number;
  /** Each streamed param's byte offset inside a slot. */
  offsets: Map<Node, number>;
  /** Streamed params of each group. */
  groups: Map<number, Node[]>;
  /** Dispatch ranges [start, end) and the group (slot i % 2) each needs resident. */
  phases: { group: number; start: number; end: number }[];
  /** Bytes of all streamed weights (what resident mode would hold). */
  residentBytes: number;
}
