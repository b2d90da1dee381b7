// The one training runner: a task description (train/tasks.ts) and a run configuration drive data,
// model, the compiled training step, evaluation, JSONL metrics, the chart and checkpoints. The CLIs
// (train/commands.ts) and the ablation call it; so do the tests. It prints nothing unless asked
// (`log`, `progress`).

export type { RunConfig, RunOptions, RunSummary } from "./config.ts";

import { Graph, type Node } from "../compiler/core/ir.ts";
import { Rng } from "../compiler/core/random.ts";
import { scaledLr } from "../nn/schedule.ts";
import { ModelEma } from "../nn/ema.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { getGpu } from "../compiler/runtime/device.ts";
import type { HostArray } from "../compiler/runtime/executable.ts";
import { parseLayerSelection } from "../io/config.ts";
import {
  type CheckpointState,
  findCheckpoint,
  initFromSafetensors,
  loadCheckpoint,
  NonFiniteError,
  saveCheckpoint,
} from "../io/checkpoint.ts";
import { CheckpointError } from "../io/weights.ts";
import { type Batch, Batcher, type BatcherState } from "../data/batcher.ts";
import { ImagePipeline, type PrefetchLoader } from "../data/image/pipeline.ts";
import { DivergedError, Trainer } from "./trainer.ts";
import { Metrics, resumeMetrics } from "./progress.ts";
import { closeRunLlm, openRunLlm, runObjective, trainLoop, writeRunChart } from "./loop.ts";
import {
  IMAGE_SETTING_KEYS,
  MIX_SETTING_KEYS,
  POINT_SETTING_KEYS,
  type TaskModel,
  TASKS,
  VIDEO_SETTING_KEYS,
} from "./tasks.ts";
import { AccuracyCounter } from "./scores.ts";
import type { RunConfig, RunOptions, RunSummary } from "./config.ts";
import { checkRunOptions, conflictingOption, FlagError } from "./flags.ts";

/** The configuration part of options (what state.json stores). */
export function runConfigOf(o: RunConfig): RunConfig {
  const c: RunConfig = {
    task: o.task,
    model: o.model,
    modelName: o.modelName,
    llm: o.llm,
    llmLayers: o.llmLayers,
    epochs: o.epochs,
    steps: o.steps,
    batch: o.batch,
    lr: o.lr,
    warmup: o.warmup,
    weightDecay: o.weightDecay,
    labelSmoothing: o.labelSmoothing,
    dropout: o.dropout,
    clip: o.clip,
    seed: o.seed,
    data: o.data,
    trainLimit: o.trainLimit,
    evalLimit: o.evalLimit,
    evalBatch: o.evalBatch,
  };
  if (o.init) c.init = o.init;
  if (o.arm !== undefined) c.arm = o.arm;
  if (o.llmPosition !== undefined) c.llmPosition = o.llmPosition;
  if (o.llmLrScale !== undefined) c.llmLrScale = o.llmLrScale;
  for (
    const k of [...VIDEO_SETTING_KEYS, ...POINT_SETTING_KEYS, ...IMAGE_SETTING_KEYS, ...MIX_SETTING_KEYS]
  ) {
    if (o[k] !== undefined) (c as unknown as Record<string, unknown>)[k] = o[k];
  }
  return c;
}

