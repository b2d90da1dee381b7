// Lowering: from graph outputs to a static plan of buffers and dispatches, built once.
//
// 1. Keep only nodes the requested outputs and side effects depend on (dead code is dropped, which is
//    also where a pruned backward graph loses what nothing needs).
// 2. Give every live value a buffer. Persistent nodes (inputs, params, state, consts) own theirs;
//    computed values take one from a pool and give it back after their last use (liveness), so the
//    backward pass reuses forward activations' memory once they are dead. Reshape shares storage.
//    Inputs an op declares as a span (OpDef.spans) share one arena buffer instead, back to back at
//    256-byte-aligned offsets (Plan.offsets), so one binding covers them all (fused optimizer).
// 3. Ask each op's kernel lowering for its dispatches and resolve their bindings to buffers.
// The plan is plain data: the runtime turns it into GPU objects once and replays it every step.
//
// Streaming (opts.stream): frozen params with a streamGroup get no buffer of their own. Two slot
// buffers, each as large as the largest group, take turns: the dispatches are cut into phases at
// every change of the group they bind, phase i binds slot i % 2 at the param's offset in its group,
// and the runtime uploads phase i+1's group into the other slot while phase i runs.

import { byteSize, fmtShape, type Node } from "../core/ir.ts";
import { getKernel, getOp, writesOf } from "../ops/registry.ts";
import { DEFAULT_LOWER_CTX, type LowerCtx } from "../../kernels/kernel.ts";
import type { Epilogue } from "../../kernels/epilogue.ts";
import type { Prologue } from "../../kernels/prologue.ts";
import { noFusion, planFusion } from "./fuse.ts";

export interface PlannedBuffer {
  id: number;
  bytes: number;
  persistent: boolean;
  /** The persistent node owning it (for uploads and reads). */
  owner?: Node;
  /** An arena (OpDef.spans): the nodes stored in it, in order, at Plan.offsets. */
  arena?: Node[];
}

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

export interface PlannedDispatch {
  label: string;
  node: Node;
  code: string;
  entry: string;
  bindings: PlannedBinding[];
  workgroups: readonly [number, number, number];
}

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

/** Storage-buffer offsets must be multiples of this (WebGPU's minStorageBufferOffsetAlignment). */
const SLOT_ALIGN = 256;

/**
 * Where the nodes of a span (OpDef.spans) lie in their arena: back to back, each at a multiple of
 * 256 bytes (the padding between them stays zero), and the bytes up to the end of the last one.
 */
export function spanLayout(nodes: readonly Node[]): { offsets: number[]; bytes: number } {
  const offsets: number[] = [];
  let end = 0;
  for (const n of nodes) {
    const off = Math.ceil(end / SLOT_ALIGN) * SLOT_ALIGN;
    offsets.push(off);
    end = off + byteSize(n.shape, n.dtype);
  }
  return { offsets, bytes: end };
}

export interface LowerOptions {
  ctx?: LowerCtx;
  /** Largest single binding the device allows (maxStorageBufferBindingSize). */
  maxBindingBytes?: number;
  /** Stream params that have a streamGroup through two slots instead of keeping them resident. */
  stream?: boolean;
  /** Fuse matmul epilogues (bias + activation, residual add; compiler/fuse.ts). Default true. */
  fuse?: boolean;
  /** Let elementwise ops overwrite an input that dies at them (OpDef.inPlace). Default true. */
  inPlace?: boolean;
}

