// The training recipe pieces wired into the one runner: the ablation arms of the video task (llmArm in
// models/video.ts: gradients reach the mlp and random-trained layers, none reach the frozen ones; the
// finetune arm's lr scale beside layer decay), and Mixup/CutMix of image batches and video clips
// (--mixup/--cutmix: the loss reads the soft targets, the batch is mixed as timm's Mixup says for the
// run's seed, clips as [B, C·T, H, W]) with a tiny run that trains on the mixed batches.

import "../compiler/ops/mod.ts";
import { Graph } from "../compiler/core/ir.ts";
import { grad } from "../compiler/grad.ts";
import { crossEntropy } from "../compiler/ops/loss.ts";
import { openLlm } from "../io/llm.ts";
import { DEFAULT_LLM } from "../models/presets.ts";
import { buildVideoVit, type VideoConfig } from "../models/video.ts";
import { buildVit, type VitConfig } from "../models/vit.ts";
import { isLlmParam, type LlmArm } from "../models/arms.ts";
import { Mixup } from "../data/mixup.ts";
import { DEFAULT_DATA_DIR } from "../data/fashion_mnist.ts";
import { Rng } from "../compiler/core/random.ts";
import { runObjective } from "../train/loop.ts";
import { imageTask, videoTask } from "../train/tasks.ts";
import { checkRunOptions } from "../train/flags.ts";
import { trainOptionsFromFlags } from "../train/commands.ts";
import { runTraining } from "../train/run.ts";
import { openSafetensors } from "../io/safetensors.ts";
import { toFloat32 } from "../io/weights.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";

const VIDEO: VideoConfig = {
  frames: 4,
  tubelet: 2,
  img: 8,
  patch: 4,
  chans: 1,
  dim: 16,
  depth: 2,
  heads: 2,
  classes: 3,
};

async function videoModel(arm: LlmArm) {
  const ck = await openLlm(DEFAULT_LLM);
  const g = new Graph();
  const m = await buildVideoVit(g, VIDEO, 2, { llm: { ck, layers: [1], arm }, seed: 1 });
  const loss = crossEntropy(m.logits, g.input("labels", [2], "i32"));
  return { g, m, ck, loss };
}

test("video arms: gradients reach the mlp and random-trained layers, none reach the frozen layers", async () => {
  for (const arm of ["mlp", "random-trained", "frozen"] as const) {
    const { g, loss, ck } = await videoModel(arm);
    const layer = g.params.filter((p) => isLlmParam(p) || p.name!.startsWith("llm_mlp."));
    assert.ok(layer.length > 0, `${arm}: layer params exist`);
    assert.ok(g.params.some((p) => p.name === "llama_dim_mapper1.weight"), `${arm}: mapper1`);
    const grads = grad(loss);
    const trained = arm !== "frozen";
    for (const p of layer) {
      assert.equal(p.trainable, trained, `${arm}: ${p.name} trainable`);
      assert.equal(grads.has(p), trained, `${arm}: gradient into ${p.name}`);
    }
    assert.equal(layer.every((p) => p.name!.startsWith("llm_mlp.")), arm === "mlp", `${arm}: names`);
    ck.src.close();
  }
  // none: no mappers, no layers
  const ck = await openLlm(DEFAULT_LLM);
  const g = new Graph();
  await buildVideoVit(g, VIDEO, 2, { llm: { ck, layers: [1], arm: "none" } });
  assert.ok(!g.params.some((p) => p.name!.startsWith("llama_dim_mapper") || isLlmParam(p)), "none: no stack");
  ck.src.close();
});

test("video arms: --arm is accepted for train-video; finetune's lr scale beside layer decay", () => {
  const o = trainOptionsFromFlags("video", { arm: "mlp" });
  assert.equal(o.arm, "mlp");
  checkRunOptions(o);
  const c = {
    ...trainOptionsFromFlags("video", { arm: "finetune", "llm-lr-scale": "0.1", "layer-decay": "0.5" }),
  };
  const group = videoTask.paramGroup!(c)!;
  const depth = (c.model as VideoConfig).depth;
  const g = new Graph();
  const llmP = g.param("model.layers.1.mlp.up_proj.weight", [2, 2]);
  const headP = g.param("head.weight", [2, 2]);
  const stemP = g.param("patch_embed.proj.weight", [2, 2]);
  assert.equal(group(llmP).lrScale, 0.1);
  assert.equal(group(headP).lrScale, 1);
  assert.ok(Math.abs(group(stemP).lrScale! - 0.5 ** (depth + 1)) < 1e-12);
});

