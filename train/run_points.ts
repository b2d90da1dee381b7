// Point-BERT(-LLM) training on point clouds made from Fashion-MNIST (a real 10-class point task):
// the same conveniences as the ViT run (progress, JSONL metrics, chart, atomic checkpoints, exact
// resume), plus BatchNorm running statistics (saved with the checkpoint) and a per-step dropout seed.

import { Graph, type Node } from "../compiler/core/ir.ts";
import { crossEntropy } from "../compiler/ops/loss.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { getGpu } from "../compiler/runtime/device.ts";
import { Rng } from "../compiler/core/random.ts";
import { buildPointBert, type PointBertConfig, pointNoDecay } from "../models/pointbert.ts";
import { parseLayerSelection } from "../io/config.ts";
import { loadFashionMnist } from "../data/fashion_mnist.ts";
import { fashionPointSource, PointBatcher, type PointBatcherState } from "../data/point_data.ts";
import { Trainer } from "./trainer.ts";
import { Metrics } from "./progress.ts";
import { initFromSafetensors, loadCheckpoint, saveCheckpoint } from "../io/checkpoint.ts";
import { closeRunLlm, countCorrect, openRunLlm, trainLoop, writeRunChart } from "./loop.ts";

export interface PointRunOptions {
  model: PointBertConfig;
  llm: string;
  llmLayers: string;
  epochs: number;
  steps: number;
  stopAfter?: number;
  batch: number;
  lr: number;
  warmup: number;
  weightDecay: number;
  labelSmoothing: number;
  dropout: number;
  clip: number;
  data: string;
  out: string;
  resume?: string;
  /** Initial weights and BatchNorm stats from a safetensors file with Point-BERT names. */
  init?: string;
  seed: number;
  logEvery: number;
  evalBatch: number;
  trainLimit?: number;
  evalLimit?: number;
  quiet?: boolean;
}

export interface PointRunSummary {
  testAccuracy: number;
  seconds: number;
  steps: number;
  adapter: string;
  llm: string;
  losses: { step: number; loss: number }[];
}

function limited<
  T extends { n: number; labels: Int32Array | Uint8Array; images: Uint8Array; rows: number; cols: number },
>(d: T, n?: number): T {
  if (!n || n >= d.n) return d;
  const hw = d.rows * d.cols;
  return { ...d, n, images: d.images.subarray(0, n * hw), labels: d.labels.subarray(0, n) };
}

