// Tests of the batchnorm family: batchNorm training forward + gradients (x, weight, bias) and eval
// forward + gradients vs the f64 references and finite differences (checkOp); running-stat updates
// compiled as effects over 2 steps vs the CPU loop, and vs hand-derived torch.nn.BatchNorm1d numbers;
// dropout (mask statistics, seed determinism, GPU mask = CPU hash, gradient); labels; shape errors.
import "../mod.ts";
import { assertClose, checkOp, randParam } from "./harness.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { batchNorm, batchNormUpdates, dropout } from "../compiler/ops/batchnorm.ts";
import { mul } from "../compiler/ops/elementwise.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { grad } from "../compiler/grad.ts";
import { kernelLabels, lower } from "../compiler/lower/plan.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { getGpu } from "../compiler/runtime/device.ts";
import { randn } from "../compiler/core/random.ts";
import { interpret } from "./ref/tensor.ts";
import { dropoutKeeps } from "./ref/batchnorm.ts";
import { OPS } from "../compiler/ops/table.ts";

/** Running stats [c]: state tensors, by default torch's init (zeros, ones). */
function stats(g: Graph, c: number, mean?: Float32Array, vr?: Float32Array) {
  return {
    runningMean: g.state("rm", [c], { init: mean ?? new Float32Array(c) }),
    runningVar: g.state("rv", [c], { init: vr ?? new Float32Array(c).fill(1) }),
  };
}

const SHAPES = [[7, 5], [60, 17], [300, 5], [3, 20, 17], [2, 150, 5], [9, 70]];

/** Both kernel variants: workgroup reductions (GPUs) and channel-per-thread (software adapters). */
const VARIANTS = [{ isSoftware: false }, { isSoftware: true }];
const vname = (c: { isSoftware: boolean }) => c.isSoftware ? "channel-per-thread" : "workgroup";

test("batchnorm: training forward + gradients (x, weight, bias)", async (t) => {
  for (const [shape, ctx] of SHAPES.flatMap((s) => VARIANTS.map((c) => [s, c] as const))) {
    const c = shape[shape.length - 1];
    await t.step(`batchNorm training [${shape}] (${vname(ctx)})`, async () => {
      await checkOp({
        ctx,
        build: (g) => {
          // per-channel offsets, so the means matter
          const x = g.apply(OPS.scale, [randParam(g, "x", shape, 2)], { factor: 1, offset: 0.7 });
          const w = g.apply(OPS.scale, [randParam(g, "w", [c], 0.5)], { factor: 1, offset: 1 });
          return batchNorm(x, w, randParam(g, "b", [c]), { training: true, ...stats(g, c) });
        },
      });
    });
  }
});

test("batchnorm: eval forward + gradients with non-trivial running stats", async (t) => {
  for (const shape of [[7, 5], [60, 17], [2, 150, 5]]) {
    const c = shape[shape.length - 1];
    await t.step(`batchNorm eval [${shape}]`, async () => {
      const mean = Float32Array.from({ length: c }, (_, i) => Math.sin(i) * 0.5);
      const vr = Float32Array.from({ length: c }, (_, i) => 0.3 + (i % 4) * 0.4);
      await checkOp({
        build: (g) =>
          batchNorm(randParam(g, "x", shape), randParam(g, "w", [c]), randParam(g, "b", [c]), {
            training: false,
            eps: 1e-3,
            ...stats(g, c, mean, vr),
          }),
      });
    });
  }
});

