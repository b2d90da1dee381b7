// Tests of the soft-target cross-entropy (timm's SoftTargetCrossEntropy): forward and both gradients
// against the f64 reference and finite differences, both kernel layouts; hand-computed values; the
// agreement with the hard-label cross-entropy on smoothed one-hot targets; shape errors.
import { assertClose, checkOp, randParam } from "./harness.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { Rng } from "../compiler/core/random.ts";
import { Graph } from "../compiler/core/ir.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { getGpu } from "../compiler/runtime/device.ts";
import { kernelLabels } from "../compiler/lower/plan.ts";
import { grad } from "../compiler/grad.ts";
import { crossEntropy, softCrossEntropy } from "../compiler/ops/loss.ts";

/** Random rows of non-negative weights summing to `total` (Mixup targets sum to 1). */
function randTargets(n: number, c: number, seed: number, total = 1): number[] {
  const r = new Rng(seed);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const row = Array.from({ length: c }, () => r.next() ** 3);
    const s = row.reduce((a, b) => a + b, 0);
    out.push(...row.map((v) => (v / s) * total));
  }
  return out;
}

const VARIANTS = [{ isSoftware: false }, { isSoftware: true }];
const vname = (c: { isSoftware: boolean }) => c.isSoftware ? "row-per-thread" : "workgroup";

test("soft_cross_entropy: fwd + grad (logits) vs reference and finite differences, odd sizes", async (t) => {
  const shapes: [number, number, number][] = [[5, 7, 1], [3, 1000, 3], [13, 2, 1], [1, 3, 2], [300, 5, 2]];
  for (const [[n, c, std], ctx] of shapes.flatMap((s) => VARIANTS.map((v) => [s, v] as const))) {
    await t.step(`N=${n} C=${c} (${vname(ctx)})`, async () => {
      await checkOp({
        ctx,
        build: (g) => softCrossEntropy(randParam(g, "logits", [n, c], std), g.input("t", [n, c])),
        feeds: { t: randTargets(n, c, n * c) },
      });
    });
  }
});

test("soft_cross_entropy: gradient w.r.t. the targets too, rows not summing to 1", async () => {
  await checkOp({
    build: (g) => softCrossEntropy(randParam(g, "logits", [6, 9], 2), randParam(g, "targets", [6, 9], 0.5)),
  });
});

test("soft_cross_entropy: hand-computed values, kernels, and = cross_entropy on smoothed one-hot", async () => {
  // logits [0, ln 2, ln 5] → softmax [1, 2, 5]/8; targets [0.2, 0.5, 0.3]
  // loss = −(0.2 ln(1/8) + 0.5 ln(2/8) + 0.3 ln(5/8)); dlogits = softmax − t
  const g = new Graph();
  const x = g.param("x", [1, 3], { init: Float32Array.from([0, Math.log(2), Math.log(5)]) });
  const tg = g.input("t", [1, 3]);
  const loss = softCrossEntropy(x, tg);
  const dx = grad(loss).get(x)!;
  const exe = await compile([loss, dx]);
  assert.deepEqual(kernelLabels(exe.plan), [
    "soft_cross_entropy_fwd",
    "soft_cross_entropy_mean",
    "fill",
    "soft_cross_entropy_bwd_logits",
  ]);
  exe.write(tg, Float32Array.from([0.2, 0.5, 0.3]));
  const [l, d] = await exe.run([loss, dx]);
  const want = -(0.2 * Math.log(1 / 8) + 0.5 * Math.log(2 / 8) + 0.3 * Math.log(5 / 8));
  assert.ok(Math.abs(l[0] - want) < 1e-6, `loss ${l[0]} vs ${want}`);
  [1 / 8 - 0.2, 2 / 8 - 0.5, 5 / 8 - 0.3].forEach((w, j) => assert.ok(Math.abs(d[j] - w) < 1e-6, `dx[${j}]`));
  exe.destroy();

  // label smoothing ε over C classes as soft targets = cross_entropy(labelSmoothing ε), value and grad
  const n = 7, c = 11, eps = 0.1;
  const h = new Graph();
  const logits = randParam(h, "z", [n, c], 2);
  const labels = h.input("lab", [n], "i32");
  const soft = h.input("soft", [n, c]);
  const hard = crossEntropy(logits, labels, { labelSmoothing: eps });
  const viaSoft = softCrossEntropy(logits, soft);
  const [gh, gs] = [grad(hard).get(logits)!, grad(viaSoft).get(logits)!];
  const e2 = await compile([hard, viaSoft, gh, gs]);
  const lab = Array.from({ length: n }, (_, i) => (i * 5) % c);
  const onehot = new Float32Array(n * c).fill(eps / c);
  lab.forEach((k, i) => onehot[i * c + k] = 1 - eps + eps / c);
  e2.write(labels, Int32Array.from(lab));
  e2.write(soft, onehot);
  const [a, b, ga, gb] = await e2.run([hard, viaSoft, gh, gs]);
  assertClose("loss", b, a, 1e-6);
  assertClose("grad", gb, ga, 1e-5);
  e2.destroy();
});

test("soft_cross_entropy: GPU with folded grids (maxWorkgroupsPerDim 4)", async () => {
  const gpu = await getGpu();
  for (
    const { n, c, isSoftware } of [{ n: 13, c: 90, isSoftware: false }, { n: 300, c: 7, isSoftware: true }]
  ) {
    await checkOp({
      ctx: { ...gpu.lowerCtx, maxWorkgroupsPerDim: 4, isSoftware },
      build: (g) => softCrossEntropy(randParam(g, "x", [n, c], 2), g.input("t", [n, c])),
      feeds: { t: randTargets(n, c, 3) },
      fdSamples: 4,
    });
  }
});

test("soft_cross_entropy: shape and dtype errors", () => {
  const g = new Graph();
  const x = g.param("x", [2, 3]);
  assertThrowsMsg(
    () => softCrossEntropy(x, g.input("t1", [2, 4])),
    "soft_cross_entropy",
    "[2,4]",
    "same shape",
  );
  assertThrowsMsg(() => softCrossEntropy(x, g.input("ti", [2, 3], "i32")), "soft_cross_entropy", "[2,3]:i32");
  assertThrowsMsg(
    () => softCrossEntropy(g.param("x1", [6]), g.input("t6", [6])),
    "soft_cross_entropy",
    "[N,C]",
  );
});
