// Pass: arenas. Inputs an op declares as a span (OpDef.spans) share one buffer, back to back at
// 256-byte-aligned offsets (Plan.offsets), so one binding covers them all (the fused optimizer binds
// every parameter, gradient and moment of a model with a handful of bindings). Runs before any other
// placement: arena members get no buffer of their own.

import { type Node, opDef, writesOf } from "../core/ir.ts";
import { SPAN_ALIGN, spanLayout } from "../../kernels/kernel.ts";
import { aliasRoot } from "./live.ts";
import type { Storage } from "./storage.ts";

/** Storage-buffer offsets must be multiples of this (WebGPU's minStorageBufferOffsetAlignment). */
export const OFFSET_ALIGN = SPAN_ALIGN;

// spanLayout lives with the kernels, which index arenas by it too
export { spanLayout };

/**
 * Gives each span the live ops declare (OpDef.spans) one buffer, its nodes at spanLayout's offsets.
 * A span holds persistent nodes (params, optimizer state) or computed ones (gradients, through any
 * reshape: the root is placed); computed members are pinned (no pooled buffer; the arena is never
 * reused, so its padding stays zero). Several ops may declare the same span (an optimizer update
 * and the clipping norm both bind the gradients), but a node cannot lie in two different spans, nor
 * can an extra output (aux) or a streamed weight.
 */
export function placeArenas(ops: readonly Node[], streamed: readonly Node[], storage: Storage): void {
  const spanOf = new Map<Node, string>(); // root → its span's key
  for (const n of ops) {
    for (const span of opDef(n).spans?.(n) ?? []) {
      if (!span.length) continue;
      const roots = span.map(aliasRoot);
      const key = roots.map((r) => r.id).join();
      if (spanOf.get(roots[0]) === key) continue; // the same span, placed already
      const computed = roots[0].kind === "op";
      const fail = (why: string) => {
        throw new Error(`lower: ${n} declares a span of ${span.length} tensors from ${span[0]}: ${why}`);
      };
      roots.forEach((r, k) => {
        if (!n.inputs.includes(span[k])) fail(`${span[k]} is not an input`);
        if (spanOf.has(r)) fail(`${r} already lies in ${spanOf.get(r) === key ? "it" : "another span"}`);
        spanOf.set(r, key);
        if ((r.kind === "op") !== computed) fail(`it mixes computed and persistent tensors (${r})`);
        if (computed && (r.op === "aux" || writesOf(r))) fail(`${r} cannot be placed in an arena`);
        if (streamed.includes(r)) fail(`${r} is streamed`);
      });
      const layout = spanLayout(roots);
      const b = storage.newBuffer(layout.bytes, true);
      storage.buffers[b].arena = roots;
      roots.forEach((r, k) => {
        storage.of.set(r, b);
        storage.offsets.set(r, layout.offsets[k]);
        if (computed) storage.pinned.add(r);
      });
    }
  }
}

/** Reshapes of arena members live at their root's offset: records it for every live alias. */
export function aliasOffsets(order: readonly Node[], offsets: Map<Node, number>): void {
  for (const n of order) {
    const off = offsets.get(aliasRoot(n));
    if (off !== undefined) offsets.set(n, off);
  }
}

/**
 * Where a { span } binding of op n lies: its nodes must be inputs of n, in one arena, back to back in
 * this order (as placeArenas put them). Returns the binding's buffer, offset and length.
 */
export function spanBinding(
  storage: Storage,
  n: Node,
  label: string,
  span: readonly Node[],
): { buffer: number; offset: number; bytes: number } {
  const roots = span.map(aliasRoot);
  const buffer = storage.of.get(roots[0]);
  const layout = spanLayout(roots);
  const base = storage.offsets.get(roots[0]);
  roots.forEach((r, k) => {
    if (!n.inputs.includes(span[k])) {
      throw new Error(`lower: ${label} binds a span with ${span[k]}, which is not an input of ${n}`);
    }
    const at = base === undefined ? undefined : base + layout.offsets[k];
    if (
      buffer === undefined || at === undefined || storage.of.get(r) !== buffer ||
      storage.offsets.get(r) !== at
    ) {
      const prev = span[k - 1] ?? "the arena start";
      throw new Error(
        `lower: ${label} binds a span whose ${span[k]} does not follow ${prev} in one arena ` +
          `(declare the span in the op's OpDef.spans)`,
      );
    }
  });
  return { buffer: buffer!, offset: base!, bytes: layout.bytes };
}
