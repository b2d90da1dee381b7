// Tests of the lr recipe: DeiT's lr scaling, timm's CosineLRScheduler (warmup, cosine, floor, per
// epoch / per step) against hand-computed values; BEiT/timm layer ids and layer-decay scales; AdamW
// param groups (lr scale and weight decay per group, fused and per-param) against a CPU AdamW.
import { assert, test } from "./testing.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { grad } from "../compiler/grad.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { kernelLabels } from "../compiler/lower/plan.ts";
import { randn } from "../compiler/core/random.ts";
import { add, mul, sub } from "../compiler/ops/elementwise.ts";
import { sumsq } from "../compiler/ops/optim.ts";
import { AdamW } from "../nn/optim.ts";
import {
  cosineLr,
  layerDecayGroups,
  layerDecayScale,
  lrAtStep,
  scaledLr,
  vitLayerId,
} from "../nn/schedule.ts";

const close = (a: number, b: number, what: string) =>
  assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

test("schedule: lr scaling and timm's cosine with warmup, hand-computed", () => {
  close(scaledLr(5e-4, 1024), 1e-3, "DeiT: 5e-4 · 1024/512");
  close(scaledLr(5e-4, 256, 256), 5e-4, "timm base 256");
  // lr 1e-3, t_initial 10, warmup 2 from 1e-6, floor 1e-5
  const s = { lr: 1e-3, tInitial: 10, warmupT: 2, warmupLrInit: 1e-6, lrMin: 1e-5 };
  close(cosineLr(0, s), 1e-6, "t=0: warmup_lr_init");
  close(cosineLr(1, s), 1e-6 + (1e-3 - 1e-6) / 2, "t=1: halfway up");
  // t=2: warmup over, cosine at t=2 (no prefix): 1e-5 + ½·(1e-3 − 1e-5)(1 + cos(π/5))
  close(cosineLr(2, s), 1e-5 + 0.5 * 990e-6 * (1 + Math.cos(Math.PI / 5)), "t=2");
  close(cosineLr(5, s), 1e-5 + 0.5 * 990e-6, "t=5: half of the cosine, cos(π/2) = 0");
  close(cosineLr(10, s), 1e-5, "t=t_initial: the floor");
  close(cosineLr(12, s), 1e-5, "past the cycle: the floor");
  // warmup_prefix: the cosine starts after the warmup
  close(cosineLr(2, { ...s, warmupPrefix: true }), 1e-3, "prefix t=2: peak");
  close(cosineLr(7, { ...s, warmupPrefix: true }), 1e-5 + 0.5 * 990e-6, "prefix t=7");
  // no warmup: t=0 is the peak
  close(cosineLr(0, { lr: 0.1, tInitial: 4 }), 0.1, "t=0 no warmup");
  close(cosineLr(1, { lr: 0.1, tInitial: 4 }), 0.05 * (1 + Math.SQRT1_2), "t=1 of 4");
});

test("schedule: per-epoch and per-step runs, warmup in epochs or steps", () => {
  const run = { lr: 1e-3, epochs: 10, stepsPerEpoch: 4, warmup: 2, warmupLr: 1e-6, minLr: 1e-5 };
  // per epoch (timm's t_in_epochs): constant within an epoch
  for (let step = 0; step < 40; step++) {
    close(
      lrAtStep(step, run),
      cosineLr(Math.floor(step / 4), { lr: 1e-3, tInitial: 10, warmupT: 2, warmupLrInit: 1e-6, lrMin: 1e-5 }),
      `step ${step}`,
    );
  }
  close(lrAtStep(5, run), 1e-6 + (1e-3 - 1e-6) / 2, "epoch 1 of a 2-epoch warmup");
  // per step: warmup of 2 epochs = 8 steps, cosine over 40 steps
  const ps = { ...run, per: "step" as const };
  close(lrAtStep(4, ps), 1e-6 + (4 * (1e-3 - 1e-6)) / 8, "step 4 of 8 warmup steps");
  close(lrAtStep(20, ps), 1e-5 + 0.5 * 990e-6, "step 20 of 40");
  // warmup in steps, per step
  close(lrAtStep(3, { ...ps, warmup: 6, warmupUnit: "steps" }), 1e-6 + (3 * (1e-3 - 1e-6)) / 6, "3 of 6");
  // warmup in steps, per epoch: warmup_t = 6/4 = 1.5 epochs → epoch 1 is still warming up
  close(
    lrAtStep(4, { ...run, warmup: 6, warmupUnit: "steps" }),
    1e-6 + (1e-3 - 1e-6) / 1.5,
    "epoch 1 of 1.5",
  );
});

