// Tests of the optim family: sumsq / clip_coef vs the f64 reference (and sumsq's gradient vs finite
// differences); AdamW steps compiled as effects on the GPU vs the CPU reference applied step by step
// (with/without weight decay, clipping active/inactive); a hand-derived torch.optim.AdamW trace; errors.
import { assertClose, checkOp, randParam } from "./harness.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { Graph, type Node } from "../compiler/ir.ts";
import { grad } from "../compiler/grad.ts";
import { compile } from "../compiler/runtime.ts";
import { kernelLabels, lower } from "../compiler/lower.ts";
import { randn, Rng } from "../compiler/random.ts";
import { linear } from "../compiler/ops/matmul.ts";
import { crossEntropy } from "../compiler/ops/loss.ts";
import { add, mul, scale, sub } from "../compiler/ops/elementwise.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { adamw, clipCoef, sumsq } from "../compiler/ops/optim.ts";
import { AdamW, type AdamWOptions } from "../compiler/optim.ts";
import { interpret } from "./ref/tensor.ts";

test("optim: sumsq fwd + grad (one pass and partials), clip_coef", async (t) => {
  for (const shape of [[5, 3], [70, 123], [4099]]) {
    await t.step(`sumsq [${shape}]`, async () => {
      await checkOp({ build: (g) => sumsq(randParam(g, "x", shape)) });
    });
  }
  await t.step("sumsq with an accumulator", async () => {
    await checkOp({ build: (g) => sumsq(randParam(g, "x", [9000]), sumsq(randParam(g, "y", [3, 2]))) });
  });
  for (const maxNorm of [0.5, 1e4]) {
    await t.step(`clip_coef maxNorm ${maxNorm}`, async () => {
      // sum of squares of 40 N(0,1) values ≈ 40: the coefficient is ≈ 0.08 or exactly 1
      await checkOp({ build: (g) => clipCoef(sumsq(randParam(g, "x", [40])), maxNorm), grad: false });
    });
  }
});

/**
 * A small model with a nonlinear loss, so gradients change as the params move:
 *   loss = Σ (w∘x − y)² + 0.5·Σ (b∘s − z)²   with w [4,7] (decayed under timm rules), b [7] (not).
 */
function toyModel() {
  const g = new Graph();
  const w = randParam(g, "w", [4, 7]);
  const b = randParam(g, "b", [7], 0.5);
  const x = g.input("x", [4, 7]), y = g.input("y", [4, 7]), s = g.input("s", [7]), z = g.input("z", [7]);
  const loss = add(sumsq(sub(mul(w, x), y)), scale(sumsq(sub(mul(b, s), z)), 0.5));
  const feeds = new Map<Node, Float32Array>([
    [x, randn(11, 28)],
    [y, randn(12, 28)],
    [s, randn(13, 7)],
    [z, randn(14, 7)],
  ]);
  return { g, w, b, loss, feeds };
}

async function checkSteps(opts: AdamWOptions, lrs: number[], expectClip?: "active" | "inactive") {
  const { g, w, b, loss, feeds } = toyModel();
  const opt = new AdamW(g, grad(loss), opts);
  const outs = opt.clipCoef ? [loss, opt.clipCoef] : [loss];
  // the decay each param gets (timm default: none for the 1-D bias)
  const noDecay = opts.noDecay ?? ((p: Node) => p.rank <= 1);
  for (const e of opt.effects) {
    const want = noDecay(e.inputs[0]) ? 0 : opts.weightDecay ?? 0.05;
    assert.equal(e.attrs.weightDecay, want, `weight decay of ${e.inputs[0]}`);
  }
  const exe = await compile(outs, { effects: opt.effects });
  const labels = kernelLabels(exe.plan);
  assert.equal(labels.filter((l) => l === "adamw_update").length, 2);
  assert.equal(labels.includes("clip_coef_fwd"), opt.clipCoef !== undefined);
  for (const [n, v] of feeds) exe.write(n, v);

  // CPU state: params start from their (f32) init, moments from zero
  const cpu = new Map<Node, ArrayLike<number>>();
  for (const p of [w, b]) {
    cpu.set(p, (p.init as (n: number) => Float32Array)(p.size));
    const { m, v } = opt.moments.get(p)!;
    cpu.set(m, new Float64Array(p.size));
    cpu.set(v, new Float64Array(p.size));
  }
  for (const lr of lrs) {
    opt.prepareStep(exe, lr);
    const got = await exe.run(outs);
    const env = interpret(outs, new Map([...feeds, ...cpu, [opt.hyper, opt.hyperValues(lr)]]), opt.effects);
    assertClose(`loss at step ${opt.t}`, got[0], env.get(loss)!.data, 1e-5);
    if (expectClip) {
      const coef = got[1][0];
      assert.ok(
        expectClip === "active" ? coef < 0.5 : coef === 1,
        `clip coef ${coef} should be ${expectClip}`,
      );
      assertClose(`clip coef at step ${opt.t}`, got[1], env.get(opt.clipCoef!)!.data, 1e-5);
    }
    for (const p of [w, b]) {
      const { m, v } = opt.moments.get(p)!;
      for (const [what, n] of [["p", p], ["m", m], ["v", v]] as const) {
        const want = env.get(n)!.data;
        assertClose(`${what} of ${p.name} after step ${opt.t}`, await exe.read(n), want, 1e-5);
        cpu.set(n, want);
      }
    }
  }
  exe.destroy();
}

