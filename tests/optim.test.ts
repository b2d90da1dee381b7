// Tests of the optim family: sumsq / clip_coef vs the f64 reference (and sumsq's gradient vs finite
// differences); AdamW steps compiled as effects on the GPU vs the CPU reference applied step by step
// (with/without weight decay, clipping active/inactive); a hand-derived torch.optim.AdamW trace; errors.
import { assertClose, checkOp, randParam } from "./harness.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { grad } from "../compiler/grad.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { aliasRoot, kernelLabels, lower } from "../compiler/lower/plan.ts";
import { randn, Rng } from "../compiler/core/random.ts";
import { linear } from "../compiler/ops/matmul.ts";
import { crossEntropy } from "../compiler/ops/loss.ts";
import { add, mul, scale, sub } from "../compiler/ops/elementwise.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { adamw, clipCoef, sumsq, sumsqSpan } from "../compiler/ops/optim.ts";
import { reshape } from "../compiler/ops/layout.ts";
import { matmul } from "../compiler/ops/matmul.ts";
import { batchNorm, batchNormUpdates } from "../compiler/ops/batchnorm.ts";
import { AdamW, type AdamWOptions } from "../nn/optim.ts";
import type { Executable } from "../compiler/runtime/executable.ts";
import { loadCheckpoint, saveCheckpoint } from "../io/checkpoint.ts";
import type { CustomOp } from "../kernels/table.ts";
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
  const opt = new AdamW(g, grad(loss), { ...opts, fused: false });
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