/** Runs (or resumes) a training run; returns its summary. */
export async function runTraining(opts: RunOptions): Promise<RunSummary> {
  checkRunOptions(opts);
  const log = opts.log ?? (() => {});
  const task = TASKS[opts.task];
  const gpu = await getGpu({ quiet: true });
  const trainSet = await task.samples(opts, "train", opts.trainLimit);
  const testSet = await task.samples(opts, "test", opts.evalLimit);
  const where = opts.resume ? await findCheckpoint(opts.resume) : undefined;
  // the stored settings are checked before anything is built: a refusal costs no compilation
  if (where) checkStoredSettings(`${where.checkpoint}/state.json`, where.state, opts);
  const runLlm = await openRunLlm(opts.llm);
  try {
    const { ck, what: llmWhat } = runLlm;
    const llm = ck ? { ck, layers: parseLayerSelection(opts.llmLayers, ck.cfg.layers) } : undefined;
    const budget = opts.gpuMemory || undefined;

    // the training step; --lr-base: DeiT's lr = lr_base · batch / 512 in place of --lr
    const lr = opts.lrBase ? scaledLr(opts.lrBase, opts.batch) : opts.lr;
    const g = new Graph();
    const m = await task.build(g, opts, opts.batch, true, llm);
    let ema: ModelEma | undefined;
    // hard labels, or Mixup/CutMix soft targets (evaluation keeps the hard labels)
    const { loss, labels, targets, mixer } = runObjective(
      g,
      m,
      opts,
      task.classes(opts),
      (logits, y) => task.loss(logits, y, opts),
    );
    const trainer = await Trainer.create(loss, {
      lr,
      weightDecay: opts.weightDecay,
      maxGradNorm: opts.clip > 0 ? opts.clip : undefined,
      noDecay: task.noDecayOf?.(opts) ?? task.noDecay,
      paramGroup: task.paramGroup?.(opts),
      weights: m.llm?.loader,
      gpuMemoryBudget: budget,
      effectsBefore: m.effects,
      // model EMA: its updates average the weights the optimizer has just written
      effectsAfter: opts.modelEmaDecay
        ? (tg) => (ema = new ModelEma(tg, { decay: opts.modelEmaDecay })).effects
        : undefined,
    });
    // evaluation: a forward-only plan of the same model in eval mode; weights copied by name
    const ge = new Graph();
    const me = await task.build(ge, opts, opts.evalBatch, false, llm);
    const evalExe = await compile([me.logits], { weights: me.llm?.loader, gpuMemoryBudget: budget });
    const saved = [...trainer.grads.keys(), ...m.buffers];
    // the EMA weights (ema.<name>) go into checkpoint-ema/ beside checkpoint/, so a resumed run continues
    // the same average and checkpoint/ stays what eval and predict load
    const shadows = ema ? [...ema.shadows.values()] : [];

    const batcher = new Batcher(trainSet, {
      batchSize: opts.batch,
      seed: opts.seed,
      augment: true,
      name: `the train split of ${opts.data}`,
    });
    const testBatcher = new Batcher(testSet, {
      batchSize: opts.evalBatch,
      seed: 0,
      augment: false,
      dropLast: false,
      name: `the test split of ${opts.data}`,
    });
    const perEpoch = batcher.batchesPerEpoch;
    const total = opts.steps > 0 ? opts.steps : opts.epochs * perEpoch;
    const dropoutRng = new Rng(opts.seed * 31 + 5);
    let step = 0;
    if (opts.init && !where) {
      const r = await (task.initFrom ?? initFromSafetensors)(opts.init, trainer.exe, saved);
      const skipped = r.skipped.slice(0, 4).join(", ") + (r.skipped.length > 4 ? ", …" : "");
      await ema?.reset(trainer.exe); // timm: the EMA starts as a copy of the initial weights
      log(
        `init: ${r.loaded.length} tensors from ${opts.init}; ${r.skipped.length} skipped` +
          (r.skipped.length ? ` (${skipped})` : "") + `; ${r.kept.length} keep their init`,
      );
    }
    let lastGood: string | undefined;
    if (where) {
      const st = await loadCheckpoint(where.checkpoint, trainer.exe, saved, trainer.opt);
      if (shadows.length) {
        const emaDir = `${where.runDir}/checkpoint-ema`;
        const es = await loadCheckpoint(emaDir, trainer.exe, shadows, undefined);
        if (es.step !== st.step) {
          throw new CheckpointError(
            `${emaDir}/state.json`,
            `field 'step' is ${es.step}, not ${st.step} as checkpoint/`,
          );
        }
      }
      if (st.step > total) {
        throw new CheckpointError(
          `${where.checkpoint}/state.json`,
          `field 'step' is ${st.step}, beyond the run's ${total} steps`,
        );
      }
      step = st.step;
      try {
        batcher.restore(st.batcher as BatcherState);
      } catch (e) {
        throw new CheckpointError(
          `${where.checkpoint}/state.json`,
          `field 'batcher': ${(e as Error).message}`,
        );
      }
      if (typeof st.dropoutRng === "number") dropoutRng.state = st.dropoutRng;
      if (mixer && typeof st.mixupRng === "number") mixer.mixup.state = st.mixupRng;
      lastGood = `step ${step} in ${where.checkpoint}`;
      const skipped = where.skipped.length ? ` (passed over: ${where.skipped.join("; ")})` : "";
      log(`resumed from ${where.checkpoint} at step ${step}${skipped}`);
    }
    await Deno.mkdir(opts.out, { recursive: true });
    const metricsPath = `${opts.out}/metrics.jsonl`;
    if (where) await resumeMetrics(`${where.runDir}/metrics.jsonl`, metricsPath, step);
    const metrics = new Metrics(metricsPath, where !== undefined);
    const frozen = g.params.filter((p) => !p.trainable).reduce((s, p) => s + p.size, 0);
    log(
      `${
        task.describe(opts)
      }: ${trainer.paramCount} trainable params, ${frozen} frozen; frozen LLM: ${llmWhat}` +
        (llm ? ` layers ${llm.layers}` : "") +
        `; ${trainer.exe.kernelCount} kernels/step, peak ${
          (trainer.exe.plan.peakBytes / 2 ** 20).toFixed(1)
        } MiB` +
        (trainer.exe.streaming ? " (streaming frozen weights)" : ""),
    );

    const copyWeights = async (from: Graph, into: Graph, model: TaskModel) => {
      const nodes = [...into.params.filter((p) => p.trainable), ...model.buffers];
      const values = await Promise.all(nodes.map((n) => trainer.exe.read(from.byName(n.name!))));
      nodes.forEach((n, k) => evalExe.write(n, values[k]));
    };
    const evaluate = async (): Promise<number> => {
      await copyWeights(g, ge, me);
      // per video when the test samples are several views of each (multi-clip × multi-crop)
      const acc = new AccuracyCounter(testSet, task.classes(opts));
      // image datasets decode in the pipeline's workers, a few batches ahead
      const batches = testSet instanceof ImagePipeline
        ? testSet.evalBatches(testBatcher)
        : testBatcher.evalBatches();
      for await (const b of batches) {
        evalExe.write(me.input, b.x);
        const [lg] = await evalExe.run([me.logits]);
        acc.add(lg, b.labels, b.valid);
      }
      return acc.accuracies()[0];
    };
    // the EMA model: its weights swapped into the training step's, copied over, evaluated, swapped back
    const evaluateEma = ema && (async (): Promise<number> => {
      await ema!.swap(trainer.exe);
      try {
        return await evaluate();
      } finally {
        await ema!.swap(trainer.exe);
      }
    });
    let checkpoint: string | undefined;
    let loader: PrefetchLoader | undefined; // made at the first step, after a resumed batcher's restore
    let prevBatch: Batch | undefined;
    const r = await trainLoop({
      trainer,
      total,
      end: Math.min(total, opts.stopAfter ?? total),
      perEpoch,
      start: step,
      lr,
      warmup: opts.warmup,
      lrAt: task.lrSchedule?.(opts, { lr, warmup: opts.warmup, total, perEpoch }),
      batch: opts.batch,
      logEvery: opts.logEvery,
      unit: task.unit,
      progress: opts.progress,
      log,
      metrics,
      feeds: async () => {
        // the previous batch was uploaded by its step (writeBuffer copies at the call): its array takes
        // the next prefetched batch instead of a fresh 38 MB allocation per 224² batch
        if (prevBatch) loader!.release(prevBatch);
        const b = trainSet instanceof ImagePipeline
          ? prevBatch = await (loader ??= trainSet.loader(batcher)).next()
          : batcher.next();
        const feeds = new Map<Node, HostArray>([[m.input, b.x]]);
        if (mixer && targets) feeds.set(targets, mixer.mix(b.x, b.labels));
        else feeds.set(labels!, b.labels);
        if (m.dropoutSeed) feeds.set(m.dropoutSeed, Uint32Array.of(dropoutRng.int(2 ** 32)));
        return feeds;
      },
      evaluate,
      evaluateEma,
      checkpoint: async (step) => {
        // never checkpoint a diverged state: the GPU flag names the first bad step, and the writer
        // itself refuses non-finite values (weights can overflow in the last update)
        await trainer.assertFinite();
        const dir = `${opts.out}/checkpoint`;
        try {
          // the EMA first: a checkpoint/ newer than checkpoint-ema/ never exists
          if (shadows.length) {
            await saveCheckpoint(`${opts.out}/checkpoint-ema`, trainer.exe, shadows, undefined, { step });
          }
          await saveCheckpoint(dir, trainer.exe, saved, trainer.opt, {
            step,
            batcher: loader ? loader.state() : batcher.state(),
            dropoutRng: dropoutRng.state,
            ...(mixer ? { mixupRng: mixer.mixup.state } : {}),
            run: runConfigOf(opts),
          });
        } catch (e) {
          if (e instanceof NonFiniteError) {
            throw new DivergedError(step, `non-finite weights ('${e.tensor}')`);
          }
          throw e;
        }
        checkpoint = dir;
        lastGood = `step ${step} in ${dir}`;
      },
    }).catch((e) => {
      if (!(e instanceof DivergedError)) throw e;
      const kept = lastGood ? `the last good checkpoint (${lastGood}) is kept` : "no checkpoint was written";
      throw new DivergedError(e.step, e.detail, kept);
    });
    const acc = r.accs.at(-1)?.[1] ?? await evaluate();
    const emaAcc = evaluateEma ? r.emaAccs.at(-1)?.[1] ?? await evaluateEma() : undefined;
    metrics.log({
      final: true,
      step: r.step,
      test_accuracy: acc,
      ...(emaAcc !== undefined ? { test_accuracy_ema: emaAcc } : {}),
      seconds: r.seconds,
      steps: r.step,
      adapter: gpu.adapterName,
      llm: llmWhat,
    });
    metrics.close();
    const runName = opts.out.replace(/\/+$/, "").split("/").pop() || opts.out;
    await writeRunChart(
      opts.out,
      `${runName}: ${task.describe(opts)}, frozen LLM: ${llmLabel(opts.llm, llm?.layers)}`,
      metricsPath,
    );
    trainer.exe.destroy();
    evalExe.destroy();
    return {
      testAccuracy: acc,
      ...(emaAcc !== undefined ? { emaTestAccuracy: emaAcc } : {}),
      seconds: r.seconds,
      steps: r.step,
      adapter: gpu.adapterName,
      llm: llmWhat,
      losses: r.losses,
      checkpoint,
    };
  } finally {
    for (const s of [trainSet, testSet]) {
      if (!(s instanceof ImagePipeline)) continue;
      s.close();
      if (s.skipped.size) log(`skipped ${s.skipped.size} corrupt image(s) (--skip-bad)`);
    }
    closeRunLlm(runLlm);
  }
}