/** Trains nothing: runs `steps` forward passes with update effects, checking y and the stats. */
async function checkUpdates(shape: number[], momentum: number, steps: number) {
  const c = shape[shape.length - 1];
  const g = new Graph();
  const x = g.input("x", shape);
  const w = randParam(g, "w", [c]), b = randParam(g, "b", [c]);
  const s = stats(g, c, randn(3, c), Float32Array.from(randn(4, c), (v) => 1 + 0.5 * Math.abs(v)));
  const y = batchNorm(x, w, b, { training: true, momentum, ...s });
  const effects = batchNormUpdates(g);
  assert.equal(effects.length, 1);
  const exe = await compile([y], { effects });
  assert.ok(kernelLabels(exe.plan).includes("batchnorm_stats_update"));
  const cpu = new Map<Node, ArrayLike<number>>([
    [s.runningMean, s.runningMean.init as Float32Array],
    [s.runningVar, s.runningVar.init as Float32Array],
  ]);
  for (let step = 0; step < steps; step++) {
    const xv = Float32Array.from(randn(10 + step, x.size), (v, i) => 2 * v + (i % c));
    exe.write(x, xv);
    const [got] = await exe.run([y]);
    const env = interpret([y], new Map([...cpu, [x, xv]]), effects);
    assertClose(`y at step ${step + 1}`, got, env.get(y)!.data, 1e-4);
    for (const st of [s.runningMean, s.runningVar]) {
      const want = env.get(st)!.data;
      assertClose(`${st.name} after step ${step + 1}`, await exe.read(st), want, 1e-5);
      cpu.set(st, want);
    }
  }
  exe.destroy();
}

test("batchnorm: running stats updated in place over 2 steps match the CPU loop", async (t) => {
  await t.step("[60,17] momentum 0.1", () => checkUpdates([60, 17], 0.1, 2));
  await t.step("[3,100,5] momentum 0.3", () => checkUpdates([3, 100, 5], 0.3, 2));
});

test("batchnorm: hand-derived torch.nn.BatchNorm1d(2) numbers", async () => {
  // torch: bn = BatchNorm1d(2) (w = 1, b = 0, running 0/1, momentum 0.1), bn.train(),
  //   x = [[1, 2], [3, 6], [5, 10]] ([N=3, C=2]), two calls bn(x):
  // channel 0: mean 3, biased var 8/3, unbiased var 4; channel 1: mean 6, var 32/3, unbiased 16.
  //   y = ±2/sqrt(8/3 + 1e-5) = ±1.2247426 (and ±4/sqrt(32/3 + 1e-5) = ±1.2247443), 0 in the middle
  //   step 1: running_mean = 0.1·[3, 6] = [0.3, 0.6];  running_var = 0.9 + 0.1·[4, 16] = [1.3, 2.5]
  //   step 2: running_mean = 0.9·[0.3, 0.6] + [0.3, 0.6] = [0.57, 1.14]
  //           running_var = 0.9·[1.3, 2.5] + [0.4, 1.6] = [1.57, 3.85]
  // then bn.eval(): bn(x)[0] = ([1, 2] − [0.57, 1.14]) / sqrt([1.57, 3.85] + 1e-5)
  //   = [0.3431771, 0.4382956]
  const g = new Graph();
  const x = g.input("x", [3, 2]);
  const w = g.param("w", [2], { init: Float32Array.from([1, 1]) });
  const b = g.param("b", [2], { init: new Float32Array(2) });
  const s = stats(g, 2);
  const y = batchNorm(x, w, b, { training: true, ...s });
  const yEval = batchNorm(x, w, b, { training: false, ...s });
  const exe = await compile([y], { effects: batchNormUpdates(g) });
  exe.write(x, [1, 2, 3, 6, 5, 10]);
  const near = (got: ArrayLike<number>, want: number[], what: string) =>
    want.forEach((v, i) => assert.ok(Math.abs(got[i] - v) < 2e-6, `${what}[${i}] = ${got[i]}, torch ${v}`));
  const [y1] = await exe.run([y]);
  near(y1, [-1.2247426, -1.2247443, 0, 0, 1.2247426, 1.2247443], "y");
  near(await exe.read(s.runningMean), [0.3, 0.6], "running_mean step 1");
  near(await exe.read(s.runningVar), [1.3, 2.5], "running_var step 1");
  await exe.run();
  const rm = await exe.read(s.runningMean), rv = await exe.read(s.runningVar);
  near(rm, [0.57, 1.14], "running_mean step 2");
  near(rv, [1.57, 3.85], "running_var step 2");
  exe.destroy();
  const ev = await compile([yEval]);
  ev.write(x, [1, 2, 3, 6, 5, 10]);
  ev.write(s.runningMean, rm);
  ev.write(s.runningVar, rv);
  near((await ev.run([yEval]))[0], [0.3431771, 0.4382956], "eval y");
  ev.destroy();
});

