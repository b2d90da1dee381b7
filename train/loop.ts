// The runner's parts: opening the frozen LLM the user asked for, the training loop (schedule, loss
// read every N steps, progress, metrics, evaluation and checkpoint at each epoch end), and the chart.

import type { Graph, Node } from "../compiler/core/ir.ts";
import { softCrossEntropy } from "../compiler/ops/loss.ts";
import type { HostArray } from "../compiler/runtime/executable.ts";
import { type LlmCheckpoint, openLlm } from "../io/llm.ts";
import { DEFAULT_LLM, RANDOM_LLM } from "../models/presets.ts";
import { exists } from "../io/fs.ts";
import { cosineLr, DivergedError, type Trainer } from "./trainer.ts";
import { type Metrics, Progress, readMetrics } from "./progress.ts";
import { lineChart } from "./chart.ts";
import { Mixup } from "../data/mixup.ts";
import type { MixSettings } from "./tasks.ts";

/** The frozen LLM of a run, opened. */
export interface RunLlm {
  /** The checkpoint (absent for "none"). */
  ck?: LlmCheckpoint;
  /** How the summary describes it. */
  what: string;
}

/**
 * "none"; "default" (models/lm-default, the LLaMA-architecture LM this framework pretrained on English
 * text); "random" (models/llama-tiny, the fixture whose weights are random — the summary says so); or a
 * checkpoint directory.
 */
export async function openRunLlm(llm: string): Promise<RunLlm> {
  if (llm === "none") return { what: "none" };
  const bundled = llm === "default" ? DEFAULT_LLM : llm === "random" ? RANDOM_LLM : undefined;
  if (bundled && !(await exists(bundled))) {
    throw new Error(
      `--llm ${llm}: ${bundled} not found; the bundled checkpoints come with a clone of the repository, not ` +
        "with the published package: pass --llm DIR (a Hugging Face or Meta LLaMA/OPT checkpoint) or --llm none",
    );
  }
  const ck = await openLlm(bundled ?? llm);
  const c = ck.cfg;
  const what = llm === "default"
    ? `bundled lm-default (LLaMA-architecture LM pretrained on English text by deno task pretrain; ` +
      `hidden ${c.hidden}, ${c.layers} layers)`
    : llm === "random"
    ? `bundled llama-tiny (hidden ${c.hidden}, ${c.layers} layers; its weights are random, not text-pretrained)`
    : `${ck.format} ${c.type} checkpoint ${llm}`;
  return { ck, what };
}

/** Closes the checkpoint. */
export function closeRunLlm(r: RunLlm): void {
  r.ck?.src.close();
}

/** Mixup/CutMix of a run's training batches (timm's Mixup, mode "batch"). */
export interface BatchMixer {
  /** The Mixup drawing the decisions (its `state` goes into checkpoints). */
  mixup: Mixup;
  /** The batch as Mixup sees it: [B, C, H, W]; clips [B, C, T, H, W] as [B, C·T, H, W]. */
  shape: [number, number, number, number];
  /** Mixes a batch in place; returns its soft targets [B, classes] (label smoothing folded in). */
  mix(x: Float32Array, labels: ArrayLike<number>): Float32Array;
}

/**
 * The batch mixer of a run, or undefined when --mixup and --cutmix are both 0. `input` is the model's
 * batch shape ([B, C, H, W] or [B, C, T, H, W]); the generator is seeded from the run's seed.
 */
export function batchMixer(
  c: MixSettings & { labelSmoothing: number; seed: number },
  input: readonly number[],
  classes: number,
): BatchMixer | undefined {
  const mixupAlpha = c.mixup ?? 0, cutmixAlpha = c.cutmix ?? 0;
  if (mixupAlpha <= 0 && cutmixAlpha <= 0) return undefined;
  if (input.length < 4) throw new Error(`mixup: the batch must be [B, C, …, H, W], got [${input}]`);
  const n = input.length;
  const inner = input.slice(1, n - 2).reduce((a, b) => a * b, 1);
  const shape: [number, number, number, number] = [input[0], inner, input[n - 2], input[n - 1]];
  const mixup = new Mixup({
    numClasses: classes,
    mixupAlpha,
    cutmixAlpha,
    prob: c.mixupProb ?? 1,
    switchProb: c.mixupSwitchProb ?? 0.5,
    labelSmoothing: c.labelSmoothing,
  }, c.seed * 31 + 11);
  return { mixup, shape, mix: (x, labels) => mixup.apply(x, shape, labels).targets };
}

