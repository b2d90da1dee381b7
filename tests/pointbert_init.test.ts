// Point-BERT .pth import (io/pointbert.ts): the released checkpoint's format (tests/fixtures/pointbert,
// written by PyTorch: gen.py) loads into models/pointbert.ts by the reference's renaming, values equal to
// what PyTorch saved; skipped and kept tensors are reported; a checkpoint of another model is refused.

import { Graph } from "../compiler/core/ir.ts";
import { compile } from "../compiler/runtime/executable.ts";
import {
  buildPointBert,
  type PointBertConfig,
  pointBertGroup,
  pointBertLr,
  pointBertRecipeNoDecay,
} from "../models/pointbert.ts";
import { initFromPointBert, pointBertName } from "../io/pointbert.ts";
import { openLlm } from "../io/llm.ts";
import { DEFAULT_LLM } from "../models/presets.ts";
import { assert, assertRejectsMsg, test } from "./testing.ts";

const DIR = "tests/fixtures/pointbert";
const CFG: PointBertConfig = {
  points: 32,
  groups: 4,
  groupSize: 4,
  encoderDim: 16,
  dim: 16,
  depth: 1,
  heads: 2,
  classes: 15,
};

async function model(cfg: PointBertConfig) {
  const g = new Graph();
  const m = await buildPointBert(g, cfg, 2, { training: false });
  const exe = await compile([m.logits]);
  return { exe, params: [...g.params.filter((p) => p.trainable), ...m.buffers] };
}

test("pointBertName: module. dropped; pretraining names under transformer_q./base_model., the rest skipped", () => {
  assert.equal(
    pointBertName("module.transformer_q.blocks.blocks.0.attn.qkv.weight", true),
    "blocks.blocks.0.attn.qkv.weight",
  );
  assert.equal(pointBertName("module.base_model.cls_token", true), "cls_token");
  assert.equal(pointBertName("module.transformer_q.cls_head.0.weight", true), undefined);
  assert.equal(pointBertName("module.dvae.codebook", true), undefined);
  assert.equal(pointBertName("module.norm.weight", false), "norm.weight");
});

test("initFromPointBert: the pretraining and fine-tuned formats load with PyTorch's values", async () => {
  const expected: Record<string, { sum: number; first: number }> = JSON.parse(
    await Deno.readTextFile(`${DIR}/expected.json`),
  );
  const { exe, params } = await model(CFG);
  const r = await initFromPointBert(`${DIR}/pretrain.pth`, exe, params);
  assert.equal(r.loaded.length, 36);
  assert.deepEqual(r.kept.sort(), [
    "cls_head_finetune.0.bias",
    "cls_head_finetune.0.weight",
    "cls_head_finetune.3.bias",
    "cls_head_finetune.3.weight",
    "encoder.second_conv.0.weight",
  ]);
  assert.equal(r.skipped.length, 4);
  for (const name of r.loaded) {
    const v = await exe.read(params.find((p) => p.name === name)!);
    const sum = Array.from(v as ArrayLike<number>).reduce((a, b) => a + b, 0);
    assert.equal(v[0], expected[name].first, name);
    assert.ok(Math.abs(sum - expected[name].sum) < 1e-3, `${name}: sum ${sum} vs ${expected[name].sum}`);
  }
  // the fine-tuned format: plain names, with the 15-class head and running stats
  const f = await initFromPointBert(`${DIR}/finetuned.pth`, exe, params);
  assert.deepEqual(f.loaded.sort(), [
    "cls_head_finetune.0.bias",
    "cls_head_finetune.0.weight",
    "cls_head_finetune.3.bias",
    "cls_head_finetune.3.weight",
    "encoder.second_conv.1.running_var",
    "norm.weight",
  ]);
  const head = await exe.read(params.find((p) => p.name === "cls_head_finetune.3.weight")!);
  assert.equal(head[0], expected["cls_head_finetune.3.weight"].first);
  exe.destroy();
});

