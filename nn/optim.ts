// The user-facing AdamW optimizer: builds, inside the graph, everything one training step needs to
// update the trainable params from their gradients, and writes the per-step scalars from the host.
//
//   const grads = grad(loss);
//   const opt = new AdamW(g, grads, { lr: 1e-3, weightDecay: 0.05, maxGradNorm: 1 });  // build it last
//   const exe = await compile([loss], { effects: opt.effects });
//   for (...) { exe.write(x, ...); opt.prepareStep(exe, lrAt(step)); await exe.run([loss]); }
//
// Per param p it adds two zero-initialised state tensors (m, v: `<p.name>.exp_avg`, `.exp_avg_sq`).
// By default (fused) one `adamw_fused` node updates all params in one dispatch: the params, their
// gradients, the m and the v tensors each lie back to back in an arena (compiler/lower.ts), so one
// thread per element covers every param (ViT-Ti, 152 params, with clipping: 355 dispatches → 3).
// The decayed params come first in the arenas, so weight decay is one constant boundary rather than
// a per-element table. An arena is bound whole, so params are split into several fused nodes when
// one would exceed maxArenaBytes. A gradient that cannot live in an arena (an extra output such as
// batchnorm's weight gradient, a persistent tensor, one shared with another param, one pinned by
// another optimizer) gets the per-param `adamw` node instead, as every param does with fused: false.
// All updates share one f32 input `hyper` (ADAMW_HYPER layout: lr and the two bias corrections)
// that prepareStep writes, the only per-step upload besides the data. With maxGradNorm, gradients
// are scaled by torch's clip_grad_norm_ factor computed on the GPU from one `sumsq_span` over each
// gradient arena (and a `sumsq` per other gradient), chained. Learning-rate schedules live with the
// caller.

import { byteSize, type Graph, type Node, writesOf } from "../compiler/core/ir.ts";
import type { Executable } from "../compiler/runtime/executable.ts";
import { adamw, ADAMW_HYPER, adamwFused, clipCoef, sumsq, sumsqSpan } from "../compiler/ops/optim.ts";
import { aliasRoot, spanLayout } from "../compiler/lower/plan.ts";

/** Hyper-parameters of `AdamW` (torch.optim.AdamW semantics, timm's no-decay default). */
export interface AdamWOptions {
  /** Learning rate used when prepareStep is given none (default 1e-3). */
  lr?: number;
  /** (β1, β2), default [0.9, 0.999]. */
  betas?: [number, number];
  /** Added to the denominator (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay (default 0.05). */
  weightDecay?: number;
  /** Clip the global L2 norm of all gradients to this (torch.nn.utils.clip_grad_norm_); off by default. */
  maxGradNorm?: number;
  /**
   * Params that get no weight decay. Default (timm): 1-D params (biases, norm scales) and params
   * whose name ends in "bias". Pass `() => false` to decay everything, as torch.optim.AdamW does.
   */
  noDecay?: (p: Node) => boolean;
  /** Prefix of the hyper input's name (default "adamw"); set it when a graph has two optimizers. */
  name?: string;
  /** Update the params in few dispatches over arenas (default true); false: one `adamw` per param. */
  fused?: boolean;
  /**
   * Param groups (torch's optimizer param_groups): a learning-rate multiplier and a weight decay per
   * param, e.g. layer-wise lr decay (nn/schedule.ts layerDecayGroups). Params with equal settings
   * share one group; each group gets its own fused updates and `hyper` input (lr × lrScale).
   * Default: one group, lrScale 1 and `weightDecay`. noDecay params still get no decay.
   */
  paramGroup?: (p: Node) => ParamGroup;
  /**
   * Largest arena (bytes, padding included) one fused update binds; more params are split over
   * several. Default 128 MiB, WebGPU's default maxStorageBufferBindingSize (the graph is built
   * before the device is known).
   */
  maxArenaBytes?: number;
}

/** The settings of one param group (see AdamWOptions.paramGroup). */
export interface ParamGroup {
  /** Multiplies the step's learning rate (default 1). */
  lrScale?: number;
  /** Weight decay of the group's decayed params (default: the optimizer's). */
  weightDecay?: number;
}