test("image layer decay: --layer-decay scales block i's lr by decay^(depth + 1 - (i + 1)), the head keeps lr", () => {
  const c = trainOptionsFromFlags("image", { "layer-decay": "0.5" });
  checkRunOptions(c);
  const group = imageTask.paramGroup!(c)!;
  const depth = (c.model as VitConfig).depth;
  const g = new Graph();
  const block0 = g.param("blocks.0.attn.qkv.weight", [2, 2]);
  const last = g.param(`blocks.${depth - 1}.mlp.fc2.weight`, [2, 2]);
  const head = g.param("head.weight", [2, 2]);
  const pos = g.param("pos_embed", [2, 2]);
  assert.ok(Math.abs(group(block0).lrScale! - 0.5 ** depth) < 1e-12);
  assert.ok(Math.abs(group(last).lrScale! - 0.5) < 1e-12);
  assert.equal(group(head).lrScale, 1);
  assert.ok(Math.abs(group(pos).lrScale! - 0.5 ** (depth + 1)) < 1e-12);
  assert.equal(imageTask.paramGroup!(trainOptionsFromFlags("image", {})), undefined, "off by default");
});

test("mixup flags: one table for image and video, off by default, an even batch, not for points", () => {
  const o = trainOptionsFromFlags("image", {});
  assert.deepEqual([o.mixup, o.cutmix, o.mixupProb, o.mixupSwitchProb], [0, 0, 1, 0.5]);
  const v = trainOptionsFromFlags("video", { mixup: "0.8", cutmix: "1.0", "mixup-switch-prob": "0.25" });
  assert.deepEqual([v.mixup, v.cutmix, v.mixupProb, v.mixupSwitchProb], [0.8, 1, 1, 0.25]);
  assertThrowsMsg(
    () => trainOptionsFromFlags("image", { "mixup-prob": "1.5" }),
    "--mixup-prob: expected a number in [0, 1], got '1.5'",
  );
  assertThrowsMsg(
    () => checkRunOptions({ ...v, batch: 7 }),
    "--batch: Mixup/CutMix pair sample i with B−1−i",
  );
  const p = trainOptionsFromFlags("points", { mixup: "0.8" });
  assert.equal(p.mixup, undefined, "points: no --mixup");
});

test("mixup: the loss reads the mixed soft targets; the batch is mixed as Mixup says for the seed", async () => {
  const cfg: VitConfig = { img: 8, patch: 4, chans: 1, dim: 16, depth: 1, heads: 2, classes: 4 };
  const B = 4, K = 4;
  const g = new Graph();
  const m = await buildVit(g, cfg, B, { seed: 1 });
  const c = { mixup: 0.8, cutmix: 1.0, mixupProb: 1, mixupSwitchProb: 0.5, labelSmoothing: 0.1, seed: 5 };
  const o = runObjective(g, { input: m.images, logits: m.logits }, c, K, (l, y) => crossEntropy(l, y));
  assert.equal(o.loss.op, "soft_cross_entropy");
  assert.equal(o.loss.inputs[0], m.logits);
  assert.equal(o.loss.inputs[1], o.targets);
  assert.deepEqual(o.targets!.shape, [B, K]);
  assert.equal(o.labels, undefined, "no hard labels in the training graph");
  assert.ok(grad(o.loss).size > 0);
  // off: the task's loss on hard labels
  const g2 = new Graph();
  const m2 = await buildVit(g2, cfg, B, { seed: 1 });
  const off = runObjective(
    g2,
    { input: m2.images, logits: m2.logits },
    { ...c, mixup: 0, cutmix: 0 },
    K,
    crossEntropy,
  );
  assert.equal(off.loss.op, "cross_entropy");
  assert.equal(off.mixer, undefined);

  // the mixer of a clip batch [B, C, T, H, W] = [4, 2, 3, 5, 6]: Mixup's decisions for seed·31 + 11
  const clip = [B, 2, 3, 5, 6];
  const gv = new Graph();
  const input = gv.input("clips", clip);
  const ov = runObjective(gv, { input, logits: gv.input("lg", [B, K]) }, c, K, crossEntropy);
  assert.deepEqual(ov.mixer!.shape, [B, 6, 5, 6]);
  const ref = new Mixup({ numClasses: K, mixupAlpha: 0.8, cutmixAlpha: 1, labelSmoothing: 0.1 }, 5 * 31 + 11);
  const rng = new Rng(9);
  const per = 6 * 5 * 6;
  const seen = new Set<string>();
  for (let it = 0; it < 12; it++) {
    const x = Float32Array.from({ length: B * per }, () => rng.normal());
    const labels = Int32Array.of(0, 1, 2, 3);
    const orig = x.slice();
    const t = ov.mixer!.mix(x, labels);
    const p = ref.params(5, 6);
    seen.add(p.cutmix ? "cutmix" : "mixup");
    for (let i = 0; i < B; i++) {
      const j = B - 1 - i;
      // targets: λ·smooth(y_i) + (1 − λ)·smooth(y_j), off = 0.1/K
      for (let k = 0; k < K; k++) {
        const s = (y: number) => (k === y ? 0.9 + 0.1 / K : 0.1 / K);
        assert.ok(Math.abs(t[i * K + k] - (p.lam * s(labels[i]) + (1 - p.lam) * s(labels[j]))) < 1e-6);
      }
      for (let e = 0; e < per; e++) {
        const plane = Math.floor(e / 30), y = Math.floor((e % 30) / 6), xx = e % 6;
        let want: number;
        if (p.cutmix) {
          const b = p.box!;
          const inBox = y >= b.yl && y < b.yh && xx >= b.xl && xx < b.xh;
          want = inBox ? orig[j * per + e] : orig[i * per + e];
        } else want = p.lam * orig[i * per + e] + (1 - p.lam) * orig[j * per + e];
        assert.ok(Math.abs(x[i * per + e] - want) < 1e-5, `it ${it} sample ${i} plane ${plane}`);
      }
    }
  }
  assert.equal(seen.size, 2, "both Mixup and CutMix batches were drawn");
});