test("optim: per-param AdamW (fused: false) on the GPU matches the CPU reference over 3 steps", async (t) => {
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

/**
 * A model for the fused update: odd param sizes (7, 3×5, 33, …: the arenas have padding), decayed
 * (w, u, q1: 2-D) and no-decay (b, c, r: 1-D) params under timm's rule, a frozen param f, a param r used
 * through a reshape, and q1, q2 whose gradients are one node (add's sumTo of the same dy): it cannot
 * lie in the gradient arena twice, so q2 takes the per-param path.
 */
function arenaModel() {
  const g = new Graph();
  let seed = 100;
  const par = (name: string, shape: number[], std = 1) =>
    g.param(name, shape, { init: randn(seed++, shape.reduce((a, b) => a * b, 1), std) });
  const w = par("w", [3, 5]), u = par("u", [2, 3]), b = par("b", [7], 0.5), c = par("c", [33]);
  const r = par("r", [15]), q1 = par("q1", [2, 3]), q2 = par("q2", [2, 3]);
  const f = g.param("f", [7], { trainable: false, init: randn(seed++, 7) });
  const feeds = new Map<Node, Float32Array>();
  const inp = (name: string, shape: number[]) => {
    const x = g.input(name, shape);
    feeds.set(x, randn(seed++, shape.reduce((a, b) => a * b, 1)));
    return x;
  };
  const x = inp("x", [3, 5]), y = inp("y", [3, 5]), s = inp("s", [7]), z = inp("z", [7]);
  const t = inp("t", [33]), y2 = inp("y2", [3, 5]), e = inp("e", [2, 3]), k = inp("k", [2, 3]);
  const terms = [
    sumsq(sub(mul(w, x), y)),
    scale(sumsq(sub(mul(mul(b, f), s), z)), 0.5),
    scale(sumsq(sub(mul(c, c), t)), 0.1),
    sumsq(sub(mul(reshape(r, [3, 5]), x), y2)),
    sumsq(sub(mul(add(q1, q2), e), k)),
    sumsq(sub(mul(u, u), k)),
  ];
  const loss = terms.reduce((a, b) => add(a, b));
  return { g, loss, feeds, params: [w, u, b, c, r, q1, q2], frozen: f };
}

interface Trace {
  /** Per step: loss, and every param / m / v by name. */
  steps: { loss: number; values: Map<string, Float32Array> }[];
  labels: string[];
}

/** Trains arenaModel for `lrs.length` steps; checks every step against the f64 CPU reference. */
async function arenaRun(opts: AdamWOptions, lrs: number[]): Promise<Trace> {
  const { g, loss, feeds, params } = arenaModel();
  const opt = new AdamW(g, grad(loss), opts);
  const outs = opt.gradSumSq ? [loss, opt.gradSumSq] : [loss];
  const exe = await compile(outs, { effects: opt.effects });
  for (const [n, v] of feeds) exe.write(n, v);
  const cpu = new Map<Node, ArrayLike<number>>();
  const tracked = params.flatMap((p) => [p, opt.moments.get(p)!.m, opt.moments.get(p)!.v]);
  for (const p of params) cpu.set(p, p.init as Float32Array);
  const steps: Trace["steps"] = [];
  for (const lr of lrs) {
    opt.prepareStep(exe, lr);
    const got = await exe.run(outs);
    const env = interpret(outs, new Map([...feeds, ...cpu, [opt.hyper, opt.hyperValues(lr)]]), opt.effects);
    assertClose(`loss at step ${opt.t}`, got[0], env.get(loss)!.data, 1e-5);
    if (opt.gradSumSq) assertClose(`Σg² at step ${opt.t}`, got[1], env.get(opt.gradSumSq)!.data, 1e-5);
    const values = new Map<string, Float32Array>();
    for (const n of tracked) {
      const v = await exe.read(n) as Float32Array;
      assertClose(`${n.name} after step ${opt.t}`, v, env.get(n)!.data, 1e-5);
      values.set(n.name!, v);
      cpu.set(n, env.get(n)!.data);
    }
    steps.push({ loss: got[0][0], values });
  }
  exe.destroy();
  return { steps, labels: kernelLabels(exe.plan) };
}

const optimizerLabels = (labels: string[]) => labels.filter((l) => l.startsWith("adamw"));

test("optim: fused AdamW equals the per-param path and the CPU reference over 3 steps", async (t) => {
  const lrs = [0.05, 0.03, 0.01];
  const configs: [string, AdamWOptions][] = [
    ["timm decay (w, u, q1 decayed; b, c, r not)", { weightDecay: 0.05 }],
    ["decay on every param", { weightDecay: 0.1, noDecay: () => false }],
    ["clipping active (maxNorm 0.5)", { weightDecay: 0.05, maxGradNorm: 0.5, betas: [0.8, 0.99] }],
    ["clipping inactive (maxNorm 1e6)", { maxGradNorm: 1e6 }],
    // [w, u, q1] (all decayed) and [b, c, r] (none decayed): 3 × 256-byte slots each
    ["arenas split at 768 bytes, clipping", { maxGradNorm: 1, maxArenaBytes: 768 }],
  ];
  for (const [name, opts] of configs) {
    await t.step(name, async () => {
      const fused = await arenaRun(opts, lrs);
      const single = await arenaRun({ ...opts, fused: false }, lrs);
      // one fused update (two when split) + q2's own; per param: 7
      const split = opts.maxArenaBytes !== undefined;
      assert.deepEqual(optimizerLabels(single.labels), Array(7).fill("adamw_update"));
      const fl = optimizerLabels(fused.labels);
      assert.equal(fl.filter((l) => l === "adamw_update").length, 1, `${fl}`);
      assert.equal(fl.filter((l) => l === "adamw_fused").length, split ? 2 : 1, `${fl}`);
      fused.steps.forEach((st, i) => {
        assert.ok(Math.abs(st.loss - single.steps[i].loss) <= 1e-6 * Math.abs(st.loss), "loss");
        for (const [n, v] of st.values) {
          assertClose(`${n} fused vs per-param, step ${i + 1}`, v, single.steps[i].values.get(n)!, 1e-6);
        }
      });
    });
  }
});

test("optim: clipping measures each gradient arena in one pass (sumsq dispatches)", () => {
  const count = (opts: AdamWOptions) => {
    const { g, loss } = arenaModel();
    const opt = new AdamW(g, grad(loss), { maxGradNorm: 1, ...opts });
    const plan = lower([loss, opt.clipCoef!], opt.effects);
    // the clipping chain: gradSumSq and its accumulators
    const chain = new Set<Node>();
    for (
      let n: Node | undefined = opt.gradSumSq;
      n;
      n = n.inputs[n.op === "sumsq" ? 1 : n.attrs.count as number]
    ) {
      chain.add(n);
    }
    return plan.dispatches.filter((d) => chain.has(d.node)).map((d) => d.label);
  };
  assert.equal(count({ fused: false }).length, 7);
  // one sumsq_span over the arena (its 262 values need no partial pass) + q2's own sumsq
  assert.deepEqual(count({}), ["sumsq_fwd", "sumsq_fwd"]);
});

/** Copies a whole buffer of the plan back (test only: the arena padding is not a node). */
async function readBuffer(exe: Executable, id: number): Promise<Float32Array> {
  const buf = (exe as unknown as { buffers: GPUBuffer[] }).buffers[id];
  const st = exe.device.createBuffer({
    size: buf.size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = exe.device.createCommandEncoder();
  enc.copyBufferToBuffer(buf, 0, st, 0, buf.size);
  exe.device.queue.submit([enc.finish()]);
  await st.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(st.getMappedRange().slice(0));
  st.destroy();
  return out;
}

test("optim: arenas are 256-byte aligned, padding stays zero, params stay readable and writable", async () => {
  const { g, loss, feeds, params, frozen } = arenaModel();
  const opt = new AdamW(g, grad(loss), { maxGradNorm: 1 });
  const exe = await compile([loss], { effects: opt.effects });
  const plan = exe.plan;
  const fusedNode = opt.effects.find((e) => e.op === "adamw_fused")!;
  const arenaParams = params.filter((p) => fusedNode.inputs.includes(p));
  assert.equal(arenaParams.length, 6, "all but q2");
  // decayed params first: w, u, q1, then b, c, r
  assert.deepEqual(fusedNode.inputs.slice(0, 6).map((p) => p.name), ["w", "u", "q1", "b", "c", "r"]);
  const arenas = plan.buffers.filter((b) => b.arena);
  assert.equal(arenas.length, 4, "params, grads, m, v");
  for (const a of arenas) {
    let prevEnd = 0;
    for (const n of a.arena!) {
      const off = plan.offsets.get(n)!;
      assert.equal(off % 256, 0, `${n} at ${off}`);
      assert.ok(off >= prevEnd, `${n} overlaps its predecessor`);
      assert.equal(plan.storage.get(n), a.id);
      prevEnd = off + 4 * n.size;
    }
    assert.equal(a.bytes, prevEnd);
  }
  // every binding of an arena member carries its offset
  for (const d of plan.dispatches) {
    for (const b of d.bindings) {
      if (plan.buffers[b.buffer]?.arena) assert.equal(b.offset % 256, 0, `${d.label} ${b.what}`);
    }
  }
  assert.ok(plan.offsets.get(params[1])! > 0, "u is not first in its arena");
  assert.ok(!plan.offsets.has(frozen) && !plan.offsets.has(params[6]), "f and q2 have buffers of their own");
  for (const [n, v] of feeds) exe.write(n, v);
  for (let i = 0; i < 3; i++) {
    opt.prepareStep(exe);
    await exe.run();
  }
  for (const a of arenas) {
    const all = await readBuffer(exe, a.id);
    const inside = new Set<number>();
    for (const n of a.arena!) {
      for (let j = 0; j < n.size; j++) inside.add(plan.offsets.get(n)! / 4 + j);
    }
    for (let j = 0; j < all.length; j++) {
      if (!inside.has(j)) assert.equal(all[j], 0, `padding at ${j} of ${a.arena![0]}'s arena`);
    }
  }
  // a param written by node lands at its offset, and its neighbours keep their values
  const [w, u, b] = params;
  const before = [await exe.read(w), await exe.read(b)];
  const uNew = Float32Array.from({ length: 6 }, (_, i) => i - 2.5);
  exe.write(u, uNew);
  assert.deepEqual(await exe.read(u), uNew);
  assert.deepEqual(await exe.read(w), before[0]);
  assert.deepEqual(await exe.read(b), before[1]);
  exe.destroy();
});

test("optim: a checkpoint of a fused AdamW round-trips (params, moments, step)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const build = async () => {
      const m = arenaModel();
      const opt = new AdamW(m.g, grad(m.loss), { weightDecay: 0.05 });
      const exe = await compile([m.loss], { effects: opt.effects });
      for (const [n, v] of m.feeds) exe.write(n, v);
      return { ...m, opt, exe };
    };
    const a = await build();
    for (let i = 0; i < 2; i++) {
      a.opt.prepareStep(a.exe, 0.05);
      await a.exe.run();
    }
    await saveCheckpoint(`${dir}/ck`, a.exe, a.params, a.opt, { step: 2 });
    const b = await build();
    const st = await loadCheckpoint(`${dir}/ck`, b.exe, b.params, b.opt);
    assert.equal(st.step, 2);
    assert.equal(b.opt.t, 2);
    // one more step from the loaded state must give the same params and moments
    a.opt.prepareStep(a.exe, 0.02);
    b.opt.prepareStep(b.exe, 0.02);
    const [la] = await a.exe.run([a.loss]), [lb] = await b.exe.run([b.loss]);
    assert.deepEqual(lb, la);
    for (let i = 0; i < a.params.length; i++) {
      const [pa, pb] = [a.params[i], b.params[i]];
      const ma = a.opt.moments.get(pa)!, mb = b.opt.moments.get(pb)!;
      for (const [x, y] of [[pa, pb], [ma.m, mb.m], [ma.v, mb.v]]) {
        assert.deepEqual(await b.exe.read(y), await a.exe.read(x), `${y.name}`);
      }
    }
    a.exe.destroy();
    b.exe.destroy();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("optim: arena errors (a tensor in two spans, mixed spans, span bindings out of order)", () => {
  const g = new Graph();
  const a = g.param("a", [3]), b = g.param("b", [5]), c = g.param("c", [2]);
  const x = scale(a, 2);
  assertThrowsMsg(() => lower([sumsqSpan([a, b]), sumsqSpan([b, c])]), "another span");
  assertThrowsMsg(() => lower([sumsqSpan([a, x])]), "mixes computed and persistent");
  assertThrowsMsg(() => lower([sumsqSpan([a, a])]), "lies in it");
  // the same span declared twice is one arena
  const plan = lower([sumsqSpan([a, b]), sumsqSpan([a, b], sumsq(c))]);
  assert.equal(plan.buffers.filter((buf) => buf.arena).length, 1);
  // a { span } binding must match a declared arena, in order
  const bind = (declare: boolean, bound: string) => g.apply(testSpanBind, [a, b], { declare, bound });
  assertThrowsMsg(() => lower([bind(true, "b,a")]), "does not follow");
  assertThrowsMsg(() => lower([bind(false, "a")]), "does not follow");
  assert.equal(lower([bind(true, "a,b")]).dispatches[0].bindings[0].bytes, 256 + 20);
});
// A custom op (kernels/table.ts CustomOp): binds { span } over its inputs named in attrs.bound
// ("b,a": input 1 then input 0), declaring them a span only when attrs.declare is set.
const testSpanBind: CustomOp<{ declare: boolean; bound: string }> = {
  name: "test_span_bind",
  infer: () => ({ shape: [1], dtype: "f32" }),
  grad: "none",
  spans: (n) => n.attrs.declare ? [n.inputs] : [],
  kernel: (n) => ({
    dispatches: [{
      label: "test_span_bind",
      code: "", // never compiled: lower() alone
      bindings: [{
        name: "x",
        ref: { span: n.attrs.bound.split(",").map((k) => n.inputs[k === "a" ? 0 : 1]) },
      }],
      workgroups: [1, 1, 1],
    }],
  }),
};

test("optim: a gradient that is an extra output (batchnorm's weight) takes the per-param path", () => {
  const g = new Graph();
  const x = g.input("x", [5, 3]), c = g.input("c", [5, 3]);
  const w = g.param("bn.weight", [3]), b = g.param("bn.bias", [3]), lin = randParam(g, "lin", [3, 3]);
  const runningMean = g.state("bn.rm", [3]), runningVar = g.state("bn.rv", [3]);
  const y = batchNorm(matmul(x, lin), w, b, { training: true, runningMean, runningVar });
  const loss = sumsq(mul(y, c));
  const opt = new AdamW(g, grad(loss), { maxGradNorm: 1 });
  assert.equal(aliasRoot(grad(loss).get(w)!).op, "aux");
  const fusedNode = opt.effects.find((e) => e.op === "adamw_fused")!;
  assert.deepEqual(fusedNode.inputs.slice(0, 2).map((p) => p.name), ["lin", "bn.bias"]);
  const single = opt.effects.filter((e) => e.op === "adamw");
  assert.deepEqual(single.map((e) => e.inputs[0].name), ["bn.weight"]);
  // and the plan is valid: arenas for the fused pair, the aux gradient in its pooled buffer
  const plan = lower([loss], [...batchNormUpdates(g), ...opt.effects]);
  assert.equal(plan.buffers.filter((buf) => buf.arena).length, 4);
});