test("initFromPointBert: another class count keeps the head's init; another width is refused", async () => {
  const ten = await model({ ...CFG, classes: 10 });
  const r = await initFromPointBert(`${DIR}/finetuned.pth`, ten.exe, ten.params);
  assert.ok(r.skipped.some((s) => /cls_head_finetune\.3\.weight: \[15,256\] is another class count/.test(s)));
  assert.ok(r.kept.includes("cls_head_finetune.3.weight"));
  const wide = await model({ ...CFG, dim: 8, heads: 2 });
  await assertRejectsMsg(
    () => initFromPointBert(`${DIR}/pretrain.pth`, wide.exe, wide.params),
    "pretrain.pth",
    "has shape [1,1,16]",
    "is [1,1,8]",
  );
});

test("pointBertGroup: the reference's AdamW groups (mappers 0.5×lr, 1-D/bias/token 0.1×lr, no decay)", () => {
  const g = new Graph();
  const p = (name: string, shape: number[]) => g.param(name, shape);
  assert.deepEqual(pointBertGroup(p("llama_dim_mapper1.weight", [8, 4])), { lrScale: 0.5, weightDecay: 0 });
  assert.deepEqual(pointBertGroup(p("cls_token", [1, 1, 4])), { lrScale: 0.1, weightDecay: 0 });
  assert.deepEqual(pointBertGroup(p("encoder.first_conv.0.bias", [4])), { lrScale: 0.1, weightDecay: 0 });
  assert.deepEqual(pointBertGroup(p("norm.weight", [4])), { lrScale: 0.1, weightDecay: 0 });
  // cls_pos is 3-D and has no "token": decayed at lr in the reference
  assert.deepEqual(pointBertGroup(p("cls_pos", [1, 1, 4])), {});
  assert.ok(!pointBertRecipeNoDecay(p("cls_pos2", [1, 1, 4])));
  assert.deepEqual(pointBertGroup(p("blocks.blocks.0.attn.qkv.weight", [12, 4])), {});
});

test("pointBertLr: timm's CosineLRScheduler in epochs, stepped after each epoch as the reference runner", () => {
  const lr = pointBertLr(5e-4, 300, 10, 4);
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);
  close(lr(0), 1e-6); // epoch 0: warmup_lr_init
  close(lr(7), 1e-6); // epoch 1 trains at lr(0) too (scheduler.step(0) after epoch 0)
  close(lr(8), 1e-6 + (5e-4 - 1e-6) / 10); // epoch 2: lr(1)
  close(lr(4 * 11), 1e-6 + 0.5 * (5e-4 - 1e-6) * (1 + Math.cos(Math.PI * 10 / 300))); // epoch 11: lr(10)
  close(lr(4 * 301), 1e-6); // past the cycle: lr_min
});

test("buildPointBert: drop path (timm's linspace rates) takes the step's seed input, in training only", async () => {
  const seedOf = async (training: boolean, dropPath: number) => {
    const g = new Graph();
    const m = await buildPointBert(g, { ...CFG, depth: 2 }, 2, { training, dropout: 0, dropPath });
    return { seed: m.dropoutSeed, ops: g.nodes.filter((n) => n.op === "drop_path").length };
  };
  const on = await seedOf(true, 0.1);
  assert.ok(on.seed);
  assert.equal(on.ops, 2); // block 1's attention and MLP branches (block 0's rate is 0)
  assert.equal((await seedOf(false, 0.1)).seed, undefined);
  assert.equal((await seedOf(true, 0)).seed, undefined);
});

test("buildPointBert: the LLM arms (models/arms.ts) between the blocks and the norm", async () => {
  const ck = await openLlm(DEFAULT_LLM);
  try {
    const trainable = async (arm: "frozen" | "mlp" | "none") => {
      const g = new Graph();
      await buildPointBert(g, CFG, 2, { training: false, llm: { ck, layers: [ck.cfg.layers - 1], arm } });
      return g.params.filter((p) => p.trainable).map((p) => p.name!);
    };
    const frozen = await trainable("frozen"), mlp = await trainable("mlp"), none = await trainable("none");
    assert.ok(frozen.includes("llama_dim_mapper1.weight") && !frozen.some((n) => n.startsWith("llm_mlp.")));
    assert.ok(mlp.includes("llama_dim_mapper2.weight") && mlp.some((n) => n.startsWith("llm_mlp.0.")));
    assert.ok(!none.some((n) => n.startsWith("llama_dim_mapper")));
  } finally {
    ck.src.close();
  }
});
