// The buffer table the passes fill in: every buffer in creation order (its id is its index, so the
// order of the passes fixes the ids) and where each placed value lives.

import { byteSize, type Node } from "../core/ir.ts";
import type { PlannedBuffer } from "./types.ts";

/** The plan's buffers as they are created, and where each value lives. */
export class Storage {
  /** Every buffer so far; a buffer's id is its index (Plan.buffers). */
  readonly buffers: PlannedBuffer[] = [];
  /** The buffer of each placed node (Plan.storage). */
  readonly of = new Map<Node, number>();
  /** The buffers of each op's extra outputs (auxSpecs), by index. */
  readonly aux = new Map<Node, number[]>();
  /** Byte offset of a value in its buffer; only arena members have one (Plan.offsets). */
  readonly offsets = new Map<Node, number>();
  /** Computed nodes whose value lies in an arena: they never take a pooled buffer. */
  readonly pinned = new Set<Node>();

  /** Appends a buffer and returns its id. */
  newBuffer = (bytes: number, persistent: boolean, owner?: Node): number => {
    this.buffers.push({ id: this.buffers.length, bytes, persistent, owner });
    return this.buffers.length - 1;
  };

  /** Gives each persistent node (input, param, state, const) not placed yet and not streamed its own buffer. */
  ownPersistent(order: readonly Node[], streamed: readonly Node[]): void {
    for (const n of order) {
      if (n.persistent && !streamed.includes(n) && !this.of.has(n)) {
        this.of.set(n, this.newBuffer(byteSize(n.shape, n.dtype), true, n));
      }
    }
  }

  /** Sum of all buffers allocated so far. */
  totalBytes(): number {
    return this.buffers.reduce((s, b) => s + b.bytes, 0);
  }
}
