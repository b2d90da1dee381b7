// The runner's parts: opening the frozen LLM the user asked for, the training loop (schedule, loss
// read every N steps, progress, metrics, evaluation and checkpoint at each epoch end), and the chart.

import type { Node } from "../compiler/core/ir.ts";
import type { HostArray } from "../compiler/runtime/executable.ts";
import { type LlmCheckpoint, openLlm } from "../io/llm.ts";
import { DEFAULT_LLM } from "../models/presets.ts";
import { exists } from "../io/fs.ts";
import { writeRandomLlama } from "../io/random_llm.ts";
import { cosineLr, DivergedError, type Trainer } from "./trainer.ts";
import { type Metrics, Progress, readMetrics } from "./progress.ts";
import { lineChart } from "./chart.ts";

/** The frozen LLM of a run, opened. */
export interface RunLlm {
  /** The checkpoint (absent for "none"). */
  ck?: LlmCheckpoint;
  /** How the summary describes it. */
  what: string;
  /** A temporary directory to remove at the end (random weights). */
  tmp?: string;
}

/**
 * "none"; "random" (a frozen layer of the default LLM's shape with fresh random weights — the
 * paper's ablation); "default" (the bundled llama-tiny, whose weights are random, which the
 * description says plainly); or a checkpoint directory.
 */
export async function openRunLlm(llm: string, seed: number): Promise<RunLlm> {
  if (llm === "none") return { what: "none" };
  if (llm === "default") llm = DEFAULT_LLM;
  if ((llm === DEFAULT_LLM || llm === "random") && !(await exists(DEFAULT_LLM))) {
    throw new Error(
      `--llm ${
        llm === DEFAULT_LLM ? "default" : "random"
      }: ${DEFAULT_LLM} not found; the bundled llama-tiny comes ` +
        "with a clone of the repository, not with the published package: pass --llm DIR (a Hugging Face or Meta " +
        "LLaMA/OPT checkpoint) or --llm none",
    );
  }
  if (llm === "random") {
    const base = await openLlm(DEFAULT_LLM);
    const c = base.cfg;
    base.src.close();
    const tmp = await Deno.makeTempDir({ prefix: "llm-random-" });
    const shape = {
      hidden: c.hidden,
      heads: c.heads,
      kvHeads: c.kvHeads,
      intermediate: c.intermediate,
      layers: c.layers,
      vocab: c.vocab,
    };
    await writeRandomLlama(tmp, shape, { seed: 1000 + seed });
    return {
      ck: await openLlm(tmp),
      what: `random weights of llama-tiny's shape (seed ${1000 + seed})`,
      tmp,
    };
  }
  const ck = await openLlm(llm);
  const what = llm === DEFAULT_LLM
    ? "bundled llama-tiny (its weights are random, not text-pretrained)"
    : `${ck.format} ${ck.cfg.type} checkpoint ${llm}`;
  return { ck, what };
}

/** Closes the checkpoint and removes a temporary one. */
export async function closeRunLlm(r: RunLlm): Promise<void> {
  r.ck?.src.close();
  if (r.tmp) await Deno.remove(r.tmp, { recursive: true });
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
  /** Saves a checkpoint after `step`. */
  checkpoint(step: number): Promise<void>;
}

/** What the training loop did. */
export interface LoopResult {
  /** The losses read back. */
  losses: { step: number; loss: number }[];
  /** [step, accuracy] of each evaluation. */
  accs: [number, number][];
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
      s.metrics.log({ step, epoch: step / s.perEpoch, test_accuracy: acc });
      s.log?.(
        `step ${step} (epoch ${(step / s.perEpoch).toFixed(2)}): test accuracy ${(100 * acc).toFixed(2)}%`,
      );
      await s.checkpoint(step);
    }
  }
  return { losses, accs, seconds: (performance.now() - t0) / 1000, step };
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
