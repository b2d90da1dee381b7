// The ViT(-LLM) training run: resuming from a checkpoint continues exactly like an uninterrupted run,
// and bad inputs (missing data, wrong image size for the model, a checkpoint of another model) give
// one clear error. The model's numerics are proven by tests/parity.test.ts against PyTorch.

import "../mod.ts";
import { DEFAULT_LLM, MODELS, type RunOptions, runVit } from "../train/run_vit.ts";
import { DEFAULT_DATA_DIR } from "../data/fashion_mnist.ts";
import { assert, assertRejectsMsg, test } from "./testing.ts";
import { openSafetensors, writeSafetensors } from "../io/safetensors.ts";

function options(out: string, extra: Partial<RunOptions> = {}): RunOptions {
  return {
    model: MODELS.fmnist,
    modelName: "fmnist",
    llm: DEFAULT_LLM,
    llmLayers: "last",
    epochs: 2,
    steps: 0,
    batch: 16,
    lr: 2e-3,
    warmup: 3,
    weightDecay: 0.05,
    labelSmoothing: 0.1,
    clip: 1,
    data: DEFAULT_DATA_DIR,
    out,
    seed: 3,
    logEvery: 1,
    evalBatch: 100,
    trainLimit: 96, // 6 steps per epoch
    evalLimit: 100,
    quiet: true,
    ...extra,
  };
}

test("vit: a resumed run reproduces the uninterrupted run's losses exactly", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const full = await runVit(options(`${tmp}/full`));
    assert.equal(full.steps, 12);
    assert.equal(full.losses.length, 12);
    const first = await runVit(options(`${tmp}/part`, { stopAfter: 7 }));
    assert.equal(first.steps, 7);
    const rest = await runVit(options(`${tmp}/part`, { resume: `${tmp}/part/checkpoint` }));
    assert.deepEqual(first.losses, full.losses.slice(0, 7));
    assert.deepEqual(rest.losses, full.losses.slice(7));
    assert.equal(rest.testAccuracy, full.testAccuracy);
    // metrics.jsonl of the resumed run continues the first one's file
    const lines = (await Deno.readTextFile(`${tmp}/part/metrics.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.deepEqual(
      lines.filter((r) => r.loss !== undefined).map((r) => r.step),
      [...Array(12).keys()].map((i) => i + 1),
    );
    const svg = await Deno.readTextFile(`${tmp}/full/chart.svg`);
    assert.match(svg, /^<svg[^]*polyline[^]*<\/svg>$/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

test("vit: missing data, wrong image size and a foreign checkpoint give clear errors", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await assertRejectsMsg(
      () => runVit(options(`${tmp}/a`, { data: `${tmp}/nowhere` })),
      "not found",
      "--data",
    );
    await assertRejectsMsg(
      () => runVit(options(`${tmp}/b`, { model: MODELS.tiny, modelName: "tiny" })),
      "28×28×1",
      "224×224×3",
      "--model",
    );
    await runVit(options(`${tmp}/c`, { llm: "none", stopAfter: 1 }));
    await assertRejectsMsg(
      () =>
        runVit(
          options(`${tmp}/d`, {
            llm: "none",
            model: { ...MODELS.fmnist, dim: 48, heads: 2 },
            resume: `${tmp}/c/checkpoint`,
          }),
        ),
      "model.safetensors",
      "shape",
    );
    await assertRejectsMsg(
      () => runVit(options(`${tmp}/e`, { resume: `${tmp}/c/checkpoint` })),
      "llama_dim_mapper1.weight",
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

test("vit: --init imports weights by timm name (other heads and extra tensors skipped, wrong shapes refused)", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const a = await runVit(options(`${tmp}/a`, { llm: "none", stopAfter: 2 }));
    // the same weights through --init, no training step: the same test accuracy
    const b = await runVit(
      options(`${tmp}/b`, { llm: "none", stopAfter: 0, init: `${tmp}/a/checkpoint/model.safetensors` }),
    );
    assert.equal(b.testAccuracy, a.testAccuracy);
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
    const c = await runVit(
      options(`${tmp}/c`, { llm: "none", stopAfter: 0, init: `${tmp}/timm.safetensors` }),
    );
    assert.ok(c.testAccuracy >= 0 && c.testAccuracy <= 1);
    const bad = tensors.map((t) =>
      t.name === "pos_embed" ? { ...t, shape: [1, 16, 32], data: t.data.subarray(0, 16 * 32 * 4) } : t
    );
    await writeSafetensors(`${tmp}/bad.safetensors`, bad);
    await assertRejectsMsg(
      () => runVit(options(`${tmp}/d`, { llm: "none", stopAfter: 0, init: `${tmp}/bad.safetensors` })),
      "bad.safetensors",
      "pos_embed",
      "[1,17,32]",
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