export function lower(
  outputs: readonly Node[],
  effects: readonly Node[] = [],
  opts: LowerOptions = {},
): Plan {
  const ctx = opts.ctx ?? DEFAULT_LOWER_CTX;
  const maxBinding = opts.maxBindingBytes ?? Infinity;

  // 1. liveness-from-outputs (dead code elimination)
  const live = new Set<Node>();
  const stack = [...outputs, ...effects];
  while (stack.length) {
    const n = stack.pop()!;
    if (live.has(n)) continue;
    live.add(n);
    for (const x of n.inputs) stack.push(x);
  }
  const order = [...live].sort((a, b) => a.id - b.id);
  const ops = order.filter((n) => n.kind === "op");
  const pos = new Map<Node, number>(ops.map((n, i) => [n, i]));
  checkEffectOrder(ops);

  // 2. storage
  const buffers: PlannedBuffer[] = [];
  const storage = new Map<Node, number>();
  const auxStorage = new Map<Node, number[]>();
  const newBuffer = (bytes: number, persistent: boolean, owner?: Node): number => {
    buffers.push({ id: buffers.length, bytes, persistent, owner });
    return buffers.length - 1;
  };
  const streamed = opts.stream ? order.filter((n) => n.streamGroup !== undefined) : [];
  // arenas first (OpDef.spans): their members get no buffer of their own, and computed members are
  // pinned there (never pooled)
  const offsets = new Map<Node, number>();
  const pinned = new Set<Node>();
  placeArenas(ops, streamed, newBuffer, buffers, storage, offsets, pinned);
  for (const n of order) {
    if (n.persistent && !streamed.includes(n) && !storage.has(n)) {
      storage.set(n, newBuffer(byteSize(n.shape, n.dtype), true, n));
    }
  }
  const stream = streamed.length ? streamLayout(streamed, newBuffer) : undefined;

  // last use of each buffer, in op positions (outputs live to the end)
  const END = ops.length;
  const free: number[] = [];
  const take = (bytes: number): number => {
    // best fit among free pooled buffers no more than 2x too large
    let best = -1;
    for (let i = 0; i < free.length; i++) {
      const b = buffers[free[i]].bytes;
      if (b >= bytes && b <= 2 * bytes && (best < 0 || b < buffers[free[best]].bytes)) best = i;
    }
    if (best >= 0) return free.splice(best, 1)[0];
    return newBuffer(bytes, false);
  };
  // consumers per node, to know when a pooled buffer dies
  const lastReader = new Map<Node, number>();
  for (const n of ops) {
    for (const x of n.inputs) lastReader.set(x, Math.max(lastReader.get(x) ?? -1, pos.get(n)!));
  }
  for (const o of outputs) lastReader.set(o, END);
  const fusion = opts.fuse === false ? noFusion() : planFusion(ops, outputs, ctx);
  // a matmul with a norm prologue reads the norm's input and parameters itself
  for (const [m, p] of fusion.prologues) {
    for (const t of [p.x, p.weight, p.bias]) {
      if (t) lastReader.set(t, Math.max(lastReader.get(t) ?? -1, pos.get(m)!));
    }
  }
  // a value must live until the last reader of anything sharing its storage (reshapes, aux outputs)
  const need = new Map<Node, number>();
  const auxNeed = new Map<Node, number[]>();
  for (let i = ops.length - 1; i >= 0; i--) {
    const n = ops[i];
    const own = Math.max(lastReader.get(n) ?? i, need.get(n) ?? -1);
    need.set(n, own);
    if (getOp(n.op).alias) {
      const src = n.inputs[0];
      need.set(src, Math.max(need.get(src) ?? -1, own));
    } else if (n.op === "aux") {
      const src = n.inputs[0];
      const arr = auxNeed.get(src) ?? [];
      const k = n.attrs.index as number;
      arr[k] = Math.max(arr[k] ?? -1, own);
      auxNeed.set(src, arr);
    }
  }
  // ... and its statistics, which are the norm's aux outputs
  for (const [m, p] of fusion.prologues) {
    const arr = auxNeed.get(p.norm) ?? [];
    p.norm.auxSpecs.forEach((_, k) => arr[k] = Math.max(arr[k] ?? -1, pos.get(m)!));
    auxNeed.set(p.norm, arr);
  }

  /**
   * The input of elementwise op n whose pooled buffer n may overwrite: the op allows it
   * (OpDef.inPlace), shapes and dtypes match (so element i is read and written by one thread), the
   * buffer dies at this op and no other input of n shares it.
   */
  const inPlaceInput = (n: Node, i: number): number | undefined => {
    if (pinned.has(n)) return undefined; // its value goes to its arena
    for (const k of getOp(n.op).inPlace ?? []) {
      const x = n.inputs[k];
      const b = storage.get(x);
      if (b === undefined || buffers[b].persistent || !(dieAt.get(i) ?? []).includes(b)) continue;
      if (x.shape.join() !== n.shape.join() || x.dtype !== "f32" || n.dtype !== "f32") continue;
      if (n.inputs.some((y, j) => j !== k && storage.get(y) === b)) continue;
      if (outputs.includes(x)) continue;
      return k;
    }
    return undefined;
  };

  const dispatches: PlannedDispatch[] = [];
  const dispatchGroup: (number | undefined)[] = [];
  const dieAt = new Map<number, number[]>();
  const dies = (buf: number, at: number) => {
    if (buffers[buf].persistent) return;
    const l = dieAt.get(at) ?? [];
    l.push(buf);
    dieAt.set(at, l);
  };
  /** Gives computed node x a buffer of its own from the pool, released after its last use. */
  const place = (x: Node): void => {
    if (pinned.has(x)) return; // already placed in its arena
    const b = take(byteSize(x.shape, x.dtype));
    storage.set(x, b);
    dies(b, need.get(x)!);
  };
  for (const n of ops) {
    const i = pos.get(n)!;
    const def = getOp(n.op);
    const epi = fusion.epilogues.get(n);
    const pro = fusion.prologues.get(n);
    const statsOnly = fusion.statsOnly.has(n);
    if (def.alias) {
      storage.set(n, storage.get(n.inputs[0])!);
    } else if (n.op === "aux") {
      storage.set(n, auxStorage.get(n.inputs[0])![n.attrs.index as number]);
    } else if (fusion.absorbed.has(n)) {
      // computed by its producer's epilogue (compiler/fuse.ts), which also gave it storage
    } else {
      const writes = writesOf(n);
      const inPlace = opts.inPlace === false || writes ? undefined : inPlaceInput(n, i);
      if (inPlace !== undefined) {
        // the output takes over the buffer of an input that dies here (same shape, read then
        // written by the same thread): one buffer less at this point of the plan
        const b = storage.get(n.inputs[inPlace])!;
        dieAt.set(i, dieAt.get(i)!.filter((x) => x !== b));
        storage.set(n, b);
        dies(b, need.get(n)!);
      } else if (!writes && (!epi || epi.keepPre) && !statsOnly) {
        // (a statsOnly norm's value is never stored: its matmuls normalise on the fly)
        place(n);
      }
      if (epi) place(epi.out);
      const aux = n.auxSpecs.map((s, k) => {
        const b = take(byteSize(s.shape, s.dtype));
        dies(b, auxNeed.get(n)?.[k] ?? i);
        return b;
      });
      auxStorage.set(n, aux);
      let lowered;
      try {
        const extra = pro || statsOnly ? { prologue: pro, statsOnly } : undefined;
        lowered = getKernel(n.op)(n, ctx, epi, inPlace, extra);
      } catch (e) {
        throw new Error(`lower: ${n.op} for ${n}: ${(e as Error).message}`);
      }
      const scratch = (lowered.scratch ?? []).map((b) => take(b));
      for (const d of lowered.dispatches) {
        dispatches.push(resolve(n, d, writes ?? [], scratch, lowered.scratch ?? [], epi, pro));
      }
      for (const b of scratch) dies(b, i);
    }
    // release buffers whose last reader is this op (after this op's own outputs were taken)
    for (const b of dieAt.get(i) ?? []) free.push(b);
  }

  const peakBytes = buffers.reduce((s, b) => s + b.bytes, 0);
  if (stream) assignPhases(stream, dispatches, dispatchGroup);
  // reshapes of arena members live at their root's offset
  for (const n of order) {
    const off = offsets.get(aliasRoot(n));
    if (off !== undefined) offsets.set(n, off);
  }
  return { order, dispatches, buffers, storage, offsets, outputs: [...outputs], peakBytes, stream };

  /** A { span } binding: the nodes must lie in one arena, back to back in this order. */
  function spanBinding(n: Node, label: string, span: readonly Node[]) {
    const roots = span.map(aliasRoot);
    const buffer = storage.get(roots[0]);
    const layout = spanLayout(roots);
    const base = offsets.get(roots[0]);
    roots.forEach((r, k) => {
      if (!n.inputs.includes(span[k])) {
        throw new Error(`lower: ${label} binds a span with ${span[k]}, which is not an input of ${n}`);
      }
      const at = base === undefined ? undefined : base + layout.offsets[k];
      if (buffer === undefined || at === undefined || storage.get(r) !== buffer || offsets.get(r) !== at) {
        const prev = span[k - 1] ?? "the arena start";
        throw new Error(
          `lower: ${label} binds a span whose ${span[k]} does not follow ${prev} in one arena ` +
            `(declare the span in the op's OpDef.spans)`,
        );
      }
    });
    return { buffer: buffer!, offset: base!, bytes: layout.bytes };
  }

  function resolve(
    n: Node,
    d: import("../../kernels/kernel.ts").Dispatch,
    writes: readonly number[],
    scratch: number[],
    scratchBytes: number[],
    epi?: Epilogue,
    pro?: Prologue,
  ): PlannedDispatch {
    let group: number | undefined;
    const bindings: PlannedBinding[] = d.bindings.map((bd) => {
      let buffer: number, bytes: number, writable: boolean, what: string, offset = 0;
      if ("node" in bd.ref) {
        const t = bd.ref.node;
        const k = n.inputs.indexOf(t);
        const fused = (epi !== undefined && (t === epi.out || t === epi.residual)) ||
          (pro !== undefined && (t === pro.x || t === pro.weight || t === pro.bias));
        if (t !== n && k < 0 && !fused) {
          throw new Error(`lower: ${d.label} binds ${t}, which is not an input or output of ${n}`);
        }
        bytes = byteSize(t.shape, t.dtype);
        const root = aliasRoot(t); // a reshape of a streamed weight lives where the weight does
        if (stream?.offsets.has(root)) {
          // the slot is chosen once phases are known (assignPhases); the offset is fixed
          if (group !== undefined && group !== root.streamGroup) {
            throw new Error(
              `lower: ${d.label} binds weights of two streaming groups (${group}, ${root.streamGroup})`,
            );
          }
          group = root.streamGroup;
          buffer = -1;
          offset = stream.offsets.get(root)!;
        } else {
          const s = storage.get(t);
          if (s === undefined) throw new Error(`lower: ${d.label} binds ${t}, which has no storage`);
          buffer = s;
          offset = offsets.get(root) ?? 0;
        }
        writable = t === n || t === epi?.out || writes.some((w) => n.inputs[w] === t);
        what = `${t}`;
      } else if ("aux" in bd.ref) {
        const spec = n.auxSpecs[bd.ref.aux];
        buffer = auxStorage.get(n)![bd.ref.aux];
        bytes = byteSize(spec.shape, spec.dtype);
        writable = true;
        what = `aux ${bd.ref.aux} of ${n}`;
      } else if ("auxOf" in bd.ref) {
        // another node's statistics (a norm prologue), computed earlier and kept alive (auxNeed)
        const { auxOf, k } = bd.ref;
        const b = auxStorage.get(auxOf)?.[k];
        if (pro?.norm !== auxOf || b === undefined) {
          throw new Error(`lower: ${d.label} binds aux ${k} of ${auxOf}, which is not its prologue's norm`);
        }
        const spec = auxOf.auxSpecs[k];
        buffer = b;
        bytes = byteSize(spec.shape, spec.dtype);
        writable = false;
        what = `aux ${k} of ${auxOf}`;
      } else if ("span" in bd.ref) {
        ({ buffer, offset, bytes } = spanBinding(n, d.label, bd.ref.span));
        writable = bd.ref.span.every((t) => writes.some((w) => n.inputs[w] === t));
        what = `span of ${bd.ref.span.length} from ${bd.ref.span[0]}`;
      } else {
        buffer = scratch[bd.ref.scratch];
        bytes = scratchBytes[bd.ref.scratch];
        writable = true;
        what = `scratch ${bd.ref.scratch} of ${n}`;
      }
      if (bytes > maxBinding) {
        throw new Error(
          `lower: ${d.label} for ${n}: binding '${bd.name}' (${what}) needs ${bytes} bytes, over the device's ` +
            `maxStorageBufferBindingSize of ${maxBinding}; use a smaller batch or split the tensor`,
        );
      }
      return { name: bd.name, buffer, bytes, offset, writable, what };
    });
    dispatchGroup.push(group);
    for (const w of d.workgroups) {
      if (!Number.isInteger(w) || w < 1 || w > ctx.maxWorkgroupsPerDim) {
        throw new Error(
          `lower: ${d.label} for ${n}${fmtShape(n.shape)} dispatches ${d.workgroups.join("x")} workgroups; ` +
            `each must be 1..${ctx.maxWorkgroupsPerDim}`,
        );
      }
    }
    return {
      label: d.label,
      node: n,
      code: d.code,
      entry: d.entry ?? "main",
      bindings,
      workgroups: d.workgroups,
    };
  }
}

