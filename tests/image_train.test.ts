// Evidence that the real-image pipeline feeds training exactly as the IDX path does: Fashion-MNIST
// exported as an ImageFolder of PNGs (data/export_fmnist_png.ts) gives the image task the same batches,
// pixel for pixel and label for label, as the IDX files (same seed, augmentation off), so the same
// training steps and losses follow. The IDX split is sorted by label first, because an ImageFolder lists
// class by class; within a class the exporter keeps the IDX order.

import { assert, test } from "./testing.ts";
import { join } from "node:path";
import { Batcher } from "../data/batcher.ts";
import { encodeIdxGz, loadFashionMnist } from "../data/fashion_mnist.ts";
import { exportFashionMnistPng } from "../data/export_fmnist_png.ts";
import { ImagePipeline } from "../data/image/pipeline.ts";
import { VIT_PRESETS } from "../models/presets.ts";
import { imageTask, type TaskConfig } from "../train/tasks.ts";
import { runTraining } from "../train/run.ts";
import { evaluateCheckpoint } from "../train/evaluate.ts";
import { predictImages } from "../train/predict.ts";
import { tinyRun } from "./fuzz/kill_checkpoint.ts";

const SUBSET = new URL("../data/fashion-mnist-subset", import.meta.url).pathname;

/** The first n samples of a split of the bundled subset, stably sorted by label, as IDX files in dir. */
async function sortedIdx(dir: string, n: number, test: number): Promise<void> {
  for (const [split, count, prefix] of [["train", n, "train"], ["test", test, "t10k"]] as const) {
    const d = await loadFashionMnist(SUBSET, split);
    const order = [...Array(count).keys()].sort((a, b) => d.labels[a] - d.labels[b] || a - b);
    const img = new Uint8Array(count * 784);
    order.forEach((i, k) => img.set(d.images.subarray(i * 784, (i + 1) * 784), k * 784));
    await Deno.writeFile(join(dir, `${prefix}-images-idx3-ubyte.gz`), encodeIdxGz([count, 28, 28], img));
    const labels = Uint8Array.from(order, (i) => d.labels[i]);
    await Deno.writeFile(join(dir, `${prefix}-labels-idx1-ubyte.gz`), encodeIdxGz([count], labels));
  }
}

test("Fashion-MNIST as PNG ImageFolder: the same training batches as its IDX files", async () => {
  const root = await Deno.makeTempDir({ prefix: "fmnist-png-" });
  try {
    const idx = join(root, "idx"), png = join(root, "png");
    await Deno.mkdir(idx);
    await sortedIdx(idx, 60, 20);
    assert.deepEqual(await exportFashionMnistPng(idx, png), { train: 60, val: 20 });
    const base: TaskConfig = {
      model: VIT_PRESETS.fmnist,
      modelName: "fmnist",
      data: idx,
      seed: 0,
      labelSmoothing: 0.1,
      dropout: 0,
      augment: "none",
    };
    const fromIdx = await imageTask.samples(base, "train", 0);
    assert.ok(!(fromIdx instanceof ImagePipeline), "IDX with a 28×28×1 model takes the original path");
    // the folder: no resize (crop_pct 1), Fashion-MNIST's normalization, 1 channel
    const folder = { ...base, data: png, cropPct: 1, mean: "0.2860", std: "0.3530", workers: 1 };
    const fromPng = await imageTask.samples(folder, "train", 0);
    assert.ok(fromPng instanceof ImagePipeline);
    const bi = new Batcher(fromIdx, { batchSize: 16, seed: 5, augment: true });
    const bp = new Batcher(fromPng, { batchSize: 16, seed: 5, augment: true });
    const loader = (fromPng as ImagePipeline).loader(bp);
    let ulps = 0;
    for (let k = 0; k < 6; k++) { // two epochs
      const a = bi.next(), b = await loader.next();
      assert.deepEqual(Array.from(b.labels), Array.from(a.labels), `batch ${k} labels`);
      assert.equal(b.x.length, a.x.length);
      for (let i = 0; i < a.x.length; i++) {
        // same pixels; the normalization rounds like torch (float32 steps), the IDX path in float64: ≤ 2 ulps
        if (a.x[i] !== b.x[i]) {
          ulps++;
          assert.ok(Math.abs(a.x[i] - b.x[i]) <= 3e-7, `batch ${k}[${i}]: ${a.x[i]} vs ${b.x[i]}`);
        }
      }
    }
    (fromPng as ImagePipeline).close();
    // the test split too
    const ti = await imageTask.samples(base, "test", 0), tp = await imageTask.samples(folder, "test", 0);
    assert.deepEqual(Array.from(tp.labels), Array.from(ti.labels));
    // (a pixel one level off would differ by 1/255/0.353 ≈ 0.011; only rounding differences remain)
    assert.ok(ulps <= 6 * 16 * 784);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

test("predict: per-image top-k agrees with eval on the same checkpoint; probabilities are a softmax; a bad file is named", async () => {
  const root = await Deno.makeTempDir({ prefix: "fmnist-predict-" });
  try {
    const idx = join(root, "idx"), png = join(root, "png"), out = join(root, "run");
    await Deno.mkdir(idx);
    await sortedIdx(idx, 60, 20);
    await exportFashionMnistPng(idx, png);
    await runTraining({
      ...tinyRun(out),
      model: VIT_PRESETS.fmnist,
      modelName: "fmnist",
      data: png,
      cropPct: 1,
      mean: "0.2860",
      std: "0.3530",
      workers: 1,
      augment: "none",
      epochs: 1,
      trainLimit: 0,
      evalLimit: 20,
    });
    const ev = await evaluateCheckpoint({ checkpoint: out, split: "test" });
    assert.equal(ev.n, 20);
    // the val files in dataset order (class folders sorted, files sorted), and one corrupt file
    const files: string[] = [], labels: number[] = [];
    const classes = [...Deno.readDirSync(join(png, "val"))].map((e) => e.name).sort();
    for (const [k, c] of classes.entries()) {
      for (const f of [...Deno.readDirSync(join(png, "val", c))].map((e) => e.name).sort()) {
        files.push(join(png, "val", c, f)), labels.push(k);
      }
    }
    const bad = join(root, "bad.png");
    await Deno.writeFile(bad, new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 1, 2]));
    const preds = await predictImages(out, [...files, bad], { k: 10 });
    assert.equal(preds.length, 21);
    assert.ok(preds[20].error?.includes(bad) && preds[20].top.length === 0, JSON.stringify(preds[20]));
    let right = 0;
    for (const [i, p] of preds.slice(0, 20).entries()) {
      assert.equal(p.error, undefined);
      assert.deepEqual(p.top.map((t) => t.label).sort((a, b) => a - b), [...Array(10).keys()], "all classes");
      const probs = p.top.map((t) => t.prob);
      assert.ok(probs.every((q, j) => q > 0 && (j === 0 || q <= probs[j - 1])), "sorted probabilities");
      assert.ok(Math.abs(probs.reduce((a, b) => a + b, 0) - 1) < 1e-6, "a softmax sums to 1");
      assert.equal(p.top[0].name, classes[p.top[0].label], "class names are the folders");
      if (p.top[0].label === labels[i]) right++;
    }
    // the same model and eval transform: predict's top-1 hits are eval's top-1 accuracy
    assert.equal(right / 20, ev.top1);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
