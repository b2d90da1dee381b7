// The ViT(-LLM) training run on Fashion-MNIST: data, model, compiled training step, evaluation,
// progress, metrics, chart and checkpoints. examples/train_vit.ts is its command line; the ablation
// and the tests call it directly.

import { Graph, type Node } from "../compiler/core/ir.ts";
import { crossEntropy } from "../compiler/ops/loss.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { getGpu } from "../compiler/runtime/device.ts";
import { buildVit, type VitConfig, vitNoDecay } from "../models/vit.ts";
import { parseLayerSelection } from "../io/config.ts";
import { Batcher, type BatcherState, loadFashionMnist } from "../data/fashion_mnist.ts";
import { Trainer } from "./trainer.ts";
import { Metrics } from "./progress.ts";
import { initFromSafetensors, loadCheckpoint, saveCheckpoint } from "../io/checkpoint.ts";
import { closeRunLlm, countCorrect, DEFAULT_LLM, openRunLlm, trainLoop, writeRunChart } from "./loop.ts";

/** Models for 28×28×1 images, and timm's presets (224×224×3, patch 16). */
export const MODELS: Record<string, VitConfig> = {
  fmnist: { img: 28, patch: 7, chans: 1, dim: 32, depth: 2, heads: 2, classes: 10 },
  "tiny-28": { img: 28, patch: 7, chans: 1, dim: 192, depth: 12, heads: 3, classes: 10 },
  tiny: { img: 224, patch: 16, chans: 3, dim: 192, depth: 12, heads: 3, classes: 1000 },
  small: { img: 224, patch: 16, chans: 3, dim: 384, depth: 12, heads: 6, classes: 1000 },
  base: { img: 224, patch: 16, chans: 3, dim: 768, depth: 12, heads: 12, classes: 1000 },
};

export { DEFAULT_LLM };

export interface RunOptions {
  model: VitConfig;
  modelName: string;
  /** "none", "random" (a frozen layer of the default LLM's shape with random weights), or a checkpoint dir. */
  llm: string;
  llmLayers: string;
  epochs: number;
  /** Stop after this many steps (0: run all epochs). */
  steps: number;
  batch: number;
  lr: number;
  warmup: number;
  weightDecay: number;
  labelSmoothing: number;
  clip: number;
  data: string;
  out: string;
  resume?: string;
  /** Initial weights from a safetensors file with timm names (e.g. a timm/DeiT ViT). */
  init?: string;
  seed: number;
  logEvery: number;
  evalBatch: number;
  /** Train on at most this many images (0: all). */
  trainLimit?: number;
  /** Evaluate on at most this many test images (0: all). */
  evalLimit?: number;
  /** Stop (and checkpoint) after this step, without changing the schedule (to test resuming). */
  stopAfter?: number;
  gpuMemoryBudget?: number;
  quiet?: boolean;
}

export interface RunSummary {
  testAccuracy: number;
  seconds: number;
  steps: number;
  adapter: string;
  llm: string;
  losses: { step: number; loss: number }[];
}

