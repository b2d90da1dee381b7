// The ablation grid's pieces (examples/ablate.ts runs it): a run's trainable/frozen parameter counts,
// one cell's result as stored in its directory (which makes the grid resumable: a cell whose
// result.json exists is not run again), and the markdown table of mean ± std per arm.

import { Graph } from "../compiler/core/ir.ts";
import { parseLayerSelection } from "../io/config.ts";
import { closeRunLlm, openRunLlm } from "./loop.ts";
import type { RunConfig, RunSummary } from "./config.ts";
import { TASKS } from "./tasks.ts";

/** Trainable and frozen parameter counts of a run's training model (built on a graph, not compiled). */
export async function paramCounts(c: RunConfig): Promise<{ trainable: number; frozen: number }> {
  const r = await openRunLlm(c.llm);
  try {
    const llm = r.ck ? { ck: r.ck, layers: parseLayerSelection(c.llmLayers, r.ck.cfg.layers) } : undefined;
    const g = new Graph();
    await TASKS[c.task].build(g, c, 1, true, llm);
    let trainable = 0, frozen = 0;
    for (const p of g.params) p.trainable ? (trainable += p.size) : (frozen += p.size);
    return { trainable, frozen };
  } finally {
    closeRunLlm(r);
  }
}

/** One finished cell of the grid (its directory's result.json). */
export interface AblationCell {
  /** The arm (or another label). */
  arm: string;
  /** The seed. */
  seed: number;
  /** Top-1 test accuracy in [0, 1]. */
  top1: number;
  /** Training seconds. */
  seconds: number;
  /** Steps trained. */
  steps: number;
  /** Training throughput (samples per second). */
  perSecond: number;
  /** Trainable parameters. */
  trainable: number;
  /** Frozen parameters. */
  frozen: number;
  /** The run directory. */
  out: string;
}

/** A cell's result from a run summary. */
export function cellOf(
  arm: string,
  seed: number,
  s: RunSummary,
  batch: number,
  counts: { trainable: number; frozen: number },
  out: string,
): AblationCell {
  return {
    arm,
    seed,
    top1: s.testAccuracy,
    seconds: s.seconds,
    steps: s.steps,
    perSecond: s.seconds > 0 ? s.steps * batch / s.seconds : 0,
    ...counts,
    out,
  };
}

/** The finished cell stored in `dir` (result.json), or undefined when the cell has not finished. */
export async function readCell(dir: string): Promise<AblationCell | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(`${dir}/result.json`)) as AblationCell;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`${dir}/result.json: ${(e as Error).message}`);
  }
}

/** Stores a finished cell in its directory (written last, so an interrupted cell is run again). */
export async function writeCell(dir: string, c: AblationCell): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${dir}/result.json.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(c, null, 2) + "\n");
  await Deno.rename(tmp, `${dir}/result.json`);
}

/** Mean and sample standard deviation (0 for one value). */
export function meanStd(v: readonly number[]): { mean: number; std: number } {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : 0;
  return { mean, std };
}

/** The markdown table: one row per arm (in `arms` order), top-1 % mean ± std, per seed, params, img/s. */
export function ablationTable(
  title: string,
  arms: readonly string[],
  cells: readonly AblationCell[],
  unit: string,
): string {
  const rows = arms.map((arm) => {
    const cs = cells.filter((c) => c.arm === arm).sort((a, b) => a.seed - b.seed);
    if (!cs.length) return `| ${arm} | – | – | – | – | – |`;
    const { mean, std } = meanStd(cs.map((c) => 100 * c.top1));
    const rate = meanStd(cs.map((c) => c.perSecond)).mean;
    return `| ${arm} | ${mean.toFixed(2)} ± ${std.toFixed(2)} | ${
      cs.map((c) => (100 * c.top1).toFixed(2)).join(", ")
    } | ` +
      `${cs[0].trainable} | ${cs[0].frozen} | ${rate.toFixed(0)} |`;
  });
  return [
    title,
    "",
    `| arm | top-1 % (mean ± std) | per seed | trainable params | frozen params | ${unit}/s |`,
    "| --- | --- | --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}
