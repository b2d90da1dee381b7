// Issue 11 item 2: divergence is caught on the GPU at the step it happens. The nonfinite_any scan
// (one pass and partials, one tensor and an arena) against its CPU reference; the Trainer's flag names
// the FIRST bad step, however late the loss is read (with clipping, without, and unfused); and the
// checkpoint writer refuses non-finite weights, keeping the last good checkpoint.

import { Graph, type Node } from "../compiler/core/ir.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { nonfiniteAny } from "../compiler/ops/finite.ts";
import { linear } from "../compiler/ops/matmul.ts";
import { crossEntropy } from "../compiler/ops/loss.ts";
import { DivergedError, Trainer } from "../train/trainer.ts";
import { NonFiniteError, readCheckpointState, saveCheckpoint } from "../io/checkpoint.ts";
import { exists } from "../io/fs.ts";
import { interpret } from "./ref/tensor.ts";
import { assert, assertRejectsMsg, test } from "./testing.ts";

test("finite: nonfinite_any flags NaN/±Inf (not large, tiny or negative-zero values) like its reference", async () => {
  const g = new Graph();
  const big = g.input("big", [9000]); // partials: > 256·16 values
  const a = g.input("a", [5]), b = g.input("b", [300]); // an arena of two
  const one = nonfiniteAny([big]);
  const span = nonfiniteAny([a, b], one, true);
  const spanOnly = nonfiniteAny([a, b], undefined, true);
  const exe = await compile([one, span, spanOnly]);
  const cases: [string, number, number][] = [
    ["finite", -1, 0],
    ["NaN last", 8999, NaN],
    ["-Inf first", 0, -Infinity],
    ["Inf in the middle", 4321, Infinity],
  ];
  const edge = Float32Array.from({ length: 9000 }, (_, i) => [3e38, -3e38, 1e-45, -0, 1][i % 5]);
  for (const [what, at, v] of cases) {
    const x = edge.slice();
    if (at >= 0) x[at] = v;
    const bv = new Float32Array(300).fill(2);
    if (what === "Inf in the middle") bv[299] = Infinity; // the arena's second member, last element
    exe.write(big, x);
    exe.write(a, new Float32Array(5));
    exe.write(b, bv);
    const got = (await exe.run([one, span, spanOnly])).map((r) => r[0]);
    const env = interpret(
      [one, span, spanOnly],
      new Map<Node, ArrayLike<number>>([[big, x], [a, [0, 0, 0, 0, 0]], [b, bv]]),
    );
    const want = [one, span, spanOnly].map((n) => env.get(n)!.data[0]);
    assert.deepEqual(got, want, what);
    assert.deepEqual(
      got,
      what === "finite" ? [0, 0, 0] : what === "Inf in the middle" ? [1, 1, 1] : [1, 1, 0],
      what,
    );
  }
  exe.destroy();
});

/** A tiny classifier: x [4, 6] → linear 3 classes (weight and bias), cross-entropy. */
function tiny() {
  const g = new Graph();
  const x = g.input("x", [4, 6]);
  const labels = g.input("labels", [4], "i32");
  const w = g.param("w", [3, 6], { init: Float32Array.from({ length: 18 }, (_, i) => 0.1 * Math.cos(i)) });
  const bias = g.param("b", [3], { init: new Float32Array(3) });
  return { g, x, labels, w, bias, loss: crossEntropy(linear(x, w, bias), labels) };
}

const batch = (k: number, bad: boolean) => {
  const x = Float32Array.from({ length: 24 }, (_, i) => Math.sin(i * 1.3 + k));
  if (bad) x[7] = NaN;
  return x;
};

test("finite: the Trainer names the first bad step, read late (clipped, unclipped, unfused)", async () => {
  for (const opts of [{ maxGradNorm: 1 }, {}, { fused: false }]) {
    const m = tiny();
    const trainer = await Trainer.create(m.loss, { lr: 1e-2, ...opts });
    const feeds = (k: number) =>
      new Map<Node, Float32Array | Int32Array>([[m.x, batch(k, k === 3)], [
        m.labels,
        Int32Array.of(0, 1, 2, 1),
      ]]);
    // steps 1, 2 fine and read; step 3 gets a NaN input; steps 4, 5 are clean data again
    for (let k = 1; k <= 2; k++) assert.ok(Number.isFinite((await trainer.step(feeds(k), 1e-2, true))!));
    assert.equal(await trainer.firstNonFiniteStep(), undefined);
    for (let k = 3; k <= 4; k++) await trainer.step(feeds(k), 1e-2, false);
    assert.equal(await trainer.firstNonFiniteStep(), 3, JSON.stringify(opts));
    const e = await assertRejectsMsg(() => trainer.step(feeds(5), 1e-2, true), "training diverged", "step 3");
    assert.ok(e instanceof DivergedError && e.step === 3);
    trainer.exe.destroy();
  }
});

test("finite: a checkpoint of NaN weights is refused and the last good one kept", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const m = tiny();
    const trainer = await Trainer.create(m.loss, { lr: 1e-2 });
    const params = [m.w, m.bias];
    await saveCheckpoint(`${dir}/ck`, trainer.exe, params, trainer.opt, { step: 0 });
    const w = await trainer.exe.read(m.w) as Float32Array;
    w[5] = NaN;
    trainer.exe.write(m.w, w);
    const e = await assertRejectsMsg(
      () => saveCheckpoint(`${dir}/ck`, trainer.exe, params, trainer.opt, { step: 1 }),
      "non-finite",
      "'w'",
      "element 5",
    );
    assert.ok(e instanceof NonFiniteError);
    assert.equal((await readCheckpointState(`${dir}/ck`)).step, 0);
    const left = [];
    for await (const f of Deno.readDir(dir)) left.push(f.name);
    assert.deepEqual(left, ["ck"]);
    assert.ok(await exists(`${dir}/ck/manifest.json`));
    trainer.exe.destroy();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
