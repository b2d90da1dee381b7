// Tests of the model EMA (timm ModelEmaV2): three AdamW steps of a small model with BatchNorm, the
// GPU shadows vs a CPU loop ema ← d·ema + (1 − d)·w over the values the step produced; one update
// dispatch per arena (sharing the fused AdamW's param arena); swap/read/reset; errors.
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { Graph } from "../compiler/core/ir.ts";
import { linear } from "../compiler/ops/matmul.ts";
import { batchNorm, batchNormUpdates } from "../compiler/ops/batchnorm.ts";
import { crossEntropy } from "../compiler/ops/loss.ts";
import { grad } from "../compiler/grad.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { kernelLabels } from "../compiler/lower/plan.ts";
import { randn } from "../compiler/core/random.ts";
import { AdamW } from "../nn/optim.ts";
import { ModelEma } from "../nn/ema.ts";
import { emaUpdate } from "../compiler/ops/ema.ts";

function model() {
  const g = new Graph();
  const x = g.input("x", [8, 5]);
  const lab = g.input("lab", [8], "i32");
  const w = g.param("fc.weight", [6, 5], { init: randn(1, 30, 0.5) });
  const b = g.param("fc.bias", [6], { init: randn(2, 6, 0.1) });
  const bw = g.param("bn.weight", [6], { init: randn(3, 6, 0.1).map((v) => 1 + v) });
  const bb = g.param("bn.bias", [6], { init: new Float32Array(6) });
  const rm = g.state("bn.running_mean", [6]);
  const rv = g.state("bn.running_var", [6], { init: new Float32Array(6).fill(1) });
  const h = batchNorm(linear(x, w, b), bw, bb, { training: true, runningMean: rm, runningVar: rv });
  const loss = crossEntropy(h, lab);
  return { g, x, lab, loss, tracked: [w, b, bw, bb, rm, rv] };
}

test("ema: 3 steps of AdamW + BatchNorm, GPU shadows = CPU loop over params and running stats", async () => {
  const { g, x, lab, loss, tracked } = model();
  const opt = new AdamW(g, grad(loss), { lr: 0.05 });
  const d = 0.9;
  const ema = new ModelEma(g, { decay: d });
  assert.deepEqual([...ema.shadows.keys()], tracked, "default sources: trainable params, then BN stats");
  assert.deepEqual([...ema.shadows.values()].map((s) => s.name), tracked.map((t) => `ema.${t.name}`));
  const exe = await compile([loss], { effects: [...batchNormUpdates(g), ...opt.effects, ...ema.effects] });
  // fc.* share the fused AdamW's arena; bn.* params (aux gradients) and the stats form a second one
  assert.equal(kernelLabels(exe.plan).filter((l) => l === "ema_update").length, 2);
  const cpu = await Promise.all(tracked.map(async (t) => Float64Array.from(await exe.read(t))));
  for (let step = 0; step < 3; step++) {
    exe.write(x, randn(10 + step, 40).map((v) => v + 1));
    exe.write(lab, Int32Array.from({ length: 8 }, (_, i) => (i * 3 + step) % 6));
    opt.prepareStep(exe);
    await exe.run([loss]);
    for (let k = 0; k < tracked.length; k++) {
      const now = await exe.read(tracked[k]);
      const shadow = await exe.read(ema.shadows.get(tracked[k])!);
      let changed = false;
      for (let i = 0; i < now.length; i++) {
        const prev = cpu[k][i];
        cpu[k][i] = d * cpu[k][i] + (1 - d) * now[i];
        changed ||= Math.abs(now[i] - prev) > 1e-6;
        const err = Math.abs(shadow[i] - cpu[k][i]);
        assert.ok(
          err <= 1e-6 * (1 + Math.abs(cpu[k][i])),
          `step ${step} ${tracked[k].name}[${i}]: ${shadow[i]} vs ${cpu[k][i]}`,
        );
      }
      assert.ok(changed, `step ${step}: ${tracked[k].name} moved, so the test sees the average`);
    }
  }
  // swap: the model holds the EMA weights, the shadows the trained ones; a second swap restores
  const w = tracked[0];
  const [trained, avg] = [await exe.read(w), await exe.read(ema.shadows.get(w)!)];
  await ema.swap(exe);
  assert.deepEqual(await exe.read(w), avg);
  assert.deepEqual(await exe.read(ema.shadows.get(w)!), trained);
  assert.deepEqual((await ema.read(exe)).get("fc.weight"), trained);
  await ema.swap(exe);
  assert.deepEqual(await exe.read(w), trained);
  // reset: shadows = current weights
  await ema.reset(exe);
  assert.deepEqual(await exe.read(ema.shadows.get(w)!), trained);
  assert.equal(ema.bytes, 4 * (30 + 6 * 5));
  exe.destroy();
});

test("ema: per-param AdamW (no arenas) and explicit sources", async () => {
  const { g, x, lab, loss, tracked } = model();
  const opt = new AdamW(g, grad(loss), { lr: 0.05, fused: false });
  const ema = new ModelEma(g, { decay: 0.5, sources: tracked.slice(0, 2), name: "avg" });
  const exe = await compile([loss], { effects: [...batchNormUpdates(g), ...opt.effects, ...ema.effects] });
  assert.equal(kernelLabels(exe.plan).filter((l) => l === "ema_update").length, 1);
  const w0 = await exe.read(tracked[0]);
  exe.write(x, randn(5, 40));
  exe.write(lab, Int32Array.from({ length: 8 }, (_, i) => i % 6));
  opt.prepareStep(exe);
  await exe.run([loss]);
  const w1 = await exe.read(tracked[0]), s = await exe.read(g.byName("avg.fc.weight"));
  s.forEach((v, i) => assert.ok(Math.abs(v - (0.5 * w0[i] + 0.5 * w1[i])) < 1e-6, `avg[${i}]`));
  exe.destroy();
});

test("ema: errors", () => {
  const { g, tracked, x } = model();
  assertThrowsMsg(() => new ModelEma(g, { decay: 1.5 }), "decay");
  assertThrowsMsg(() => new ModelEma(g, { sources: [x] }), "not an f32 param or state");
  assertThrowsMsg(() => new ModelEma(g, { sources: [tracked[0], tracked[0]] }), "twice");
  const h = new Graph();
  const e = h.state("e", [3]), p = h.param("p", [4]);
  assertThrowsMsg(() => emaUpdate([e], [p], 0.9), "ema_update", "does not match");
  assertThrowsMsg(() => emaUpdate([h.param("q", [4])], [p], 0.9), "ema_update", "not an f32 state");
});

test("ema: a tracked param's arena must be tracked whole", () => {
  const { g, loss, tracked } = model();
  new AdamW(g, grad(loss));
  assertThrowsMsg(() => new ModelEma(g, { sources: [tracked[0]] }), "fc.bias", "not tracked");
});