/** The training loss of a run and the inputs it reads. */
export interface RunObjective {
  /** The scalar loss. */
  loss: Node;
  /** i32 [B] hard labels (no mixing). */
  labels?: Node;
  /** f32 [B, classes] soft targets (Mixup/CutMix on). */
  targets?: Node;
  /** The batch mixer (Mixup/CutMix on). */
  mixer?: BatchMixer;
}

/**
 * The loss of a training step: the task's loss on hard labels, or — with --mixup/--cutmix — soft-target
 * cross-entropy on the mixed targets, label smoothing folded into them as timm does (evaluation keeps
 * the hard labels).
 */
export function runObjective(
  g: Graph,
  model: { input: Node; logits: Node },
  c: MixSettings & { labelSmoothing: number; seed: number },
  classes: number,
  taskLoss: (logits: Node, labels: Node) => Node,
): RunObjective {
  const batch = model.input.shape[0];
  const mixer = batchMixer(c, model.input.shape, classes);
  if (mixer) {
    const targets = g.input("targets", [batch, classes]);
    return { loss: softCrossEntropy(model.logits, targets), targets, mixer };
  }
  const labels = g.input("labels", [batch], "i32");
  return { loss: taskLoss(model.logits, labels), labels };
}

/** What the training loop runs. */
export interface LoopSpec {
  /** The compiled training step. */
  trainer: Trainer;
  /** Steps the schedule spans. */
  total: number;
  /** The step to stop after (≤ total). */
  end: number;
  /** Steps per epoch (evaluation and checkpoint at each epoch end). */
  perEpoch: number;
  /** The step to start from (a resumed run's saved step). */
  start: number;
  /** Peak learning rate. */
  lr: number;
  /** Learning-rate warmup steps. */
  warmup: number;
  /** The lr of a step, when the task's recipe has its own schedule (default: cosine with `warmup`). */
  lrAt?: (step: number) => number;
  /** Batch size (for throughput). */
  batch: number;
  /** Read the loss back every N steps. */
  logEvery: number;
  /** What a sample is called in the progress line. */
  unit: string;
  /** Draw a progress bar on stderr. */
  progress?: boolean;
  /** Receives a line per evaluation. */
  log?: (line: string) => void;
  /** Where loss and accuracy records go. */
  metrics: Metrics;
  /** The next batch's inputs. */
  feeds(): Map<Node, HostArray> | Promise<Map<Node, HostArray>>;
  evaluate(): Promise<number>;
  /** Evaluates the EMA model (model EMA on), after each evaluate(). */
  evaluateEma?(): Promise<number>;
  /** Saves a checkpoint after `step`. */
  checkpoint(step: number): Promise<void>;
}

/** What the training loop did. */
export interface LoopResult {
  /** The losses read back. */
  losses: { step: number; loss: number }[];
  /** [step, accuracy] of each evaluation. */
  accs: [number, number][];
  /** [step, accuracy] of each evaluation of the EMA model (model EMA on). */
  emaAccs: [number, number][];
  /** Seconds spent. */
  seconds: number;
  /** The step it ended at. */
  step: number;
}

