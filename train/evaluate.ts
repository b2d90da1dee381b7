// Accuracy of a saved run on a split: the model is rebuilt from the run configuration stored in the
// checkpoint's state.json, its weights (and BatchNorm statistics) loaded by name, and every sample of
// the split evaluated once (top-1, and top-5 when there are at least 5 classes).

import { Graph } from "../compiler/core/ir.ts";
import { compile, type Executable } from "../compiler/runtime/executable.ts";
import { getGpu } from "../compiler/runtime/device.ts";
import { parseLayerSelection } from "../io/config.ts";
import { findCheckpoint, loadCheckpoint, readCheckpointState } from "../io/checkpoint.ts";
import { CheckpointError } from "../io/weights.ts";
import { Batcher } from "../data/batcher.ts";
import type { Split } from "../data/fashion_mnist.ts";
import { closeRunLlm, openRunLlm } from "./loop.ts";
import { AccuracyCounter } from "./scores.ts";
import type { RunConfig } from "./config.ts";
import { type TaskModel, TASKS } from "./tasks.ts";

/** What to evaluate. */
export interface EvalOptions {
  /** A run directory (or its checkpoint/). */
  checkpoint: string;
  /** Dataset directory (default: the run's). */
  data?: string;
  /** The split (default "test"). */
  split?: Split;
  /** Evaluate the first N samples only (default 0: all). */
  limit?: number;
  /** Batch size (default: the run's evaluation batch). */
  batch?: number;
  /** GPU memory budget in bytes for frozen LLM weights (0 or absent: unlimited). */
  gpuMemory?: number;
}

/** Accuracy of a checkpoint on a split. */
export interface EvalResult {
  /** Top-1 accuracy. */
  top1: number;
  /** Top-5 accuracy (when the task has at least 5 classes). */
  top5?: number;
  /** Samples evaluated (videos, when each has several test views). */
  n: number;
  /** The split. */
  split: Split;
  /** The step the checkpoint was saved at. */
  step: number;
  /** The checkpoint directory read. */
  checkpoint: string;
  /** The run configuration it was trained with. */
  run: RunConfig;
}

/** Evaluates a saved run on a split. */
export async function evaluateCheckpoint(opts: EvalOptions): Promise<EvalResult> {
  const split = opts.split ?? "test";
  if (split !== "test" && split !== "train") {
    throw new Error(`--split: expected test or train, got '${split}'`);
  }
  for (const [flag, v] of [["limit", opts.limit], ["batch", opts.batch]] as const) {
    if (v !== undefined && !(Number.isInteger(v) && v >= (flag === "batch" ? 1 : 0))) {
      throw new Error(`--${flag}: expected an integer ≥ ${flag === "batch" ? 1 : 0}, got ${v}`);
    }
  }
  const where = await findCheckpoint(opts.checkpoint);
  const st = await readCheckpointState(where.checkpoint);
  const stored = st.run as RunConfig | undefined;
  if (!stored?.task || !(stored.task in TASKS)) {
    throw new CheckpointError(
      `${where.checkpoint}/state.json`,
      "no run configuration (a checkpoint written before runs stored their settings)",
    );
  }
  const run: RunConfig = { ...stored, data: opts.data ?? stored.data };
  const task = TASKS[run.task];
  const batch = opts.batch ?? run.evalBatch;
  await getGpu({ quiet: true });
  const samples = await task.samples(run, split, opts.limit ?? 0);
  return await withSavedModel(run, batch, where.checkpoint, opts.gpuMemory, async (m, exe) => {
    const classes = task.classes(run);
    // per video when the samples are several views of each (multi-clip × multi-crop testing)
    const acc = new AccuracyCounter(samples, classes, classes >= 5 ? [1, 5] : [1]);
    for (
      const b of new Batcher(samples, { batchSize: batch, seed: 0, augment: false, dropLast: false })
        .evalBatches()
    ) {
      exe.write(m.input, b.x);
      const [lg] = await exe.run([m.logits]);
      acc.add(lg, b.labels, b.valid);
    }
    const [top1, top5] = acc.accuracies();
    return { top1, top5, n: acc.n, split, step: st.step, checkpoint: where.checkpoint, run };
  });
}

/**
 * Runs `use` on a saved run's model for inference: rebuilt from its stored settings for `batch`
 * samples (its frozen LLM opened as the run names it), compiled, its trainable weights and BatchNorm
 * statistics loaded from `checkpoint`; everything is closed afterwards.
 */
export async function withSavedModel<T>(
  run: RunConfig,
  batch: number,
  checkpoint: string,
  gpuMemory: number | undefined,
  use: (m: TaskModel, exe: Executable) => Promise<T>,
): Promise<T> {
  const runLlm = await openRunLlm(run.llm);
  try {
    const ck = runLlm.ck;
    const llm = ck ? { ck, layers: parseLayerSelection(run.llmLayers, ck.cfg.layers) } : undefined;
    const g = new Graph();
    const m = await TASKS[run.task].build(g, run, batch, false, llm);
    const exe = await compile([m.logits], {
      weights: m.llm?.loader,
      gpuMemoryBudget: gpuMemory || undefined,
    });
    try {
      await loadCheckpoint(
        checkpoint,
        exe,
        [...g.params.filter((p) => p.trainable), ...m.buffers],
        undefined,
      );
      return await use(m, exe);
    } finally {
      exe.destroy();
    }
  } finally {
    closeRunLlm(runLlm);
  }
}
