// The ViT(-LLM) training run through the one runner: resuming from the run directory continues exactly
// like an uninterrupted run (metrics merged into one file and one chart, one final record), the eval
// command reports the checkpoint's accuracy, and bad inputs (missing data, wrong image size for the
// model, a checkpoint of another model, a resumed run with other settings) give one clear error. The
// model's numerics are proven by tests/parity.test.ts against PyTorch.

import "../mod.ts";
import { type RunOptions, runTraining } from "../train/run.ts";
import { evaluateCheckpoint } from "../train/evaluate.ts";
import { VIT_PRESETS } from "../models/presets.ts";
import { DEFAULT_DATA_DIR } from "../data/fashion_mnist.ts";
import { assert, assertRejectsMsg, test } from "./testing.ts";
import { openSafetensors, writeSafetensors } from "../io/safetensors.ts";

function options(out: string, extra: Partial<RunOptions> = {}): RunOptions {
  return {
    task: "image",
    model: VIT_PRESETS.fmnist,
    modelName: "fmnist",
    llm: "random",
    llmLayers: "last",
    epochs: 2,
    steps: 0,
    batch: 16,
    lr: 2e-3,
    warmup: 3,
    weightDecay: 0.05,
    labelSmoothing: 0.1,
    dropout: 0,
    clip: 1,
    data: DEFAULT_DATA_DIR,
    out,
    seed: 3,
    logEvery: 1,
    evalBatch: 100,
    trainLimit: 48, // 3 steps per epoch
    evalLimit: 100,
    ...extra,
  };
}

const records = async (path: string) =>
  (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));

test("vit: resuming from the run directory reproduces the uninterrupted run; metrics and chart merged; eval", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const full = await runTraining(options(`${tmp}/full`));
    assert.equal(full.steps, 6);
    assert.equal(full.losses.length, 6);
    assert.equal(full.checkpoint, `${tmp}/full/checkpoint`);
    // stopped in the second epoch's first step: the resume continues mid-epoch
    const first = await runTraining(options(`${tmp}/part`, { stopAfter: 4 }));
    assert.equal(first.steps, 4);
    const lines: string[] = [];
    const rest = await runTraining(
      options(`${tmp}/part`, { resume: `${tmp}/part`, log: (l) => lines.push(l) }),
    );
    assert.deepEqual(first.losses, full.losses.slice(0, 4));
    assert.deepEqual(rest.losses, full.losses.slice(4));
    assert.equal(rest.testAccuracy, full.testAccuracy);
    assert.ok(lines.some((l) => l.includes("resumed from") && l.includes("step 4")), lines.join("\n"));
    // one metrics file for the whole run: every step once, both evaluations, one final record
    const recs = await records(`${tmp}/part/metrics.jsonl`);
    assert.deepEqual(
      recs.filter((r) => r.loss !== undefined).map((r) => r.step),
      [...Array(6).keys()].map((i) => i + 1),
    );
    // evaluations at each epoch end and where the first invocation stopped
    assert.deepEqual(recs.filter((r) => r.test_accuracy !== undefined && !r.final).map((r) => r.step), [
      3,
      4,
      6,
    ]);
    assert.equal(recs.filter((r) => r.final).length, 1);
    // the chart covers the steps before the resume too: three accuracy markers, a loss line from step 1
    const svg = await Deno.readTextFile(`${tmp}/part/chart.svg`);
    assert.match(svg, /^<svg[^]*polyline[^]*<\/svg>$/);
    assert.equal((svg.match(/<circle[^>]*><title>accuracy/g) ?? []).length, 3);
    assert.match(svg, /<title>loss [0-9.]+ at step 1<\/title>/);
    assert.ok(!svg.includes(tmp), "the title names the run, not its absolute path");
    assert.match(svg, />part: ViT fmnist on Fashion-MNIST, frozen LLM: llama-tiny \(layers \d+\)</);

    // the eval command's library half: the checkpoint's settings rebuild the model; same accuracy
    const ev = await evaluateCheckpoint({ checkpoint: `${tmp}/part`, limit: 100 });
    assert.equal(ev.top1, full.testAccuracy);
    assert.ok(ev.top5! >= ev.top1 && ev.top5! <= 1);
    assert.equal(ev.n, 100);
    assert.equal(ev.step, 6);
    // and the command itself
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "examples/eval.ts",
        "--checkpoint",
        `${tmp}/part`,
        "--limit",
        "100",
        "--split",
        "train",
      ],
      cwd: new URL("..", import.meta.url),
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.match(
      text,
      /step 6, ViT fmnist on Fashion-MNIST\) on the train split .* \(100 samples\): top-1 accuracy \d+\.\d\d%, top-5 accuracy \d+\.\d\d%/,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

