// Learning-rate schedules of the DeiT / timm recipe, as pure functions of the step.
//
// scaledLr: DeiT's linear scaling rule, lr = lr_base · batch / 512 (`--lr-base`).
// cosineLr: timm's CosineLRScheduler (cycle_limit 1, cycle_mul 1, no noise) at time t:
//   t < warmup_t:  warmup_lr_init + t · (lr − warmup_lr_init) / warmup_t
//   otherwise:     lr_min + ½ (lr − lr_min)(1 + cos(π · t' / t_initial)) while t' < t_initial, then lr_min,
//   with t' = t − warmup_t when warmupPrefix, else t' = t (timm's default: the warmup eats into the cosine).
// lrAtStep: the same per optimizer step, with t counted in epochs (timm's t_in_epochs: the lr changes
//   at epoch boundaries) or in steps (sched_on_updates).
// Layer-wise lr decay (BEiT / timm param_groups_layer_decay) for ViT names: cls_token, pos_embed,
//   patch_embed.* → layer 0; blocks.i.* → i + 1; everything else (norm, fc_norm, head) → depth + 1;
//   lr scale = decay^(depth + 1 − layer).

import type { Node } from "../compiler/core/ir.ts";
import type { ParamGroup } from "./optim.ts";

/** DeiT's linear scaling: lrBase · batch / baseBatch (baseBatch 512 as DeiT; timm's train.py uses 256). */
export function scaledLr(lrBase: number, batch: number, baseBatch = 512): number {
  return (lrBase * batch) / baseBatch;
}

/** The parameters of timm's CosineLRScheduler (names as timm's, in camelCase). */
export interface CosineSchedule {
  /** Peak learning rate (the optimizer's lr, after scaling). */
  lr: number;
  /** Length of the cosine in t units (timm's t_initial: epochs, or steps when per step). */
  tInitial: number;
  /** Floor of the cosine (timm's lr_min, `--min-lr`; default 0). */
  lrMin?: number;
  /** Warmup length in t units (timm's warmup_t; default 0). */
  warmupT?: number;
  /** lr at t = 0 of the warmup (timm's warmup_lr_init, `--warmup-lr`; default 0). */
  warmupLrInit?: number;
  /** Start the cosine after the warmup instead of at t = 0 (timm's warmup_prefix; default false). */
  warmupPrefix?: boolean;
}

/** timm CosineLRScheduler's lr at time t (an epoch or a step number, from 0). */
export function cosineLr(t: number, s: CosineSchedule): number {
  const warmupT = s.warmupT ?? 0, lrMin = s.lrMin ?? 0, init = s.warmupLrInit ?? 0;
  if (!(s.tInitial > 0)) throw new Error(`cosineLr: tInitial must be > 0, got ${s.tInitial}`);
  if (t < warmupT) return init + (t * (s.lr - init)) / warmupT;
  const tc = s.warmupPrefix ? t - warmupT : t;
  if (tc >= s.tInitial) return lrMin; // past the one cycle (cycle_limit 1)
  return lrMin + 0.5 * (s.lr - lrMin) * (1 + Math.cos((Math.PI * tc) / s.tInitial));
}

/** A cosine schedule over a training run, warmup and length counted in epochs or in steps. */
export interface RunSchedule {
  /** Peak learning rate. */
  lr: number;
  /** Epochs of the run (the cosine's length). */
  epochs: number;
  /** Optimizer steps per epoch. */
  stepsPerEpoch: number;
  /** Warmup length, in `warmupUnit`s (default 0). */
  warmup?: number;
  /** Unit of `warmup` (default "epochs"). */
  warmupUnit?: "epochs" | "steps";
  /** Count t in epochs (timm's default: the lr changes once per epoch) or in steps (default "epochs"). */
  per?: "epoch" | "step";
  /** Floor of the cosine (`--min-lr`, default 0). */
  minLr?: number;
  /** lr at the start of the warmup (`--warmup-lr`, default 0). */
  warmupLr?: number;
  /** See CosineSchedule.warmupPrefix (default false, as timm). */
  warmupPrefix?: boolean;
}

/** The lr of optimizer step `step` (0-based) of a run. */
export function lrAtStep(step: number, r: RunSchedule): number {
  const spe = r.stepsPerEpoch;
  const warmupSteps = (r.warmup ?? 0) * ((r.warmupUnit ?? "epochs") === "epochs" ? spe : 1);
  const perStep = r.per === "step";
  return cosineLr(perStep ? step : Math.floor(step / spe), {
    lr: r.lr,
    tInitial: perStep ? r.epochs * spe : r.epochs,
    lrMin: r.minLr,
    warmupT: perStep ? warmupSteps : warmupSteps / spe,
    warmupLrInit: r.warmupLr,
    warmupPrefix: r.warmupPrefix,
  });
}

/** BEiT / timm layer id of a ViT param name: stem 0, blocks.i → i + 1, the rest depth + 1. */
export function vitLayerId(name: string, depth: number): number {
  if (/^(cls_token|pos_embed|patch_embed|reg_token|dist_token)(\.|$)/.test(name)) return 0;
  const m = /^blocks\.(\d+)\./.exec(name);
  return m ? Number(m[1]) + 1 : depth + 1;
}

/** The lr scale of a ViT param under layer decay: decay^(depth + 1 − layer id). */
export function layerDecayScale(name: string, depth: number, decay: number): number {
  return decay ** (depth + 1 - vitLayerId(name, depth));
}

/** AdamWOptions.paramGroup for layer-wise lr decay of a ViT of `depth` blocks (`--layer-decay`). */
export function layerDecayGroups(depth: number, decay: number): (p: Node) => ParamGroup {
  return (p) => ({ lrScale: layerDecayScale(p.name ?? "", depth, decay) });
}