/**
 * Cuts the dispatch list into phases at each change of streamed group (dispatches that bind no
 * streamed weight stay in the current phase; leading ones join the first) and points each streamed
 * binding at slot phase % 2.
 */
function assignPhases(
  stream: StreamPlan,
  dispatches: PlannedDispatch[],
  groupOf: (number | undefined)[],
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
    for (const b of d.bindings) if (b.buffer === -1) b.buffer = slot;
  });
}

/**
 * Gives each span the live ops declare (OpDef.spans) one buffer, its nodes at spanLayout's offsets.
 * A span holds persistent nodes (params, optimizer state) or computed ones (gradients, through any
 * reshape: the root is placed); computed members are pinned (no pooled buffer; the arena is never
 * reused, so its padding stays zero). Several ops may declare the same span (an optimizer update
 * and the clipping norm both bind the gradients), but a node cannot lie in two different spans, nor
 * can an extra output (aux) or a streamed weight.
 */
function placeArenas(
  ops: readonly Node[],
  streamed: readonly Node[],
  newBuffer: (bytes: number, persistent: boolean) => number,
  buffers: PlannedBuffer[],
  storage: Map<Node, number>,
  offsets: Map<Node, number>,
  pinned: Set<Node>,
): void {
  const spanOf = new Map<Node, string>(); // root → its span's key
  for (const n of ops) {
    for (const span of getOp(n.op).spans?.(n) ?? []) {
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
      const b = newBuffer(layout.bytes, true);
      buffers[b].arena = roots;
      roots.forEach((r, k) => {
        storage.set(r, b);
        offsets.set(r, layout.offsets[k]);
        if (computed) pinned.add(r);
      });
    }
  }
}