test("optim: AdamW on the GPU matches the CPU reference over 3 steps", async (t) => {
  const lrs = [0.05, 0.03, 0.01];
  await t.step(
    "weight decay 0.05, timm no-decay for the 1-D bias",
    () => checkSteps({ weightDecay: 0.05 }, lrs),
  );
  await t.step(
    "weight decay on every param",
    () => checkSteps({ weightDecay: 0.1, noDecay: () => false }, lrs),
  );
  await t.step("no weight decay", () => checkSteps({ weightDecay: 0 }, lrs));
  await t.step(
    "clipping active (maxNorm 0.5)",
    () => checkSteps({ weightDecay: 0.05, maxGradNorm: 0.5, betas: [0.8, 0.99] }, lrs, "active"),
  );
  await t.step("clipping inactive (maxNorm 1e6)", () => checkSteps({ maxGradNorm: 1e6 }, lrs, "inactive"));
});

test("optim: AdamW reproduces a hand-derived torch.optim.AdamW trace", async () => {
  // torch.optim.AdamW([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1) with a constant
  // gradient c (loss = Σ c·p). Per step: p ← p·(1 − lr·wd) = 0.99·p; m_t = c(1 − 0.9^t),
  // v_t = c²(1 − 0.999^t), so the bias-corrected m̂ = c and sqrt(v̂) = |c| exactly, and
  //   p ← 0.99·p − 0.1 · c / (|c| + 1e-8)      (eps added after the bias correction, as torch does).
  // c = 0.5,  p0 = 1:  update 0.1·0.5/(0.5 + 1e-8) ≈ 0.1
  //   p1 = 0.99 − 0.1 = 0.89;  p2 = 0.8811 − 0.1 = 0.7811;  p3 = 0.773289 − 0.1 = 0.673289
  // c = 1e-8, p0 = −2: eps is as large as |c|, update 0.1·1e-8/(2e-8) = 0.05 (with eps inside the
  //   bias correction it would be ≈ 0.003)
  //   p1 = −1.98 − 0.05 = −2.03;  p2 = −2.0097 − 0.05 = −2.0597;  p3 = −2.039103 − 0.05 = −2.089103
  // c = −3,  p0 = 0:   p1 = 0.1;  p2 = 0.099 + 0.1 = 0.199;  p3 = 0.19701 + 0.1 = 0.29701
  const want = [[0.89, -2.03, 0.1], [0.7811, -2.0597, 0.199], [0.673289, -2.089103, 0.29701]];
  // moments of the c = 0.5 element: m = 0.05, 0.095, 0.1355; v = 0.25·(0.001, 0.001999, 0.002997001)
  const wantM = [0.05, 0.095, 0.1355], wantV = [0.00025, 0.00049975, 0.00074925025];
  const g = new Graph();
  const p = g.param("p", [3], { init: Float32Array.from([1, -2, 0]) });
  const c = g.constant([0.5, 1e-8, -3], [3]);
  const loss = sumAll(mul(p, c));
  const opt = new AdamW(g, grad(loss), { lr: 0.1, weightDecay: 0.1, noDecay: () => false });
  const exe = await compile([loss], { effects: opt.effects });
  for (let t = 0; t < 3; t++) {
    opt.prepareStep(exe);
    await exe.run();
    const got = await exe.read(p);
    for (let i = 0; i < 3; i++) {
      assert.ok(
        Math.abs(got[i] - want[t][i]) < 2e-6,
        `step ${t + 1} p[${i}] = ${got[i]}, torch: ${want[t][i]}`,
      );
    }
    const m = await exe.read(opt.moments.get(p)!.m), v = await exe.read(opt.moments.get(p)!.v);
    assert.ok(Math.abs(m[0] - wantM[t]) < 1e-7, `step ${t + 1} m[0] = ${m[0]} vs ${wantM[t]}`);
    assert.ok(Math.abs(v[0] / wantV[t] - 1) < 1e-5, `step ${t + 1} v[0] = ${v[0]} vs ${wantV[t]}`);
  }
  exe.destroy();
});