test("mixup: a tiny image run with --mixup 0.8 --cutmix 1.0, drop path and the DeiT lr pieces trains and checkpoints", async () => {
  const out = await Deno.makeTempDir();
  const o = trainOptionsFromFlags("image", {
    data: DEFAULT_DATA_DIR,
    out,
    llm: "none",
    mixup: "0.8",
    cutmix: "1.0",
    batch: "8",
    "train-limit": "16",
    "eval-limit": "8",
    "eval-batch": "8",
    "log-every": "1",
    // the DeiT lr pieces: lr = 5e-4 · 8/512; timm's cosine per step from 1e-6 over 1 warmup step to 1e-5
    "lr-base": "5e-4",
    "warmup-lr": "1e-6",
    "min-lr": "1e-5",
    warmup: "1",
    "drop-path": "0.1",
  });
  // a two-block ViT (block 1 drops paths) on 2×2 patches of 14 px keeps the compile short
  const r = await runTraining({
    ...o,
    modelName: "custom",
    model: { ...o.model, patch: 14, dim: 16, depth: 1 },
  });
  assert.equal(r.steps, 2);
  assert.ok(r.losses.length === 2 && r.losses.every((l) => Number.isFinite(l.loss)), "finite losses");
  const st = JSON.parse(await Deno.readTextFile(`${out}/checkpoint/state.json`));
  assert.equal(typeof st.mixupRng, "number");
  assert.deepEqual([st.run.mixup, st.run.cutmix], [0.8, 1]);
  const lrs = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l))
    .filter((r) => typeof r.loss === "number").map((r) => r.lr);
  const peak = 5e-4 * 8 / 512;
  assert.ok(Math.abs(lrs[0] - 1e-6) < 1e-15, `warmup starts at --warmup-lr: ${lrs}`);
  assert.ok(
    Math.abs(lrs[1] - (1e-5 + 0.5 * (peak - 1e-5))) < 1e-15,
    `cosine from lr-base × batch/512: ${lrs}`,
  );
  await Deno.remove(out, { recursive: true });
});

test("recipe deit: the DeiT defaults in the one table, lr scaled by batch/512, timm's epoch cosine", () => {
  const o = trainOptionsFromFlags("image", { recipe: "deit", batch: "64", epochs: "10" });
  assert.equal(o.modelEmaDecay, 0.99996);
  assert.deepEqual(
    [o.dropPath, o.mixup, o.cutmix, o.mixupSwitchProb, o.lrBase, o.warmup, o.warmupLr, o.minLr, o.augment],
    [0.1, 0.8, 1, 0.5, 5e-4, 5, 1e-6, 1e-5, "deit"],
  );
  assert.deepEqual([o.weightDecay, o.labelSmoothing], [0.05, 0.1]);
  checkRunOptions(o);
  // a flag given wins over the recipe's default
  assert.equal(trainOptionsFromFlags("image", { recipe: "deit", "drop-path": "0.2" }).dropPath, 0.2);
  // without the recipe: all off, as before
  const plain = trainOptionsFromFlags("image", {});
  assert.deepEqual([plain.dropPath, plain.lrBase, plain.warmupLr, plain.minLr, plain.augment], [
    0,
    0,
    0,
    0,
    undefined,
  ]);
  assert.equal(imageTask.lrSchedule!(plain, { lr: 1e-3, warmup: 2, total: 10, perEpoch: 5 }), undefined);
  // recipes belong to their task
  assertThrowsMsg(
    () => checkRunOptions(trainOptionsFromFlags("points", { recipe: "deit" })),
    "--recipe deit: a recipe of the image task",
  );
  // 4 steps per epoch: warmup 5 epochs from 1e-6 (the lr changes at epoch boundaries), then the cosine to 1e-5
  const lr = 5e-4 * 64 / 512;
  const at = imageTask.lrSchedule!(o, { lr, warmup: o.warmup, total: 40, perEpoch: 4 })!;
  assert.ok(Math.abs(at(0) - 1e-6) < 1e-15 && at(3) === at(0));
  assert.ok(Math.abs(at(4) - (1e-6 + (lr - 1e-6) / 5)) < 1e-12);
  assert.ok(Math.abs(at(20) - (1e-5 + 0.5 * (lr - 1e-5) * (1 + Math.cos(Math.PI * 5 / 10)))) < 1e-12);
});