/** Gradient roots placed in an arena by some fused AdamW (a tensor can lie in one arena only). */
const pinnedRoots = new WeakSet<Node>();

/** Whether a gradient can be placed in an arena (see compiler/lower.ts placeArenas). */
function pinnable(gp: Node): boolean {
  const root = aliasRoot(gp);
  return root.kind === "op" && root.op !== "aux" && !writesOf(root) && !pinnedRoots.has(root);
}

/** Splits params (in order) into runs whose arena stays within `limit` bytes (one param at least). */
function chunkByBytes(params: readonly Node[], limit: number): [number, number][] {
  const { offsets } = spanLayout(params);
  const end = (i: number) => offsets[i] + byteSize(params[i].shape, params[i].dtype);
  const runs: [number, number][] = [];
  for (let start = 0, i = 0; i < params.length; i++) {
    if (i > start && end(i) - offsets[start] > limit) {
      runs.push([start, i]);
      start = i;
    }
    if (i === params.length - 1) runs.push([start, i + 1]);
  }
  return runs;
}

/** timm's default no-decay rule: 1-D tensors and biases. */
export function timmNoDecay(p: Node): boolean {
  return p.rank <= 1 || (p.name ?? "").endsWith("bias");
}

/**
 * AdamW built into the graph: construct it after `grad()`, pass `effects` to `compile`, and call
 * `prepareStep(exe, lr)` before every `exe.run()`. Per param it adds the moment states
 * `<name>.exp_avg` and `<name>.exp_avg_sq` (zero-initialised, saved with training checkpoints).
 */
export class AdamW {
  /** The in-place update nodes; pass them to compile(outputs, { effects }). */
  readonly effects: Node[] = [];
  /** Per-step scalars (ADAMW_HYPER layout), written by prepareStep. */
  readonly hyper: Node;
  /** First and second moment state of each param. */
  readonly moments: Map<Node, { m: Node; v: Node }> = new Map();
  /** Σ g² over all gradients (before clipping), when clipping; add it to outputs to log the norm. */
  readonly gradSumSq: Node | undefined;
  /** The clip factor applied to every gradient, when clipping. */
  readonly clipCoef: Node | undefined;
  /** The param groups: settings and per-group hyper input (groups[0].hyper is `hyper`). */
  readonly groups: { lrScale: number; weightDecay: number; hyper: Node; params: Node[] }[] = [];
  /** Steps taken so far (prepareStep increments it first, so the first step is t = 1). */
  t = 0;
  /** Default learning rate for prepareStep. */
  readonly lr: number;
  /** β1: decay of the first moment. */
  readonly beta1: number;
  /** β2: decay of the second moment. */
  readonly beta2: number;

