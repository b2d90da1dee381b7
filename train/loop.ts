// What the ViT and point-cloud runs share: opening the frozen LLM the user asked for, the training
// loop (schedule, loss read every N steps, progress, metrics, evaluation and checkpoint at each epoch
// end), and the chart at the end.

import type { Node } from "../compiler/core/ir.ts";
import type { HostArray } from "../compiler/runtime/executable.ts";
import { type LlmCheckpoint, openLlm } from "../models/llm.ts";
import { writeRandomLlama } from "../io/random_llm.ts";
import { cosineLr, type Trainer } from "./trainer.ts";
import { type Metrics, Progress } from "./progress.ts";
import { lineChart } from "./chart.ts";

export const DEFAULT_LLM: string = new URL("../tests/fixtures/llama-tiny", import.meta.url).pathname;

export interface RunLlm {
  ck?: LlmCheckpoint;
  /** How the summary describes it. */
  what: string;
  /** A temporary directory to remove at the end (random weights). */
  tmp?: string;
}

/**
 * "none"; "random" (a frozen layer of the default LLM's shape with fresh random weights — the
 * paper's ablation); or a checkpoint directory (the default one is the llama-tiny fixture, whose
 * weights are random, which the description says plainly).
 */
export async function openRunLlm(llm: string, seed: number): Promise<RunLlm> {
  if (llm === "none") return { what: "none" };
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
    ? "llama-tiny test fixture (its weights are random, not text-pretrained)"
    : `${ck.format} ${ck.cfg.type} checkpoint ${llm}`;
  return { ck, what };
}

export async function closeRunLlm(r: RunLlm): Promise<void> {
  r.ck?.src.close();
  if (r.tmp) await Deno.remove(r.tmp, { recursive: true });
}

export interface LoopSpec {
  trainer: Trainer;
  /** Steps the schedule spans, and the step to stop after (≤ total). */
  total: number;
  end: number;
  perEpoch: number;
  /** The step to start from (a resumed run's saved step). */
  start: number;
  lr: number;
  warmup: number;
  batch: number;
  logEvery: number;
  unit: string;
  quiet?: boolean;
  metrics: Metrics;
  /** The next batch's inputs. */
  feeds(): Map<Node, HostArray>;
  evaluate(): Promise<number>;
  /** Saves a checkpoint after `step`. */
  checkpoint(step: number): Promise<void>;
}

export interface LoopResult {
  losses: { step: number; loss: number }[];
  accs: [number, number][];
  seconds: number;
  step: number;
}

export async function trainLoop(s: LoopSpec): Promise<LoopResult> {
  const bar = new Progress(s.total, s.unit, s.start);
  const losses: { step: number; loss: number }[] = [];
  const accs: [number, number][] = [];
  const t0 = performance.now();
  let step = s.start;
  while (step < s.end) {
    const feeds = s.feeds();
    const lrNow = cosineLr(step, s.total, s.lr, Math.min(s.warmup, s.total));
    const read = (step + 1) % s.logEvery === 0 || step + 1 === s.end;
    const l = await s.trainer.step(feeds, lrNow, read);
    step++;
    if (l !== undefined) {
      if (!Number.isFinite(l)) throw new Error(`training diverged: loss ${l} at step ${step}`);
      losses.push({ step, loss: l });
      s.metrics.log({
        step,
        epoch: step / s.perEpoch,
        loss: l,
        lr: lrNow,
        seconds: (performance.now() - t0) / 1000,
      });
    }
    if (!s.quiet) {
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
      if (!s.quiet) {
        console.error(
          `step ${step} (epoch ${(step / s.perEpoch).toFixed(2)}): test accuracy ${(100 * acc).toFixed(2)}%`,
        );
      }
      await s.checkpoint(step);
    }
  }
  return { losses, accs, seconds: (performance.now() - t0) / 1000, step };
}

/** chart.svg: training loss per read step and test accuracy per evaluation. */
export async function writeRunChart(out: string, title: string, r: LoopResult): Promise<void> {
  await Deno.writeTextFile(
    `${out}/chart.svg`,
    lineChart(title, [
      {
        ylabel: "training loss",
        series: [{ name: "loss", color: "#1f77b4", points: r.losses.map((x) => [x.step, x.loss]) }],
      },
      { ylabel: "test accuracy", series: [{ name: "accuracy", color: "#d62728", points: r.accs }] },
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
