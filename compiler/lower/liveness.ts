// Pass: buffers for computed values, by liveness. Each computed value takes a buffer from a pool and
// gives it back after its last use, so the backward pass reuses forward activations' memory once they
// are dead. A reshape shares its input's storage; an elementwise op may take over the buffer of an
// input that dies at it (OpDef.inPlace). The pool is driven op by op (dispatch.ts) because an op's
// scratch buffers are known only once its kernel is lowered.

import { auxIndex, byteSize, type Node, opDef, writesOf } from "../core/ir.ts";
import type { FusionPlan } from "./fuse.ts";
import type { Storage } from "./storage.ts";

/** Until which op position (inclusive) each computed value must stay in its buffer. */
export interface Lifetimes {
  /** A node's value, including everything that shares its storage (reshapes). */
  need: Map<Node, number>;
  /** A node's extra outputs (auxSpecs), by index. */
  auxNeed: Map<Node, number[]>;
}

/**
 * The last use of every value of `ops` (execution order), in op positions: its last reader, or the
 * end for `outputs`; a value lives as long as any alias of it, an op's statistics as long as their
 * aux nodes, and what a fused norm prologue reads as long as the matmuls that read it.
 */
export function lifetimes(ops: readonly Node[], outputs: readonly Node[], fusion: FusionPlan): Lifetimes {
  const pos = new Map<Node, number>(ops.map((n, i) => [n, i]));
  const lastReader = new Map<Node, number>();
  for (const n of ops) {
    for (const x of n.inputs) lastReader.set(x, Math.max(lastReader.get(x) ?? -1, pos.get(n)!));
  }
  for (const o of outputs) lastReader.set(o, ops.length);
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
    if (opDef(n).alias) {
      const src = n.inputs[0];
      need.set(src, Math.max(need.get(src) ?? -1, own));
    } else if (n.op === "aux") {
      const src = n.inputs[0];
      const arr = auxNeed.get(src) ?? [];
      const k = auxIndex(n);
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
  return { need, auxNeed };
}

/** What the pool decided for an op that dispatches: the input whose buffer its output took over. */
export interface Placement {
  inPlace?: number;
}

/**
 * Pooled buffers by last use. For each op in order: `place` gives its values storage, `scratch` its
 * kernel's temporaries, and `release` returns the buffers whose last use it was.
 */
export class Pool {
  #free: number[] = [];
  /** Op position → pooled buffers whose last use is there. */
  #dieAt = new Map<number, number[]>();

  /**
   * @param storage the buffer table (arenas and persistent buffers already placed)
   * @param life when each value dies
   * @param outputs the plan's outputs, which no op may overwrite
   * @param fusion which values epilogues compute and which norms store nothing
   * @param inPlace whether elementwise ops may overwrite a dying input (LowerOptions.inPlace)
   */
  constructor(
    readonly storage: Storage,
    readonly life: Lifetimes,
    readonly outputs: readonly Node[],
    readonly fusion: FusionPlan,
    readonly inPlace: boolean,
  ) {}

  /**
   * Gives op n (at position i) storage for its values: an alias or aux node shares its source's, an
   * absorbed consumer gets its producer's epilogue output; anything else takes pooled buffers for its
   * value (or an input's, in place), its epilogue's value and its extra outputs. Returns undefined for
   * the ops that dispatch nothing.
   */
  place(n: Node, i: number): Placement | undefined {
    const { of, aux } = this.storage;
    if (opDef(n).alias) {
      of.set(n, of.get(n.inputs[0])!);
      return undefined;
    }
    if (n.op === "aux") {
      of.set(n, aux.get(n.inputs[0])![auxIndex(n)]);
      return undefined;
    }
    // computed by its producer's epilogue (fuse.ts), which also gave it storage
    if (this.fusion.absorbed.has(n)) return undefined;
    const epi = this.fusion.epilogues.get(n);
    const writes = writesOf(n);
    const inPlace = !this.inPlace || writes ? undefined : this.#inPlaceInput(n, i);
    if (inPlace !== undefined) {
      // the output takes over the buffer of an input that dies here (same shape, read then
      // written by the same thread): one buffer less at this point of the plan
      const b = of.get(n.inputs[inPlace])!;
      this.#dieAt.set(i, this.#dieAt.get(i)!.filter((x) => x !== b));
      of.set(n, b);
      this.#dies(b, this.life.need.get(n)!);
    } else if (!writes && (!epi || epi.keepPre) && !this.fusion.statsOnly.has(n)) {
      // (a statsOnly norm's value is never stored: its matmuls normalise on the fly)
      this.#placeValue(n);
    }
    if (epi) this.#placeValue(epi.out);
    aux.set(
      n,
      n.auxSpecs.map((s, k) => {
        const b = this.#take(byteSize(s.shape, s.dtype));
        this.#dies(b, this.life.auxNeed.get(n)?.[k] ?? i);
        return b;
      }),
    );
    return { inPlace };
  }

  /** Takes scratch buffers of these sizes for the op at position i; they die with it. */
  scratch(bytes: readonly number[], i: number): number[] {
    const bufs = bytes.map((b) => this.#take(b));
    for (const b of bufs) this.#dies(b, i);
    return bufs;
  }

  /** Returns the buffers whose last use is the op at position i (after it took its own). */
  release(i: number): void {
    for (const b of this.#dieAt.get(i) ?? []) this.#free.push(b);
  }

  /** Best fit among free pooled buffers no more than 2x too large, else a new one. */
  #take(bytes: number): number {
    const { buffers } = this.storage;
    let best = -1;
    for (let i = 0; i < this.#free.length; i++) {
      const b = buffers[this.#free[i]].bytes;
      if (b >= bytes && b <= 2 * bytes && (best < 0 || b < buffers[this.#free[best]].bytes)) best = i;
    }
    if (best >= 0) return this.#free.splice(best, 1)[0];
    return this.storage.newBuffer(bytes, false);
  }

  #dies(buf: number, at: number): void {
    if (this.storage.buffers[buf].persistent) return;
    const l = this.#dieAt.get(at) ?? [];
    l.push(buf);
    this.#dieAt.set(at, l);
  }

  /** Gives computed node x a buffer of its own from the pool, released after its last use. */
  #placeValue(x: Node): void {
    if (this.storage.pinned.has(x)) return; // already placed in its arena
    const b = this.#take(byteSize(x.shape, x.dtype));
    this.storage.of.set(x, b);
    this.#dies(b, this.life.need.get(x)!);
  }

  /**
   * The input of elementwise op n whose pooled buffer n may overwrite: the op allows it
   * (OpDef.inPlace), shapes and dtypes match (so element i is read and written by one thread), the
   * buffer dies at this op and no other input of n shares it.
   */
  #inPlaceInput(n: Node, i: number): number | undefined {
    const { of, buffers, pinned } = this.storage;
    if (pinned.has(n)) return undefined; // its value goes to its arena
    for (const k of opDef(n).inPlace ?? []) {
      const x = n.inputs[k];
      const b = of.get(x);
      if (b === undefined || buffers[b].persistent || !(this.#dieAt.get(i) ?? []).includes(b)) continue;
      if (x.shape.join() !== n.shape.join() || x.dtype !== "f32" || n.dtype !== "f32") continue;
      if (n.inputs.some((y, j) => j !== k && of.get(y) === b)) continue;
      if (this.outputs.includes(x)) continue;
      return k;
    }
    return undefined;
  }
}