test("schedule: layer ids and layer-decay scales for ViT names (BEiT / timm)", () => {
  const depth = 12;
  const ids: [string, number][] = [
    ["cls_token", 0],
    ["pos_embed", 0],
    ["patch_embed.proj.weight", 0],
    ["blocks.0.attn.qkv.weight", 1],
    ["blocks.11.mlp.fc2.bias", 12],
    ["norm.weight", 13],
    ["fc_norm.bias", 13],
    ["head.weight", 13],
    ["llama_dim_mapper1.weight", 13],
  ];
  for (const [name, id] of ids) assert.equal(vitLayerId(name, depth), id, name);
  close(layerDecayScale("head.weight", depth, 0.65), 1, "head");
  close(layerDecayScale("blocks.11.norm1.weight", depth, 0.65), 0.65, "last block");
  close(layerDecayScale("patch_embed.proj.weight", depth, 0.65), 0.65 ** 13, "stem");
});

/** loss = Σ_p Σ (p∘x_p − y_p)², so ∂/∂p = 2·x_p·(p∘x_p − y_p) is known on the CPU. */
function groupModel() {
  const g = new Graph();
  const names = ["patch_embed.proj.weight", "blocks.0.mlp.fc1.weight", "blocks.1.norm1.bias", "head.weight"];
  const shapes = [[4, 3], [4, 3], [3], [4, 3]];
  const ps: Node[] = [], xs: Float32Array[] = [], ys: Float32Array[] = [];
  let loss: Node | undefined;
  names.forEach((name, k) => {
    const p = g.param(name, shapes[k], { init: randn(100 + k, shapes[k].reduce((a, b) => a * b)) });
    const n = p.size;
    xs.push(randn(200 + k, n));
    ys.push(randn(300 + k, n));
    const term = sumsq(sub(mul(p, g.constant(xs[k], shapes[k])), g.constant(ys[k], shapes[k])));
    loss = loss ? add(loss, term) : term;
    ps.push(p);
  });
  return { g, ps, xs, ys, loss: loss! };
}

for (const fused of [true, false]) {
  test(`schedule: AdamW param groups (layer decay, per-group weight decay) vs CPU AdamW, fused ${fused}`, async () => {
    const { g, ps, xs, ys, loss } = groupModel();
    const decayed = (p: Node) => p.rank > 1;
    const layer = layerDecayGroups(2, 0.5);
    const wdOf = (p: Node) => (p.name === "head.weight" ? 0.2 : 0.05);
    const opt = new AdamW(g, grad(loss), {
      fused,
      weightDecay: 0.05,
      paramGroup: (p) => ({ ...layer(p), weightDecay: wdOf(p) }),
    });
    assert.deepEqual(opt.groups.map((x) => x.lrScale), [0.125, 0.25, 0.5, 1]);
    assert.equal(opt.groups[0].hyper, opt.hyper);
    const exe = await compile([loss], { effects: opt.effects });
    const labels = kernelLabels(exe.plan);
    assert.equal(labels.filter((l) => l === (fused ? "adamw_fused" : "adamw_update")).length, 4);
    // CPU torch.optim.AdamW per group: lr·scale, wd of the group (0 for 1-D params)
    const cur = ps.map((p) => Float64Array.from(p.init as Float32Array));
    const m = ps.map((p) => new Float64Array(p.size)), v = ps.map((p) => new Float64Array(p.size));
    const [b1, b2, eps] = [0.9, 0.999, 1e-8];
    const lrs = [1e-2, 5e-3, 2e-2];
    for (let t = 1; t <= lrs.length; t++) {
      opt.prepareStep(exe, lrs[t - 1]);
      await exe.run([loss]);
      ps.forEach((p, k) => {
        const lr = lrs[t - 1] * layerDecayScale(p.name!, 2, 0.5), wd = decayed(p) ? wdOf(p) : 0;
        for (let i = 0; i < p.size; i++) {
          const gr = 2 * xs[k][i] * (cur[k][i] * xs[k][i] - ys[k][i]);
          cur[k][i] *= 1 - lr * wd;
          m[k][i] = b1 * m[k][i] + (1 - b1) * gr;
          v[k][i] = b2 * v[k][i] + (1 - b2) * gr * gr;
          const bc1 = 1 - b1 ** t, bc2 = 1 - b2 ** t;
          cur[k][i] -= (lr / bc1) * m[k][i] / (Math.sqrt(v[k][i]) / Math.sqrt(bc2) + eps);
        }
      });
      for (let k = 0; k < ps.length; k++) {
        const got = await exe.read(ps[k]);
        for (let i = 0; i < got.length; i++) {
          assert.ok(
            Math.abs(got[i] - cur[k][i]) < 2e-6,
            `step ${t} ${ps[k].name}[${i}]: ${got[i]} vs ${cur[k][i]}`,
          );
        }
      }
    }
    exe.destroy();
  });
}

test("schedule: AdamW without groups keeps one group and one hyper input", () => {
  const { g, loss } = groupModel();
  const opt = new AdamW(g, grad(loss));
  assert.equal(opt.groups.length, 1);
  assert.equal(opt.groups[0].lrScale, 1);
  assert.equal(g.nodes.filter((n) => n.kind === "input" && n.name?.startsWith("adamw.hyper")).length, 1);
});