test("batchnorm: kernel labels; weight/bias gradients only when asked", () => {
  const g = new Graph();
  const x = g.param("x", [9, 4]);
  const w = g.param("w", [4]), b = g.param("b", [4]);
  const s = stats(g, 4);
  const y = batchNorm(x, w, b, { training: true, ...s });
  const c = g.input("c", [9, 4]);
  const grads = grad(sumAll(mul(y, c)));
  const labels = kernelLabels(lower([...grads.values()], batchNormUpdates(g)));
  for (const l of ["batchnorm_fwd", "batchnorm_sums", "batchnorm_bwd", "batchnorm_stats_update"]) {
    assert.ok(labels.includes(l), labels.join());
  }
  // frozen affine, eval: only the affine dx kernel
  const h = new Graph();
  const xe = h.param("x", [9, 4]);
  const wf = h.param("w", [4], { trainable: false }), bf = h.param("b", [4], { trainable: false });
  const ye = batchNorm(xe, wf, bf, { training: false, ...stats(h, 4) });
  const le = kernelLabels(lower([ye, ...grad(sumAll(ye)).values()]));
  assert.ok(le.includes("batchnorm_eval_fwd") && le.includes("batchnorm_eval_bwd"), le.join());
  assert.ok(!le.includes("batchnorm_sums"), le.join());
  assert.deepEqual(batchNormUpdates(h), []);
});

test("batchnorm: channels beyond maxWorkgroupsPerDim fold into a 2-D grid (GPU, workgroup variant)", async () => {
  const g = new Graph();
  const x = randParam(g, "x", [40, 13]);
  const w = randParam(g, "w", [13]), b = randParam(g, "b", [13]);
  const s = stats(g, 13);
  const y = batchNorm(x, w, b, { training: true, ...s });
  const c = g.input("c", [40, 13]);
  const outs = [y, ...grad(sumAll(mul(y, c))).values()];
  const effects = batchNormUpdates(g);
  const cv = Float32Array.from({ length: c.size }, (_, i) => Math.sin(i));
  const cpu = interpret(outs, new Map([[c, cv]]), effects);
  const gpu = await getGpu();
  const exe = await compile(outs, {
    effects,
    ctx: { ...gpu.lowerCtx, maxWorkgroupsPerDim: 4, isSoftware: false },
  });
  const folded = exe.plan.dispatches.filter((d) => d.workgroups[1] > 1).map((d) => d.label);
  for (const l of ["batchnorm_fwd", "batchnorm_sums"]) {
    assert.ok(folded.includes(l), `${l} not folded (folded: ${folded.join()})`);
  }
  exe.write(c, cv);
  const got = await exe.run(outs);
  outs.forEach((o, i) => assertClose(`${o}`, got[i], cpu.get(o)!.data, 1e-4));
  for (const st of [s.runningMean, s.runningVar]) {
    assertClose(`${st.name}`, await exe.read(st), cpu.get(st)!.data, 1e-5);
  }
  exe.destroy();
});