/**
 * Checks a resumed checkpoint's state against this run (the step's range is checked once the run's
 * length is known): the optimizer's step count equal to the step, the data position present, the
 * stored settings valid and the same as this run's. Errors name the file and the field.
 */
function checkStoredSettings(file: string, st: CheckpointState, opts: RunOptions): void {
  if (st.optimizerStep !== undefined && st.optimizerStep !== st.step) {
    throw new CheckpointError(
      file,
      `field 'optimizerStep' is ${st.optimizerStep}, but 'step' is ${st.step} (one optimizer step per step)`,
    );
  }
  if (typeof st.batcher !== "object" || st.batcher === null) {
    throw new CheckpointError(file, "field 'batcher' (the data order's position) is missing");
  }
  const stored = st.run as RunConfig | undefined;
  if (!stored) return;
  try {
    checkRunOptions({ ...opts, ...stored, out: opts.out });
  } catch (e) {
    throw new CheckpointError(file, `field 'run' holds a bad setting: ${(e as Error).message}`);
  }
  const conflict = conflictingOption(opts, stored);
  if (conflict) throw new FlagError(`${conflict} (resuming ${file}, field 'run')`);
}

/** A short name of the frozen LLM for titles: none, random, llama-tiny, or the checkpoint's folder name. */
function llmLabel(llm: string, layers?: number[]): string {
  if (llm === "none") return "none";
  const name = llm === "random"
    ? "llama-tiny"
    : llm === "default"
    ? "lm-default"
    : llm.replace(/\/+$/, "").split("/").pop();
  return layers ? `${name} (layers ${layers})` : `${name}`;
}