test("vit: missing data, a model with another class count and a foreign checkpoint give clear errors", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await assertRejectsMsg(
      () => runTraining(options(`${tmp}/a`, { data: `${tmp}/nowhere` })),
      "not found",
      "--data",
    );
    await assertRejectsMsg(
      () => runTraining(options(`${tmp}/b`, { model: VIT_PRESETS.tiny, modelName: "tiny" })),
      "10 classes",
      "1000",
      "--classes",
    );
    await runTraining(options(`${tmp}/c`, { llm: "none", stopAfter: 1 }));
    await assertRejectsMsg(
      () =>
        runTraining(
          options(`${tmp}/d`, {
            llm: "none",
            model: { ...VIT_PRESETS.fmnist, dim: 48, heads: 2 },
            resume: `${tmp}/c/checkpoint`,
          }),
        ),
      "--dim",
      "state.json",
      "'run'",
    );
    await assertRejectsMsg(
      () => runTraining(options(`${tmp}/e`, { resume: `${tmp}/c/checkpoint` })),
      "--llm",
      "state.json",
    );
    await assertRejectsMsg(
      () => runTraining(options(`${tmp}/f`, { resume: `${tmp}/nowhere` })),
      "nowhere",
      "not found",
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

test("vit: --init imports weights by timm name (other heads and extra tensors skipped, wrong shapes refused)", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const a = await runTraining(options(`${tmp}/a`, { llm: "none", stopAfter: 2 }));
    // the same weights through --init, no training step: the same test accuracy, and no checkpoint claimed
    const b = await runTraining(
      options(`${tmp}/b`, { llm: "none", stopAfter: 0, init: `${tmp}/a/checkpoint/model.safetensors` }),
    );
    assert.equal(b.testAccuracy, a.testAccuracy);
    assert.equal(b.checkpoint, undefined);
    // a timm-like file: a 7-class head and a tensor our model does not have
    const src = await openSafetensors(`${tmp}/a/checkpoint/model.safetensors`);
    const tensors = [];
    for (const t of src.list()) {
      if (t.name.startsWith("head.")) continue;
      tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await src.read(t.name) });
    }
    src.close();
    const f32 = (n: number) => new Uint8Array(new Float32Array(n).buffer);
    tensors.push({ name: "head.weight", dtype: "F32" as const, shape: [7, 32], data: f32(224) });
    tensors.push({ name: "fc_norm.weight", dtype: "F32" as const, shape: [32], data: f32(32) });
    await writeSafetensors(`${tmp}/timm.safetensors`, tensors);
    const c = await runTraining(
      options(`${tmp}/c`, { llm: "none", stopAfter: 0, init: `${tmp}/timm.safetensors` }),
    );
    assert.ok(c.testAccuracy >= 0 && c.testAccuracy <= 1);
    const bad = tensors.map((t) =>
      t.name === "pos_embed" ? { ...t, shape: [1, 16, 32], data: t.data.subarray(0, 16 * 32 * 4) } : t
    );
    await writeSafetensors(`${tmp}/bad.safetensors`, bad);
    await assertRejectsMsg(
      () => runTraining(options(`${tmp}/d`, { llm: "none", stopAfter: 0, init: `${tmp}/bad.safetensors` })),
      "bad.safetensors",
      "pos_embed",
      "[1,17,32]",
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