export async function runVit(opts: RunOptions): Promise<RunSummary> {
  const gpu = await getGpu({ quiet: opts.quiet });
  const cfg = opts.model;
  const train = await loadFashionMnist(opts.data, "train");
  const fullTest = await loadFashionMnist(opts.data, "test");
  const tn = opts.evalLimit ? Math.min(opts.evalLimit, fullTest.n) : fullTest.n;
  const thw = fullTest.rows * fullTest.cols;
  const test = {
    ...fullTest,
    n: tn,
    images: fullTest.images.subarray(0, tn * thw),
    labels: fullTest.labels.subarray(0, tn),
  };
  if (train.rows !== cfg.img || train.cols !== cfg.img || cfg.chans !== 1) {
    throw new Error(
      `data: ${opts.data} has ${train.rows}×${train.cols}×1 images, but model '${opts.modelName}' expects ` +
        `${cfg.img}×${cfg.img}×${cfg.chans} (use --model fmnist or tiny-28 for Fashion-MNIST)`,
    );
  }
  if (cfg.classes !== 10) {
    throw new Error(`data: Fashion-MNIST has 10 classes, model '${opts.modelName}' has ${cfg.classes}`);
  }
  const runLlm = await openRunLlm(opts.llm, opts.seed);
  const { ck, what: llmWhat } = runLlm;
  const layers = ck ? parseLayerSelection(opts.llmLayers, ck.cfg.layers) : [];

  // training step
  const g = new Graph();
  const m = await buildVit(g, cfg, opts.batch, { llm: ck ? { ck, layers } : undefined, seed: opts.seed });
  const labels = g.input("labels", [opts.batch], "i32");
  const loss = crossEntropy(m.logits, labels, { labelSmoothing: opts.labelSmoothing });
  const trainer = await Trainer.create(loss, {
    lr: opts.lr,
    weightDecay: opts.weightDecay,
    maxGradNorm: opts.clip > 0 ? opts.clip : undefined,
    noDecay: vitNoDecay,
    weights: m.llm?.loader,
    gpuMemoryBudget: opts.gpuMemoryBudget,
  });
  const params = [...trainer.grads.keys()];
  // evaluation: a forward-only plan of the same model; weights copied by name before each eval
  const ge = new Graph();
  const me = await buildVit(ge, cfg, opts.evalBatch, {
    llm: ck ? { ck, layers } : undefined,
    seed: opts.seed,
  });
  const evalExe = await compile([me.logits], {
    weights: me.llm?.loader,
    gpuMemoryBudget: opts.gpuMemoryBudget,
  });

  const n = opts.trainLimit ? Math.min(opts.trainLimit, train.n) : train.n;
  const hw = train.rows * train.cols;
  const trainSet = {
    ...train,
    n,
    images: train.images.subarray(0, n * hw),
    labels: train.labels.subarray(0, n),
  };
  const batcher = new Batcher(trainSet, { batchSize: opts.batch, seed: opts.seed, augment: true });
  const testBatcher = new Batcher(test, { batchSize: opts.evalBatch, seed: 0, augment: false });
  const perEpoch = Math.floor(n / opts.batch);
  const total = opts.steps > 0 ? opts.steps : opts.epochs * perEpoch;
  let step = 0;
  if (opts.init && !opts.resume) {
    const r = await initFromSafetensors(opts.init, trainer.exe, params);
    if (!opts.quiet) {
      console.error(
        `init: ${r.loaded.length} tensors from ${opts.init}; ${r.skipped.length} skipped (${
          r.skipped.slice(0, 4).join(", ")
        }` +
          `${r.skipped.length > 4 ? ", …" : ""}); ${r.kept.length} params keep their init`,
      );
    }
  }
  if (opts.resume) {
    const st = await loadCheckpoint(opts.resume, trainer.exe, params, trainer.opt);
    step = st.step;
    batcher.restore(st.batcher as BatcherState);
    if (!opts.quiet) console.error(`resumed from ${opts.resume} at step ${step}`);
  }
  await Deno.mkdir(opts.out, { recursive: true });
  const metrics = new Metrics(`${opts.out}/metrics.jsonl`, step > 0);
  if (!opts.quiet) {
    const frozen = g.params.filter((p) => !p.trainable).reduce((s, p) => s + p.size, 0);
    console.error(
      `model ${opts.modelName}: ${trainer.paramCount} trainable params, ${frozen} frozen; frozen LLM: ${llmWhat}` +
        (ck ? ` layers ${layers}` : "") +
        `; ${trainer.exe.kernelCount} kernels/step, peak ${
          (trainer.exe.plan.peakBytes / 2 ** 20).toFixed(1)
        } MiB` +
        (trainer.exe.streaming ? " (streaming frozen weights)" : ""),
    );
  }
  const evaluate = async (): Promise<number> => {
    for (const p of ge.params) if (p.trainable) evalExe.write(p, await trainer.exe.read(g.byName(p.name!)));
    let correct = 0;
    for (const b of testBatcher.evalBatches()) {
      evalExe.write(me.images, b.images);
      const [lg] = await evalExe.run([me.logits]);
      correct += countCorrect(lg, cfg.classes, b.labels, b.valid);
    }
    return correct / test.n;
  };
  const r = await trainLoop({
    trainer,
    total,
    end: Math.min(total, opts.stopAfter ?? total),
    perEpoch,
    start: step,
    lr: opts.lr,
    warmup: opts.warmup,
    batch: opts.batch,
    logEvery: opts.logEvery,
    unit: "img",
    quiet: opts.quiet,
    metrics,
    feeds: () => {
      const b = batcher.next();
      return new Map<Node, Float32Array | Int32Array>([[m.images, b.images], [labels, b.labels]]);
    },
    evaluate,
    checkpoint: (step) =>
      saveCheckpoint(`${opts.out}/checkpoint`, trainer.exe, params, trainer.opt, {
        step,
        batcher: batcher.state(),
        seed: opts.seed,
        model: opts.modelName,
        llm: opts.llm,
        llmLayers: opts.llmLayers,
      }),
  });
  const acc = r.accs.at(-1)?.[1] ?? await evaluate();
  metrics.log({
    final: true,
    test_accuracy: acc,
    seconds: r.seconds,
    steps: r.step,
    adapter: gpu.adapterName,
    llm: llmWhat,
  });
  metrics.close();
  await writeRunChart(opts.out, `ViT ${opts.modelName} on Fashion-MNIST, frozen LLM: ${opts.llm}`, r);
  trainer.exe.destroy();
  evalExe.destroy();
  await closeRunLlm(runLlm);
  return {
    testAccuracy: acc,
    seconds: r.seconds,
    steps: r.step,
    adapter: gpu.adapterName,
    llm: llmWhat,
    losses: r.losses,
  };
}