/** Runs steps start..end: schedule, loss reads, progress, metrics, evaluation + checkpoint at epoch ends. */
export async function trainLoop(s: LoopSpec): Promise<LoopResult> {
  const bar = s.progress ? new Progress(s.total, s.unit, s.start) : undefined;
  const losses: { step: number; loss: number }[] = [];
  const accs: [number, number][] = [];
  const emaAccs: [number, number][] = [];
  const t0 = performance.now();
  let step = s.start;
  while (step < s.end) {
    const feeds = await s.feeds();
    const lrNow = s.lrAt ? s.lrAt(step) : cosineLr(step, s.total, s.lr, Math.min(s.warmup, s.total));
    const read = (step + 1) % s.logEvery === 0 || step + 1 === s.end;
    const l = await s.trainer.step(feeds, lrNow, read);
    step++;
    if (l !== undefined) {
      // the Trainer's flag normally names an earlier step; a loss can still overflow on its own
      if (!Number.isFinite(l)) throw new DivergedError(step, `non-finite loss (${l})`);
      losses.push({ step, loss: l });
      s.metrics.log({
        step,
        epoch: step / s.perEpoch,
        loss: l,
        lr: lrNow,
        seconds: (performance.now() - t0) / 1000,
      });
    }
    if (bar) {
      bar.update(
        step,
        { loss: losses.at(-1)?.loss ?? "-", lr: lrNow },
        (step - s.start) * s.batch,
        l !== undefined,
      );
    }
    if (step % s.perEpoch === 0 || step === s.end) {
      const acc = await s.evaluate();
      accs.push([step, acc]);
      const ema = s.evaluateEma ? await s.evaluateEma() : undefined;
      if (ema !== undefined) emaAccs.push([step, ema]);
      s.metrics.log({
        step,
        epoch: step / s.perEpoch,
        test_accuracy: acc,
        ...(ema !== undefined ? { test_accuracy_ema: ema } : {}),
      });
      s.log?.(
        `step ${step} (epoch ${(step / s.perEpoch).toFixed(2)}): test accuracy ${(100 * acc).toFixed(2)}%` +
          (ema !== undefined ? `, EMA model ${(100 * ema).toFixed(2)}%` : ""),
      );
      await s.checkpoint(step);
    }
  }
  return { losses, accs, emaAccs, seconds: (performance.now() - t0) / 1000, step };
}

/**
 * chart.svg in `out`: training loss per read step and test accuracy per evaluation, from the run's
 * metrics.jsonl (so a resumed run's chart covers the steps before the resume too).
 */
export async function writeRunChart(out: string, title: string, metricsPath: string): Promise<void> {
  const records = await readMetrics(metricsPath);
  const losses: [number, number][] = [], accs: [number, number][] = [];
  for (const r of records) {
    if (r.final || typeof r.step !== "number") continue;
    if (typeof r.loss === "number") losses.push([r.step, r.loss]);
    if (typeof r.test_accuracy === "number") accs.push([r.step, r.test_accuracy]);
  }
  await Deno.writeTextFile(
    `${out}/chart.svg`,
    lineChart(title, [
      { ylabel: "training loss", series: [{ name: "loss", color: "#1f77b4", points: losses }] },
      {
        ylabel: "test accuracy",
        range: [0, 1],
        series: [{ name: "accuracy", color: "#d62728", points: accs }],
      },
    ]),
  );
}

/** argmax over each row of logits [rows, classes], counting matches with labels among the first `valid` rows. */
export function countCorrect(
  logits: ArrayLike<number>,
  classes: number,
  labels: ArrayLike<number>,
  valid: number,
): number {
  let correct = 0;
  for (let k = 0; k < valid; k++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[k * classes + c] > logits[k * classes + best]) best = c;
    if (best === labels[k]) correct++;
  }
  return correct;
}

/**
 * Counts rows among the first `valid` of logits [rows, classes] whose label is among the k highest
 * logits (ties broken toward the lower class index, as argmax does; k = 1 is countCorrect).
 */
export function countTopK(
  logits: ArrayLike<number>,
  classes: number,
  labels: ArrayLike<number>,
  valid: number,
  k: number,
): number {
  let correct = 0;
  for (let r = 0; r < valid; r++) {
    const o = r * classes, y = labels[r], v = logits[o + y];
    let rank = 0;
    for (let c = 0; c < classes && rank < k; c++) {
      if (logits[o + c] > v || (logits[o + c] === v && c < y)) rank++;
    }
    if (rank < k) correct++;
  }
  return correct;
}
