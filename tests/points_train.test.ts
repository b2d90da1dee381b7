// The Point-BERT(-LLM) training run through the one runner: it learns (loss falls on a small set), BatchNorm running stats
// move and are checkpointed, and a resumed run reproduces the uninterrupted one exactly (dropout seeds
// and data order included). Numerics are proven by the Point-BERT parity tests.

import "../mod.ts";
import { type RunOptions, runTraining } from "../train/run.ts";
import { DEFAULT_DATA_DIR } from "../data/fashion_mnist.ts";
import { openSafetensors } from "../io/safetensors.ts";
import { toFloat32 } from "../io/weights.ts";
import { Rng } from "../compiler/core/random.ts";
import { trainOptionsFromFlags } from "../train/commands.ts";
import { assert, assertRejectsMsg, test } from "./testing.ts";
import { writeScanObjectNN } from "./point_fixtures.ts";

function options(out: string, extra: Partial<RunOptions> = {}): RunOptions {
  return {
    task: "points",
    model: { points: 32, groups: 4, groupSize: 4, encoderDim: 16, dim: 16, depth: 1, heads: 2, classes: 10 },
    modelName: "custom",
    llm: "random",
    llmLayers: "last",
    epochs: 2,
    steps: 0,
    batch: 8,
    lr: 2e-3,
    warmup: 2,
    weightDecay: 0.05,
    labelSmoothing: 0.2,
    dropout: 0.5,
    clip: 10,
    data: DEFAULT_DATA_DIR,
    out,
    seed: 1,
    logEvery: 1,
    evalBatch: 8, // the training batch: eval reuses kernels of the same shapes
    trainLimit: 16, // 2 steps per epoch
    evalLimit: 32,
    ...extra,
  };
}