  /** Adds the update nodes for every (param, gradient) pair of `grads` (as returned by grad()). */
  constructor(g: Graph, grads: Map<Node, Node> | Iterable<readonly [Node, Node]>, opts: AdamWOptions = {}) {
    const pairs = [...grads];
    const [b1, b2] = opts.betas ?? [0.9, 0.999];
    this.lr = opts.lr ?? 1e-3;
    this.beta1 = b1;
    this.beta2 = b2;
    const wd = opts.weightDecay ?? 0.05;
    const noDecay = opts.noDecay ?? timmNoDecay;
    const prefix = opts.name ?? "adamw";
    for (const [p, gp] of pairs) {
      if (p.graph !== g || gp.graph !== g) throw new Error(`AdamW: ${p} / ${gp} belong to another graph`);
      if (p.kind !== "param" || !p.trainable) throw new Error(`AdamW: ${p} is not a trainable param`);
    }
    this.hyper = g.input(`${prefix}.hyper`, [ADAMW_HYPER.size]);
    const groupOf = new Map<Node, number>();
    for (const [p] of pairs) {
      const s = opts.paramGroup?.(p) ?? {};
      const [lrScale, weightDecay] = [s.lrScale ?? 1, s.weightDecay ?? wd];
      if (!(lrScale >= 0) || !(weightDecay >= 0)) throw new Error(`AdamW: bad param group of ${p}`);
      let k = this.groups.findIndex((x) => x.lrScale === lrScale && x.weightDecay === weightDecay);
      if (k < 0) {
        k = this.groups.length;
        const hyper = k ? g.input(`${prefix}.hyper.${k}`, [ADAMW_HYPER.size]) : this.hyper;
        this.groups.push({ lrScale, weightDecay, hyper, params: [] });
      }
      this.groups[k].params.push(p);
      groupOf.set(p, k);
    }
    // fused: the pinnable pairs, decayed params first; the rest get one adamw node each
    const single: (readonly [Node, Node])[] = [];
    const fused: (readonly [Node, Node])[] = [];
    const roots = new Set<Node>();
    for (const pair of pairs) {
      const root = aliasRoot(pair[1]);
      if (opts.fused !== false && pinnable(pair[1]) && !roots.has(root)) {
        roots.add(root);
        fused.push(pair);
      } else single.push(pair);
    }
    fused.sort((x, y) => Number(noDecay(x[0])) - Number(noDecay(y[0]))); // stable: decayed first
    for (const r of roots) pinnedRoots.add(r);
    // each group's fused pairs split into arenas of at most maxArenaBytes
    const chunks = this.groups.flatMap((_, k) => {
      const mine = fused.filter(([p]) => groupOf.get(p) === k);
      return chunkByBytes(mine.map(([p]) => p), opts.maxArenaBytes ?? 128 * 2 ** 20)
        .map(([a, b]) => Object.assign(mine.slice(a, b), { group: k }));
    });
    if (opts.maxGradNorm !== undefined && pairs.length) {
      let total: Node | undefined;
      for (const c of chunks) total = sumsqSpan(c.map(([, gp]) => gp), total);
      for (const [, gp] of single) total = sumsq(gp, total);
      this.gradSumSq = total;
      this.clipCoef = clipCoef(total!, opts.maxGradNorm);
    }
    for (const [p] of pairs) {
      const base = p.name ?? `${prefix}.p${p.id}`;
      const m = g.state(`${base}.exp_avg`, p.shape);
      const v = g.state(`${base}.exp_avg_sq`, p.shape);
      this.moments.set(p, { m, v });
    }
    const attrs = { beta1: b1, beta2: b2, eps: opts.eps ?? 1e-8, weightDecay: wd };
    for (const c of chunks) {
      const ps = c.map(([p]) => p), gs = c.map(([, gp]) => gp);
      const ms = ps.map((p) => this.moments.get(p)!.m), vs = ps.map((p) => this.moments.get(p)!.v);
      const decayed = ps.filter((p) => !noDecay(p)).length;
      const { hyper, weightDecay } = this.groups[c.group];
      this.effects.push(adamwFused(ps, gs, ms, vs, hyper, { ...attrs, weightDecay, decayed }, this.clipCoef));
    }
    for (const [p, gp] of single) {
      const { m, v } = this.moments.get(p)!;
      const { hyper, weightDecay } = this.groups[groupOf.get(p)!];
      const a = { ...attrs, weightDecay: noDecay(p) ? 0 : weightDecay };
      this.effects.push(adamw(p, gp, m, v, hyper, a, this.clipCoef));
    }
  }

  /** Advances the step count and writes this step's lr (× each group's lrScale) and bias corrections. */
  prepareStep(exe: Executable, lr: number = this.lr): void {
    this.t++;
    if (!this.effects.length) return; // hyper is not in the plan
    for (const gr of this.groups) exe.write(gr.hyper, this.hyperValues(lr * gr.lrScale));
  }

  /** The hyper values for the current step t (ADAMW_HYPER layout). */
  hyperValues(lr: number = this.lr): Float32Array {
    const h = new Float32Array(ADAMW_HYPER.size);
    h[ADAMW_HYPER.lr] = lr;
    h[ADAMW_HYPER.bc1] = 1 - this.beta1 ** this.t;
    h[ADAMW_HYPER.bc2] = 1 - this.beta2 ** this.t;
    return h;
  }
}