test("optim: errors (non-state moments, shapes, hyper, reads after the update)", () => {
  const g = new Graph();
  const p = g.param("p", [2, 3]);
  const gp = g.param("gp", [2, 3]);
  const m = g.state("m", [2, 3]), v = g.state("v", [2, 3]);
  const hyper = g.input("hyper", [3]);
  const attrs = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };
  assertThrowsMsg(() => adamw(p, gp, g.param("mp", [2, 3]), v, hyper, attrs), "adamw", "not a state tensor");
  assertThrowsMsg(() => adamw(p, gp, m, g.input("vi", [2, 3]), hyper, attrs), "adamw", "not a state tensor");
  assertThrowsMsg(
    () => adamw(p, g.param("g2", [3, 2]), m, v, hyper, attrs),
    "adamw",
    "[3,2]",
    "does not match",
  );
  assertThrowsMsg(() => adamw(p, gp, m, v, g.input("h4", [4]), attrs), "adamw", "hyper");
  assertThrowsMsg(() => adamw(p, gp, m, v, hyper, { ...attrs, beta1: 1 }), "adamw", "betas");
  assertThrowsMsg(() => adamw(p, gp, m, v, hyper, attrs, g.input("c2", [2])), "adamw", "clipCoef");
  assertThrowsMsg(() => clipCoef(sumsq(p), 0), "clip_coef", "maxNorm");
  assertThrowsMsg(() => sumsq(p, g.input("acc", [2])), "sumsq", "[2]:f32");
  // the optimizer must be built after every reader of the params it updates
  const upd = adamw(p, gp, m, v, hyper, attrs);
  const late = scale(p, 2);
  assertThrowsMsg(() => lower([late], [upd]), "reads", "after");
});

test("optim: a linear classifier trained with crossEntropy + AdamW fits its data", async () => {
  // 3 well-separated Gaussian blobs in 4-D; 40 full-batch steps must drive the loss well down.
  const n = 12, d = 4, k = 3;
  const rng = new Rng(5);
  const labels = Int32Array.from({ length: n }, (_, i) => i % k);
  const data = Float32Array.from({ length: n * d }, (_, j) => {
    const [i, f] = [Math.floor(j / d), j % d];
    return (f === labels[i] ? 3 : 0) + 0.5 * rng.normal();
  });
  const g = new Graph();
  const x = g.input("x", [n, d]), y = g.input("y", [n], "i32");
  const w = randParam(g, "w", [k, d], 0.1), b = randParam(g, "bias", [k], 0.1);
  const loss = crossEntropy(linear(x, w, b), y, { labelSmoothing: 0.1 });
  const opt = new AdamW(g, grad(loss), { lr: 0.1, maxGradNorm: 1 });
  const exe = await compile([loss], { effects: opt.effects });
  exe.write(x, data);
  exe.write(y, labels);
  const losses: number[] = [];
  for (let step = 0; step < 40; step++) {
    opt.prepareStep(exe);
    losses.push((await exe.run([loss]))[0][0]);
  }
  // the floor with ε = 0.1 smoothing over 3 classes is ≈ 0.2
  assert.ok(losses[0] > 0.9 && losses[39] < 0.4, `loss ${losses[0]} → ${losses[39]}`);
  exe.destroy();
});
