// One compiled training step: forward, pruned backward, AdamW (+ optional clipping), built once.
// Each step() uploads the batch and the optimizer's per-step scalars, then submits once; the loss is
// read back only when asked (every N steps), so the GPU is not stalled on every step.
//
// Every step also checks on the GPU that the loss and the gradients are finite (with clipping, the
// global Σg² the clipping computes anyway; without, one pass over the gradient arenas) and records
// the first step where they were not in a u32 state (compiler/ops/finite.ts). The flag is read with
// the loss and before any checkpoint, so a diverged run stops naming the step it diverged at, not
// the later step at which a loss happened to be read. A step with finite gradients updates the
// weights by a bounded amount, so weights turn non-finite only through such a step, or through an
// overflowing update, which the next step's loss shows (and the checkpoint writer refuses on its own).

import type { Graph, Node } from "../compiler/core/ir.ts";
import { opDef } from "../compiler/core/ir.ts";
import { grad } from "../compiler/grad.ts";
import { nonfiniteAny, nonfiniteFlag } from "../compiler/ops/finite.ts";
import { AdamW, type AdamWOptions } from "../nn/optim.ts";
import {
  compile,
  type Executable,
  type HostArray,
  type WeightLoader,
} from "../compiler/runtime/executable.ts";
import type { Gpu } from "../compiler/runtime/device.ts";

/** Options of a Trainer: AdamW's, plus what the compiled step keeps, streams and fuses. */
export interface TrainerOptions extends AdamWOptions {
  /** Extra nodes to keep readable (e.g. logits for accuracy). */
  outputs?: Node[];
  /** The device (default: the shared one from getGpu). */
  gpu?: Gpu;
  /** Loader of streamable frozen weights (frozen LLM layers), and their GPU memory budget. */
  weights?: WeightLoader;
  /** GPU memory budget in bytes for the frozen weights (default: unlimited). */
  gpuMemoryBudget?: number;
  /** In-place updates to run before the optimizer's (e.g. BatchNorm running statistics). */
  effectsBefore?: Node[];
  /** Builds in-place updates once the optimizer is in the graph, run after its (e.g. ModelEma's). */
  effectsAfter?: (g: Graph) => Node[];
  /** Matmul epilogue fusion and in-place elementwise ops in the plan (default true; see compiler/lower.ts). */
  fuse?: boolean;
  /** In-place elementwise ops in the plan (default true). */
  inPlace?: boolean;
  /** Check the loss and the gradients for NaN/Inf on the GPU every step (default true; see step()). */
  checkFinite?: boolean;
}

/** A training step produced a non-finite loss or gradient (or weights); `step` is the first such step. */
export class DivergedError extends Error {
  /** "DivergedError". */
  override name = "DivergedError";
  /** `message` starts with "training diverged", says what was not finite and names the first bad step. */
  constructor(readonly step: number, readonly detail = "non-finite loss or gradients", note?: string) {
    super(`training diverged: ${detail} first at step ${step}${note ? `; ${note}` : ""}`);
  }
}

/** The nodes of the per-step finiteness check. */
interface FiniteCheck {
  /** u32 input [1]: the step's number, written before each run. */
  step: Node;
  /** u32 state [1]: the first step whose check failed (0: none yet). */
  flag: Node;
  /** The in-place update of flag (an effect of the step). */
  effect: Node;
}

/**
 * Builds the check of the loss and every gradient: with clipping only the global Σg² (non-finite
 * exactly when some gradient is, or overflows); otherwise one scan per gradient arena of the fused
 * updates (their spans, reused as they are) and one per other gradient.
 */
function finiteCheck(g: Graph, loss: Node, grads: Map<Node, Node>, opt: AdamW): FiniteCheck {
  let bad = nonfiniteAny([loss]);
  if (opt.gradSumSq) bad = nonfiniteAny([opt.gradSumSq], bad);
  else {
    const all = new Set(grads.values());
    const covered = new Set<Node>();
    for (const e of opt.effects) {
      for (const span of opDef(e).spans?.(e) ?? []) {
        if (span.length && span.every((x) => all.has(x)) && !span.some((x) => covered.has(x))) {
          bad = nonfiniteAny(span, bad, true);
          for (const x of span) covered.add(x);
        }
      }
    }
    for (const gp of all) if (!covered.has(gp)) bad = nonfiniteAny([gp], bad);
  }
  const step = g.input("trainer.step", [1], "u32");
  const flag = g.state("trainer.first_nonfinite_step", [1], { dtype: "u32" });
  return { step, flag, effect: nonfiniteFlag(bad, step, flag) };
}