test("points: a resumed run reproduces the uninterrupted run exactly; BatchNorm stats are saved", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const full = await runTraining(options(`${tmp}/full`));
    assert.equal(full.losses.length, 4);
    assert.ok(full.losses.every((l) => Number.isFinite(l.loss)));
    // stopped in the second epoch's first step: the resume continues mid-epoch (data order, dropout seeds)
    const first = await runTraining(options(`${tmp}/part`, { stopAfter: 3 }));
    const rest = await runTraining(options(`${tmp}/part`, { resume: `${tmp}/part` }));
    assert.deepEqual(first.losses, full.losses.slice(0, 3));
    assert.deepEqual(rest.losses, full.losses.slice(3));
    assert.equal(rest.testAccuracy, full.testAccuracy);
    const ck = await openSafetensors(`${tmp}/full/checkpoint/model.safetensors`);
    const rv = toFloat32(
      ck.info("encoder.first_conv.1.running_var"),
      await ck.read("encoder.first_conv.1.running_var"),
    );
    assert.ok(rv.some((v) => Math.abs(v - 1) > 1e-3), "running_var never moved");
    assert.ok(
      ck.has("encoder.second_conv.3.weight") && ck.has("cls_head_finetune.3.bias") &&
        ck.has("blocks.blocks.0.attn.qkv.weight"),
    );
    assert.ok(!ck.has("blocks.blocks.0.attn.qkv.bias"));
    ck.close();
    // the weights and running stats load back by Point-BERT name: same test accuracy without training
    const again = await runTraining(
      options(`${tmp}/init`, { stopAfter: 0, init: `${tmp}/full/checkpoint/model.safetensors` }),
    );
    assert.equal(again.testAccuracy, full.testAccuracy);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------------------
// Point-cloud files (ScanObjectNN, ModelNet40) and the paper's recipe

const SCAN_MODEL = {
  points: 32,
  groups: 4,
  groupSize: 4,
  encoderDim: 16,
  dim: 16,
  depth: 1,
  heads: 2,
  classes: 15,
};

test("points: trains from ScanObjectNN hardest files with --recipe pointbert, votes and a Point-BERT .pth init", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await writeScanObjectNN(tmp, 16, 48);
    const lines: string[] = [];
    const run = await runTraining(options(`${tmp}/out`, {
      model: { ...SCAN_MODEL, depth: 2 }, // block 1 drops paths (rate linspace(0, 0.1, depth))
      llm: "none", // keeps the test short; the mappers' group is unit-tested (pointbert_init.test.ts)
      data: `${tmp}/training_objectdataset_augmentedrot_scale75.h5`,
      recipe: "pointbert",
      dropPath: 0.1,
      vote: 3,
      epochs: 1,
      trainLimit: 0,
      evalLimit: 0,
      init: "tests/fixtures/pointbert/pretrain.pth",
      log: (l) => lines.push(l),
    }));
    assert.equal(run.losses.length, 2);
    assert.ok(run.losses.every((l) => Number.isFinite(l.loss)));
    assert.ok(run.testAccuracy >= 0 && run.testAccuracy <= 1);
    // 16 test clouds × 3 votes were scored as 16 clouds: the accuracy is a multiple of 1/16
    assert.equal(Math.round(run.testAccuracy * 16), run.testAccuracy * 16);
    assert.ok(
      lines.some((l) => /^init: 36 tensors from .*pretrain\.pth; 4 skipped .*; 16 keep their init$/.test(l)),
      lines.join("\n"),
    );
    assert.ok(lines.some((l) => l.includes("training_objectdataset_augmentedrot_scale75.h5")));
    const state = JSON.parse(await Deno.readTextFile(`${tmp}/out/checkpoint/state.json`));
    assert.equal(state.run.recipe, "pointbert");
    assert.equal(state.run.vote, 3);
    // the reference's schedule: epoch 0 trains at warmup_lr_init
    const lrs = (await Deno.readTextFile(`${tmp}/out/metrics.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    )
      .filter((r) => r.lr !== undefined).map((r) => r.lr);
    assert.deepEqual(lrs, [1e-6, 1e-6]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

test("points: trains from the ModelNet40 txt release (40 classes); a class-count mismatch names --classes", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const names = Array.from({ length: 40 }, (_, i) => `class${String.fromCharCode(97 + (i % 26))}${i}`);
    await Deno.writeTextFile(`${tmp}/modelnet40_shape_names.txt`, names.join("\n") + "\n");
    const rng = new Rng(3);
    for (const [split, count] of [["train", 8], ["test", 4]] as const) {
      const ids: string[] = [];
      for (let i = 0; i < count; i++) {
        const c = names[(i * 7) % 40], id = `${c}_${String(i + 1).padStart(4, "0")}`;
        ids.push(id);
        await Deno.mkdir(`${tmp}/${c}`, { recursive: true });
        const rows = Array.from({ length: 40 }, () => {
          const v = [0, 1, 2].map(() => (2 * rng.next() - 1).toFixed(6));
          return `${v.join(",")},0,0,1`;
        });
        await Deno.writeTextFile(`${tmp}/${c}/${id}.txt`, rows.join("\n") + "\n");
      }
      await Deno.writeTextFile(`${tmp}/modelnet40_${split}.txt`, ids.join("\n") + "\n");
    }
    await assertRejectsMsg(
      () => runTraining(options(`${tmp}/bad`, { model: SCAN_MODEL, data: tmp })),
      "ModelNet40 (txt) has 40 classes",
      "--classes",
    );
    const run = await runTraining(options(`${tmp}/out`, {
      model: { ...SCAN_MODEL, classes: 40 },
      llm: "none",
      data: tmp,
      epochs: 1,
      trainLimit: 0,
      evalLimit: 0,
    }));
    assert.equal(run.losses.length, 1);
    assert.ok(Number.isFinite(run.losses[0].loss));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

test("train-points --recipe pointbert: the reference's defaults unless a flag is given", () => {
  const o = trainOptionsFromFlags("points", { recipe: "pointbert", epochs: "2" });
  assert.equal(o.lr, 5e-4);
  assert.equal(o.batch, 32);
  assert.equal(o.vote, 10);
  assert.equal(o.dropPath, 0.1);
  assert.equal(o.epochs, 2);
  assert.equal(o.steps, 0);
  const plain = trainOptionsFromFlags("points", {});
  assert.equal(plain.vote, 1);
  assert.equal(plain.dropPath, 0);
  assert.equal(plain.recipe, "none");
});