function streamLayout(
  streamed: Node[],
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
      off += Math.ceil(b / SLOT_ALIGN) * SLOT_ALIGN;
    }
    slotBytes = Math.max(slotBytes, off);
  }
  const slots: [number, number] = [newBuffer(slotBytes, true), newBuffer(slotBytes, true)];
  return { slots, slotBytes, offsets, groups, phases: [], residentBytes };
}

/** In-place updates must come after every reader of the tensors they overwrite. */
/** The node whose storage an alias (reshape, possibly chained) shares. */
export function aliasRoot(n: Node): Node {
  while (n.kind === "op" && getOp(n.op).alias) n = n.inputs[0];
  return n;
}

/**
 * In-place updates must come after every reader of the tensors they overwrite (readers through
 * reshapes included), and each tensor may be updated in place only once per step.
 */
function checkEffectOrder(ops: Node[]): void {
  const writer = new Map<Node, Node>();
  for (let i = 0; i < ops.length; i++) {
    const writes = writesOf(ops[i]);
    if (!writes) continue;
    for (const w of writes) {
      const target = aliasRoot(ops[i].inputs[w]);
      if (!target.persistent) {
        throw new Error(`lower: ${ops[i]} writes in place to ${target}, which is not a param/state tensor`);
      }
      const prev = writer.get(target);
      if (prev) {
        throw new Error(`lower: ${target} is updated in place twice in one step (${prev} and ${ops[i]})`);
      }
      writer.set(target, ops[i]);
      for (let j = i + 1; j < ops.length; j++) {
        if (ops[j].inputs.some((x) => aliasRoot(x) === target)) {
          throw new Error(`lower: ${ops[j]} reads ${target} after ${ops[i]} updated it in place`);
        }
      }
    }
  }
}

/** Kernel labels in execution order, for tests and `--plan` listings. */
export function kernelLabels(plan: Plan): string[] {
  return plan.dispatches.map((d) => d.label);
}
