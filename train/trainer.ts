// One compiled training step: forward, pruned backward, AdamW (+ optional clipping), built once.
// Each step() uploads the batch and the optimizer's per-step scalars, then submits once; the loss is
// read back only when asked (every N steps), so the GPU is not stalled on every step.

import type { Node } from "../compiler/core/ir.ts";
import { grad } from "../compiler/grad.ts";
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
  /** Matmul epilogue fusion and in-place elementwise ops in the plan (default true; see compiler/lower.ts). */
  fuse?: boolean;
  /** In-place elementwise ops in the plan (default true). */
  inPlace?: boolean;
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
  ) {}

  /** Differentiates `loss`, adds AdamW, and compiles the step. */
  static async create(loss: Node, opts: TrainerOptions = {}): Promise<Trainer> {
    const grads = grad(loss);
    if (grads.size === 0) throw new Error(`trainer: the loss depends on no trainable parameter`);
    const opt = new AdamW(loss.graph, grads, opts);
    const exe = await compile([loss, ...(opts.outputs ?? [])], {
      effects: [...(opts.effectsBefore ?? []), ...opt.effects],
      gpu: opts.gpu,
      weights: opts.weights,
      gpuMemoryBudget: opts.gpuMemoryBudget,
      fuse: opts.fuse,
      inPlace: opts.inPlace,
    });
    return new Trainer(loss, grads, opt, exe);
  }

  /** Trainable parameter count. */
  get paramCount(): number {
    let n = 0;
    for (const p of this.grads.keys()) n += p.size;
    return n;
  }

  /** Runs one step. Returns the loss when `readLoss`, else undefined (no readback, no stall). */
  async step(feeds: ReadonlyMap<Node, HostArray>, lr: number, readLoss = false): Promise<number | undefined> {
    for (const [n, v] of feeds) this.exe.write(n, v);
    this.opt.prepareStep(this.exe, lr);
    const out = await this.exe.run(readLoss ? [this.loss] : []);
    return readLoss ? out[0][0] : undefined;
  }
}

/** Linear warmup then cosine decay to `minLr`, as timm's scheduler (per step). */
export function cosineLr(step: number, total: number, base: number, warmup = 0, minLr = 0): number {
  if (step < warmup) return base * (step + 1) / warmup;
  const t = (step - warmup) / Math.max(1, total - warmup);
  return minLr + 0.5 * (base - minLr) * (1 + Math.cos(Math.PI * Math.min(1, t)));
}
