// Model EMA (timm's ModelEmaV2): a shadow copy of the model's weights that follows them as an
// exponential moving average, ema ← decay·ema + (1 − decay)·weight after every optimizer step, and is
// evaluated instead of (or besides) the trained weights. Tracked: the trainable params and the
// BatchNorm running statistics (timm averages the whole state_dict; frozen weights never change, so
// their average is themselves and they are not copied).
//
//   const opt = new AdamW(g, grads, {...});
//   const ema = new ModelEma(g, { decay: 0.99996 });          // build it after the optimizer
//   const exe = await compile([loss], { effects: [...opt.effects, ...ema.effects] });
//   await ema.reset(exe);                                      // after loading initial weights, if any
//   ... train ...; await ema.swap(exe); evaluate; await ema.swap(exe);   // eval with the EMA weights
//
// On the GPU the update is one `ema_update` dispatch per arena: the shadows lie back to back in their
// own arena, and the sources in theirs — the fused AdamW's param arenas when they are there (an
// update must bind exactly that list, so each fused AdamW chunk gets its own ema_update), otherwise a
// new arena. The effects run after the optimizer's (creation order), so they average the new weights
// (ema_update is marked OpDef.readsUpdated: reading a tensor after its in-place update is allowed).

import { byteSize, type Graph, type Node, opDef } from "../compiler/core/ir.ts";
import type { Executable } from "../compiler/runtime/executable.ts";
import { emaUpdate } from "../compiler/ops/ema.ts";
import { aliasRoot, spanLayout } from "../compiler/lower/plan.ts";

/** Options of ModelEma. */
export interface ModelEmaOptions {
  /** Weight of the old average per step (timm ModelEmaV2's default 0.9999; DeiT uses 0.99996). */
  decay?: number;
  /**
   * The tensors to average (f32 params or state tensors). Default: every trainable f32 param, then
   * the running stats of every training-mode batchNorm.
   */
  sources?: readonly Node[];
  /** Prefix of the shadow tensors' names (`<name>.<source name>`, default "ema"). */
  name?: string;
  /** Largest new arena (bytes) one update binds (default 128 MiB, as AdamW). */
  maxArenaBytes?: number;
}

/** The default sources: trainable f32 params and the BatchNorm running statistics. */
export function emaSources(g: Graph): Node[] {
  const stats = g.nodes.filter((n) => n.op === "batchnorm_stats_update").flatMap((n) => n.inputs.slice(0, 2));
  return [...g.trainableParams.filter((p) => p.dtype === "f32"), ...stats];
}

/** The arenas (spans of existing ops) that hold any of `sources`, each as its member list. */
function existingSpans(g: Graph, sources: ReadonlySet<Node>): Node[][] {
  const found = new Map<string, Node[]>();
  for (const n of g.nodes) {
    for (const span of (n.kind === "op" ? opDef(n).spans?.(n) : undefined) ?? []) {
      const roots = span.map(aliasRoot);
      if (!roots.some((r) => sources.has(r))) continue;
      const bad = roots.find((r) => !sources.has(r));
      if (bad) {
        throw new Error(`ModelEma: ${bad} lies in an arena (${n}) with tracked tensors, but is not tracked`);
      }
      found.set(roots.map((r) => r.id).join(), roots);
    }
  }
  return [...found.values()];
}

/** Splits `xs` (in order) into runs whose arena stays within `limit` bytes (one tensor at least). */
function chunkByBytes(xs: readonly Node[], limit: number): Node[][] {
  const out: Node[][] = [];
  let cur: Node[] = [];
  for (const x of xs) {
    const next = [...cur, x];
    if (cur.length && spanLayout(next).bytes > limit) {
      out.push(cur);
      cur = [x];
    } else cur = next;
  }
  if (cur.length) out.push(cur);
  return out;
}

/** An exponential moving average of a model's weights, updated on the GPU after each step. */
export class ModelEma {
  /** The update nodes; pass them to compile(outputs, { effects }) after the optimizer's. */
  readonly effects: Node[] = [];
  /** Each tracked tensor's shadow (an f32 state tensor named `<name>.<source name>`). */
  readonly shadows: Map<Node, Node> = new Map();
  /** The decay of the average. */
  readonly decay: number;

  /** Adds the shadow tensors (initialised with the sources' init) and their update effects to `g`. */
  constructor(g: Graph, opts: ModelEmaOptions = {}) {
    this.decay = opts.decay ?? 0.9999;
    if (!(this.decay >= 0 && this.decay <= 1)) throw new Error(`ModelEma: decay ${this.decay} not in [0, 1]`);
    const sources = [...(opts.sources ?? emaSources(g))];
    for (const s of sources) {
      if (s.graph !== g) throw new Error(`ModelEma: ${s} belongs to another graph`);
      if ((s.kind !== "param" && s.kind !== "state") || s.dtype !== "f32") {
        throw new Error(`ModelEma: ${s} is not an f32 param or state tensor`);
      }
    }
    if (new Set(sources).size !== sources.length) throw new Error("ModelEma: a source is listed twice");
    const prefix = opts.name ?? "ema";
    for (const s of sources) {
      this.shadows.set(s, g.state(`${prefix}.${s.name ?? `t${s.id}`}`, s.shape, { init: s.init }));
    }
    const spans = existingSpans(g, new Set(sources));
    const inSpan = new Set(spans.flat());
    const rest = chunkByBytes(sources.filter((s) => !inSpan.has(s)), opts.maxArenaBytes ?? 128 * 2 ** 20);
    for (const group of [...spans, ...rest]) {
      this.effects.push(emaUpdate(group.map((s) => this.shadows.get(s)!), group, this.decay));
    }
  }

  /** Sets every shadow to its source's current value in `exe` (timm: the EMA starts as a copy). */
  async reset(exe: Executable): Promise<void> {
    for (const [s, e] of this.shadows) exe.write(e, await exe.read(s) as Float32Array);
  }

  /**
   * Exchanges the sources' and the shadows' values in `exe`: afterwards the model computes with the
   * EMA weights; a second swap restores the trained ones (do it before the next training step).
   */
  async swap(exe: Executable): Promise<void> {
    for (const [s, e] of this.shadows) {
      const [sv, ev] = [await exe.read(s), await exe.read(e)];
      exe.write(s, ev);
      exe.write(e, sv);
    }
  }

  /** The EMA values by source name (e.g. to load into a separately compiled eval model, or to save). */
  async read(exe: Executable): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const [s, e] of this.shadows) out.set(s.name ?? `t${s.id}`, await exe.read(e) as Float32Array);
    return out;
  }

  /** Bytes of GPU memory the shadows take. */
  get bytes(): number {
    let b = 0;
    for (const e of this.shadows.values()) b += byteSize(e.shape, e.dtype);
    return b;
  }
}
