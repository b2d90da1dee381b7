// The Point-BERT(-LLM) training run through the one runner: it learns (loss falls on a small set), BatchNorm running stats
// move and are checkpointed, and a resumed run reproduces the uninterrupted one exactly (dropout seeds
// and data order included). Numerics are proven by the Point-BERT parity tests.

import "../mod.ts";
import { type RunOptions, runTraining } from "../train/run.ts";
import { DEFAULT_DATA_DIR } from "../data/fashion_mnist.ts";
import { openSafetensors } from "../io/safetensors.ts";
import { toFloat32 } from "../io/weights.ts";
import { assert, test } from "./testing.ts";

function options(out: string, extra: Partial<RunOptions> = {}): RunOptions {
  return {
    task: "points",
    model: { points: 32, groups: 4, groupSize: 4, encoderDim: 16, dim: 16, depth: 1, heads: 2, classes: 10 },
    modelName: "custom",
    llm: "default",
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
    evalBatch: 16,
    trainLimit: 32, // 4 steps per epoch
    evalLimit: 32,
    ...extra,
  };
}

test("points: a resumed run reproduces the uninterrupted run exactly; BatchNorm stats are saved", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const full = await runTraining(options(`${tmp}/full`));
    assert.equal(full.losses.length, 8);
    assert.ok(full.losses.every((l) => Number.isFinite(l.loss)));
    const first = await runTraining(options(`${tmp}/part`, { stopAfter: 5 }));
    const rest = await runTraining(options(`${tmp}/part`, { resume: `${tmp}/part` }));
    assert.deepEqual(first.losses, full.losses.slice(0, 5));
    assert.deepEqual(rest.losses, full.losses.slice(5));
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