export async function runPoints(opts: PointRunOptions): Promise<PointRunSummary> {
  const gpu = await getGpu({ quiet: opts.quiet });
  const cfg = opts.model;
  if (cfg.classes !== 10) {
    throw new Error(`data: Fashion-MNIST point clouds have 10 classes, the model has ${cfg.classes}`);
  }
  const train = fashionPointSource(
    limited(await loadFashionMnist(opts.data, "train"), opts.trainLimit),
    cfg.points,
    opts.seed,
  );
  const test = fashionPointSource(
    limited(await loadFashionMnist(opts.data, "test"), opts.evalLimit),
    cfg.points,
    12345,
  );
  const runLlm = await openRunLlm(opts.llm, opts.seed);
  const { ck, what } = runLlm;
  const layers = ck ? parseLayerSelection(opts.llmLayers, ck.cfg.layers) : [];

  const g = new Graph();
  const m = await buildPointBert(g, cfg, opts.batch, {
    training: true,
    dropout: opts.dropout,
    llm: ck ? { ck, layers } : undefined,
    seed: opts.seed,
  });
  const labels = g.input("labels", [opts.batch], "i32");
  const loss = crossEntropy(m.logits, labels, { labelSmoothing: opts.labelSmoothing, smoothing: "others" });
  const trainer = await Trainer.create(loss, {
    lr: opts.lr,
    weightDecay: opts.weightDecay,
    maxGradNorm: opts.clip > 0 ? opts.clip : undefined,
    noDecay: pointNoDecay,
    weights: m.llm?.loader,
    effectsBefore: m.bnUpdates,
  });
  const params = [...trainer.grads.keys()];
  // evaluation: BatchNorm in eval mode (running stats), no dropout; weights and stats copied by name
  const ge = new Graph();
  const me = await buildPointBert(ge, cfg, opts.evalBatch, {
    training: false,
    llm: ck ? { ck, layers } : undefined,
    seed: opts.seed,
  });
  const evalExe = await compile([me.logits], { weights: me.llm?.loader });

  const batcher = new PointBatcher(train, { batchSize: opts.batch, seed: opts.seed, augment: true });
  const testBatcher = new PointBatcher(test, { batchSize: opts.evalBatch, seed: 0, augment: false });
  const perEpoch = batcher.batchesPerEpoch;
  const total = opts.steps > 0 ? opts.steps : opts.epochs * perEpoch;
  const seedRng = new Rng(opts.seed * 31 + 5);
  let step = 0;
  const saved = [...params, ...m.buffers];
  if (opts.init && !opts.resume) {
    const r = await initFromSafetensors(opts.init, trainer.exe, saved);
    if (!opts.quiet) {
      console.error(
        `init: ${r.loaded.length} tensors from ${opts.init}; ${r.skipped.length} skipped; ${r.kept.length} keep their init`,
      );
    }
  }
  if (opts.resume) {
    const st = await loadCheckpoint(opts.resume, trainer.exe, saved, trainer.opt);
    step = st.step;
    batcher.restore(st.batcher as PointBatcherState);
    seedRng.state = st.dropoutRng as number;
  }
  await Deno.mkdir(opts.out, { recursive: true });
  const metrics = new Metrics(`${opts.out}/metrics.jsonl`, step > 0);
  if (!opts.quiet) {
    console.error(
      `point model: ${trainer.paramCount} trainable params; frozen LLM: ${what}${
        ck ? ` layers ${layers}` : ""
      }; ` +
        `${trainer.exe.kernelCount} kernels/step, peak ${
          (trainer.exe.plan.peakBytes / 2 ** 20).toFixed(1)
        } MiB`,
    );
  }
  const evaluate = async () => {
    for (const p of ge.params) if (p.trainable) evalExe.write(p, await trainer.exe.read(g.byName(p.name!)));
    for (const b of me.buffers) evalExe.write(b, await trainer.exe.read(g.byName(b.name!)));
    let correct = 0;
    for (const b of testBatcher.evalBatches()) {
      evalExe.write(me.points, b.points);
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
    unit: "cloud",
    quiet: opts.quiet,
    metrics,
    feeds: () => {
      const b = batcher.next();
      const feeds = new Map<Node, Float32Array | Int32Array | Uint32Array>([[m.points, b.points], [
        labels,
        b.labels,
      ]]);
      if (m.dropoutSeed) feeds.set(m.dropoutSeed, Uint32Array.of(seedRng.int(2 ** 32)));
      return feeds;
    },
    evaluate,
    checkpoint: (step) =>
      saveCheckpoint(`${opts.out}/checkpoint`, trainer.exe, saved, trainer.opt, {
        step,
        batcher: batcher.state(),
        dropoutRng: seedRng.state,
        seed: opts.seed,
        llm: opts.llm,
      }),
  });
  const acc = r.accs.at(-1)?.[1] ?? await evaluate();
  metrics.log({
    final: true,
    test_accuracy: acc,
    seconds: r.seconds,
    steps: r.step,
    adapter: gpu.adapterName,
    llm: what,
  });
  metrics.close();
  await writeRunChart(opts.out, `Point-BERT on Fashion-MNIST point clouds, frozen LLM: ${opts.llm}`, r);
  trainer.exe.destroy();
  evalExe.destroy();
  await closeRunLlm(runLlm);
  return {
    testAccuracy: acc,
    seconds: r.seconds,
    steps: r.step,
    adapter: gpu.adapterName,
    llm: what,
    losses: r.losses,
  };
}