test("dropout: mask statistics, seed determinism, GPU mask = CPU hash", async () => {
  const n = 100_000, p = 0.3;
  const g = new Graph();
  const x = g.input("x", [n]);
  const seed = g.input("seed", [1], "u32");
  const y = dropout(x, p, seed);
  assert.equal(dropout(x, 0, seed), x);
  const exe = await compile([y]);
  const xv = Float32Array.from({ length: n }, (_, i) => 1 + (i % 7));
  exe.write(x, xv);
  const masks: Uint8Array[] = [];
  for (const s of [12345, 12345, 0xdeadbeef, 1]) {
    exe.write(seed, Uint32Array.from([s]));
    const [out] = await exe.run([y]);
    const mask = Uint8Array.from(out, (v) => (v === 0 ? 0 : 1));
    const dropped = mask.reduce((a, m) => a + 1 - m, 0) / n;
    // std of the fraction is sqrt(p(1 − p)/n) ≈ 0.0014
    assert.ok(Math.abs(dropped - p) < 0.01, `seed ${s}: dropped ${dropped}, p ${p}`);
    for (let i = 0; i < n; i++) {
      const keep = dropoutKeeps(s, i, p);
      assert.equal(mask[i], keep ? 1 : 0, `seed ${s} element ${i}: GPU mask differs from the CPU hash`);
      if (keep) assert.ok(Math.abs(out[i] - xv[i] / (1 - p)) <= 1e-6 * xv[i] / (1 - p), `value at ${i}`);
    }
    masks.push(mask);
  }
  const differ = (a: Uint8Array, b: Uint8Array) => a.reduce((s, v, i) => s + (v !== b[i] ? 1 : 0), 0) / n;
  assert.equal(differ(masks[0], masks[1]), 0, "same seed, same mask");
  // independent masks disagree on 2p(1 − p) = 42% of the elements
  for (const k of [2, 3]) {
    const d = differ(masks[0], masks[k]);
    assert.ok(Math.abs(d - 2 * p * (1 - p)) < 0.02, `different seeds: masks differ on ${d}`);
  }
  exe.destroy();
});

test("dropout: forward + gradient vs the reference (fixed seed), u32 and i32 seeds", async (t) => {
  for (const [shape, p, dtype, s] of [[[7, 5], 0.5, "u32", 7], [[3, 41, 9], 0.1, "i32", -3]] as const) {
    await t.step(`dropout [${shape}] p ${p} ${dtype} seed`, async () => {
      await checkOp({
        build: (g) => dropout(randParam(g, "x", [...shape]), p, g.input("seed", [1], dtype)),
        feeds: { seed: [s] },
      });
    });
  }
});

test("batchnorm/dropout: shape errors name the op and the shapes", () => {
  const g = new Graph();
  const x = g.input("x", [7, 5]);
  const w = g.param("w", [5]), b = g.param("b", [5]);
  const s = stats(g, 5);
  assertThrowsMsg(
    () => batchNorm(x, g.param("w6", [6]), b, { training: true, ...s }),
    "batchnorm",
    "[7,5]",
    "[6]",
    "weight [C]",
  );
  assertThrowsMsg(
    () => batchNorm(x, w, g.param("b2", [1, 5]), { training: false, ...s }),
    "batchnorm",
    "[1,5]",
  );
  // running stats must be state tensors of shape [C]
  assertThrowsMsg(
    () => batchNorm(x, w, b, { training: true, runningMean: g.param("pm", [5]), runningVar: s.runningVar }),
    "batchnorm",
    "state",
  );
  assertThrowsMsg(
    () => batchNorm(x, w, b, { training: true, runningMean: s.runningMean, runningVar: g.state("rv4", [4]) }),
    "batchnorm",
    "[4]",
    "[5]",
  );
  // C mismatch between x and the affine/stats
  const x6 = g.input("x6", [7, 6]);
  assertThrowsMsg(() => batchNorm(x6, w, b, { training: true, ...s }), "batchnorm", "[7,6]", "[6]");
  // one row cannot give an unbiased variance (torch refuses too)
  assertThrowsMsg(
    () => batchNorm(g.input("x1", [1, 5]), w, b, { training: true, ...s }),
    "batchnorm",
    "[1,5]",
  );
  assertThrowsMsg(
    () => batchNorm(g.input("xi", [7, 5], "i32"), w, b, { training: true, ...s }),
    "batchnorm",
    "i32",
  );
  const seed = g.input("seed", [1], "u32");
  assertThrowsMsg(() => dropout(x, 1, seed), "dropout", "p in [0, 1)");
  assertThrowsMsg(() => dropout(x, 0.2, g.input("fs", [1])), "dropout", "[1]:f32", "seed");
  assertThrowsMsg(() => dropout(x, 0.2, g.input("s2", [2], "u32")), "dropout", "[2]:u32");
  // the update must come after every reader of the running stats
  const y = batchNorm(x, w, b, { training: true, ...s });
  const late = batchNorm(x, w, b, { training: false, ...s });
  assertThrowsMsg(() => lower([y, late], batchNormUpdates(g)), "reads", "after");
});