/** One compiled training step: forward, pruned backward and AdamW, built once and replayed. */
export class Trainer {
  private constructor(
    /** The scalar loss. */
    readonly loss: Node,
    /** Each trainable parameter's gradient node. */
    readonly grads: Map<Node, Node>,
    /** The optimizer (its moments and step count). */
    readonly opt: AdamW,
    /** The compiled step. */
    readonly exe: Executable,
    private readonly finite: FiniteCheck | undefined,
  ) {}

  /** Differentiates `loss`, adds AdamW, and compiles the step. */
  static async create(loss: Node, opts: TrainerOptions = {}): Promise<Trainer> {
    const grads = grad(loss);
    if (grads.size === 0) throw new Error(`trainer: the loss depends on no trainable parameter`);
    const opt = new AdamW(loss.graph, grads, opts);
    const finite = opts.checkFinite === false ? undefined : finiteCheck(loss.graph, loss, grads, opt);
    const exe = await compile([loss, ...(opts.outputs ?? [])], {
      effects: [
        ...(opts.effectsBefore ?? []),
        ...opt.effects,
        ...(opts.effectsAfter?.(loss.graph) ?? []),
        ...(finite ? [finite.effect] : []),
      ],
      gpu: opts.gpu,
      weights: opts.weights,
      gpuMemoryBudget: opts.gpuMemoryBudget,
      fuse: opts.fuse,
      inPlace: opts.inPlace,
    });
    return new Trainer(loss, grads, opt, exe, finite);
  }

  /** Trainable parameter count. */
  get paramCount(): number {
    let n = 0;
    for (const p of this.grads.keys()) n += p.size;
    return n;
  }

  /**
   * Runs one step (its number is the optimizer's step count, from 1). Returns the loss when
   * `readLoss`, else undefined (no readback, no stall). With readLoss the finiteness flag is read in
   * the same readback: a DivergedError naming the first bad step is thrown once any step so far had a
   * non-finite loss or gradient.
   */
  async step(feeds: ReadonlyMap<Node, HostArray>, lr: number, readLoss = false): Promise<number | undefined> {
    for (const [n, v] of feeds) this.exe.write(n, v);
    this.opt.prepareStep(this.exe, lr);
    const f = this.finite;
    if (f) this.exe.write(f.step, Uint32Array.of(this.opt.t));
    if (!readLoss) {
      await this.exe.run([]);
      return undefined;
    }
    const out = await this.exe.run(f ? [this.loss, f.flag] : [this.loss]);
    if (f && out[1][0] !== 0) throw new DivergedError(out[1][0]);
    return out[0][0];
  }

  /**
   * The first step whose loss or gradients were not finite, or undefined (also without the check).
   * Reads one word back; the runner calls it before every checkpoint.
   */
  async firstNonFiniteStep(): Promise<number | undefined> {
    if (!this.finite) return undefined;
    const [v] = await this.exe.read(this.finite.flag);
    return v === 0 ? undefined : v;
  }

  /** Throws a DivergedError naming the first bad step when any step so far was not finite. */
  async assertFinite(): Promise<void> {
    const bad = await this.firstNonFiniteStep();
    if (bad !== undefined) throw new DivergedError(bad);
  }
}

/** Linear warmup then cosine decay to `minLr`, as timm's scheduler (per step). */
export function cosineLr(step: number, total: number, base: number, warmup = 0, minLr = 0): number {
  if (step < warmup) return base * (step + 1) / warmup;
  const t = (step - warmup) / Math.max(1, total - warmup);
  return minLr + 0.5 * (base - minLr) * (1 + Math.cos(Math.PI * Math.min(1, t)));
}
