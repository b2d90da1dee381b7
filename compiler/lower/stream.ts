// Pass: streaming (LowerOptions.stream). Frozen params with a streamGroup get no buffer of their own.
// Two slot buffers, each as large as the largest group, take turns: the dispatches are cut into phases
// at every change of the group they bind, phase i binds slot i % 2 at the param's offset in its group,
// and the runtime uploads phase i+1's group into the other slot while phase i runs.

import { byteSize, type Node } from "../core/ir.ts";
import { OFFSET_ALIGN } from "./arenas.ts";
import type { PlannedDispatch, StreamPlan } from "./types.ts";

/** The binding buffer id of a streamed weight until assignPhases picks its slot. */
export const UNASSIGNED_SLOT = -1;

/** The live params to stream: those with a streamGroup, when streaming is asked for. */
export function streamedParams(order: readonly Node[], stream: boolean | undefined): Node[] {
  return stream ? order.filter((n) => n.streamGroup !== undefined) : [];
}

/**
 * Lays out each group's params back to back at 256-byte-aligned offsets and creates the two slot
 * buffers, as large as the largest group. Only frozen params can be streamed.
 */
export function streamLayout(
  streamed: readonly Node[],
  newBuffer: (bytes: number, persistent: boolean) => number,
): StreamPlan {
  const groups = new Map<number, Node[]>();
  for (const n of streamed) {
    if (n.kind !== "param" || n.trainable) {
      throw new Error(`lower: only frozen params can be streamed, not ${n}`);
    }
    const l = groups.get(n.streamGroup!) ?? [];
    l.push(n);
    groups.set(n.streamGroup!, l);
  }
  const offsets = new Map<Node, number>();
  let slotBytes = 0, residentBytes = 0;
  for (const nodes of groups.values()) {
    let off = 0;
    for (const n of nodes) {
      offsets.set(n, off);
      const b = byteSize(n.shape, n.dtype);
      residentBytes += b;
      off += Math.ceil(b / OFFSET_ALIGN) * OFFSET_ALIGN;
    }
    slotBytes = Math.max(slotBytes, off);
  }
  const slots: [number, number] = [newBuffer(slotBytes, true), newBuffer(slotBytes, true)];
  return { slots, slotBytes, offsets, groups, phases: [], residentBytes };
}

/**
 * Cuts the dispatch list into phases at each change of streamed group (`groupOf[i]` is the group
 * dispatch i binds; dispatches that bind no streamed weight stay in the current phase, leading ones
 * join the first) and points each streamed binding at slot phase % 2.
 */
export function assignPhases(
  stream: StreamPlan,
  dispatches: PlannedDispatch[],
  groupOf: readonly (number | undefined)[],
): void {
  let cur: StreamPlan["phases"][number] | undefined;
  dispatches.forEach((d, i) => {
    const group = groupOf[i];
    if (group === undefined) return;
    if (!cur || cur.group !== group) {
      if (cur) cur.end = i;
      cur = { group, start: cur ? i : 0, end: dispatches.length };
      stream.phases.push(cur);
    }
    const slot = stream.slots[(stream.phases.length - 1) % 2];
    for (const b of d.bindings) if (b.buffer === UNASSIGNED_SLOT) b.buffer = slot;
  });
}