test("recipe deit: drop path in the ViT (a seed input, trained only), timm's linear rule over depth", async () => {
  const cfg: VitConfig = { img: 8, patch: 4, chans: 1, dim: 16, depth: 3, heads: 2, classes: 4 };
  const g = new Graph();
  const m = await buildVit(g, cfg, 2, { dropPath: 0.2 });
  assert.ok(m.dropPathSeed && m.dropPathSeed.dtype === "u32");
  const rates = g.nodes.filter((n) => n.op === "drop_path").map((n) => (n.attrs as { p: number }).p);
  // block 0: rate 0 (no op); blocks 1, 2: 0.1, 0.2 on both branches
  assert.deepEqual(rates.map((r) => +r.toFixed(6)).sort(), [0.1, 0.1, 0.2, 0.2]);
  const ge = new Graph();
  const me = await buildVit(ge, cfg, 2, {});
  assert.equal(me.dropPathSeed, undefined);
  assert.equal(ge.nodes.filter((n) => n.op === "drop_path").length, 0);
});

test("model EMA in the runner: averaged after the optimizer, checkpointed, evaluated with the weights restored; resumes", async () => {
  const out = await Deno.makeTempDir();
  const o = trainOptionsFromFlags("image", {
    data: DEFAULT_DATA_DIR,
    out,
    llm: "none",
    batch: "8",
    epochs: "2",
    "train-limit": "8", // one step per epoch
    "eval-limit": "8",
    "eval-batch": "8",
    "model-ema-decay": "0.5",
  });
  const run = { ...o, modelName: "custom", model: { ...o.model, patch: 14, dim: 16, depth: 1 } };
  const r = await runTraining({ ...run, stopAfter: 1 });
  assert.equal(r.steps, 1);
  assert.ok(typeof r.emaTestAccuracy === "number" && r.emaTestAccuracy >= 0 && r.emaTestAccuracy <= 1);
  const metrics = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.ok(
    metrics.some((m) => !m.final && typeof m.test_accuracy_ema === "number"),
    "per-evaluation EMA accuracy",
  );
  const read = async () => {
    const src = await openSafetensors(`${out}/checkpoint/model.safetensors`);
    const emaSrc = await openSafetensors(`${out}/checkpoint-ema/model.safetensors`);
    const get = async (n: string) => {
      const f = n.startsWith("ema.") ? emaSrc : src;
      return toFloat32(f.info(n), await f.read(n));
    };
    const v = await Promise.all(["norm.weight", "ema.norm.weight", "head.bias", "ema.head.bias"].map(get));
    assert.ok(!src.has("ema.head.bias"), "checkpoint/ holds the model only (eval, predict)");
    src.close();
    emaSrc.close();
    return v;
  };
  // one step from the init: ema = 0.5·init + 0.5·weights (norm.weight starts at 1, head.bias at 0); the
  // checkpoint holds the trained weights again after the EMA evaluation's swap; the EMA in checkpoint-ema/
  const [nw, enw, hb, ehb] = await read();
  assert.ok(hb.some((v) => v !== 0), "the step moved head.bias");
  nw.forEach((v, i) => assert.ok(Math.abs(enw[i] - (0.5 + 0.5 * v)) < 1e-6, `ema.norm.weight[${i}]`));
  hb.forEach((v, i) => assert.ok(Math.abs(ehb[i] - 0.5 * v) < 1e-7, `ema.head.bias[${i}]`));
  // resumed: the average continues from the saved EMA (not from the weights or the init)
  const r2 = await runTraining({ ...run, resume: out });
  assert.equal(r2.steps, 2);
  const [, , hb2, ehb2] = await read();
  hb2.forEach((v, i) => assert.ok(Math.abs(ehb2[i] - (0.5 * ehb[i] + 0.5 * v)) < 1e-7, `resumed ema[${i}]`));
  await Deno.remove(out, { recursive: true });
});
