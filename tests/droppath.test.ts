// Tests of drop path (stochastic depth): whole samples zeroed or scaled by 1/(1 − p); the GPU mask
// equals the CPU hash; expectation over seeds ≈ x; streams independent; the backward applies the same
// mask; forward + gradient vs the reference; the block option and timm's linspace rates; errors.
import { checkOp, randParam } from "./harness.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { Graph } from "../compiler/core/ir.ts";
import { dropPath } from "../compiler/ops/droppath.ts";
import { mul } from "../compiler/ops/elementwise.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { grad } from "../compiler/grad.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { dropPathKeeps } from "./ref/droppath.ts";
import { dropPathRates, transformerBlock } from "../nn/block.ts";

test("drop_path: rows exactly zero or x/(1 − p), GPU mask = CPU hash, rate ≈ p, mean over seeds ≈ x", async () => {
  const b = 4000, per = 6, p = 0.25;
  const g = new Graph();
  const x = g.input("x", [b, 2, 3]);
  const seed = g.input("seed", [1], "u32");
  const y = dropPath(x, p, seed, 7);
  assert.equal(dropPath(x, 0, seed), x);
  const exe = await compile([y]);
  const xv = Float32Array.from({ length: b * per }, (_, i) => 1 + ((i * 7) % 11));
  exe.write(x, xv);
  const sum = new Float64Array(b * per);
  const seeds = 40;
  for (let s = 0; s < seeds; s++) {
    exe.write(seed, Uint32Array.from([1000 + s * 7919]));
    const [out] = await exe.run([y]);
    let dropped = 0;
    for (let r = 0; r < b; r++) {
      const keep = dropPathKeeps(1000 + s * 7919, 7, r, p);
      dropped += keep ? 0 : 1;
      for (let j = 0; j < per; j++) {
        const i = r * per + j;
        const want = keep ? xv[i] / (1 - p) : 0;
        if (Math.abs(out[i] - want) > 1e-6 * Math.abs(want)) {
          throw new Error(`seed ${s} sample ${r} elem ${j}: ${out[i]} vs ${want} (keep ${keep})`);
        }
        sum[i] += out[i];
      }
    }
    // std of the drop fraction: sqrt(p(1 − p)/b) ≈ 0.007
    assert.ok(Math.abs(dropped / b - p) < 0.03, `seed ${s}: dropped ${dropped / b}`);
  }
  // E[y] = x: the mean over 40 seeds of each element is within a few std of x (std ≈ x·sqrt(p/(1−p)/40))
  let worst = 0;
  for (let i = 0; i < b * per; i++) worst = Math.max(worst, Math.abs(sum[i] / seeds / xv[i] - 1));
  let meanErr = 0;
  for (let i = 0; i < b * per; i++) meanErr += sum[i] / seeds / xv[i] - 1;
  assert.ok(Math.abs(meanErr / (b * per)) < 0.01, `mean relative deviation ${meanErr / (b * per)}`);
  assert.ok(worst < 0.6, `worst element deviation ${worst}`);
  exe.destroy();
});

test("drop_path: streams draw independent masks from one seed", () => {
  const p = 0.5, n = 20000;
  let differ = 0, droppedA = 0;
  for (let r = 0; r < n; r++) {
    const a = dropPathKeeps(42, 1, r, p), c = dropPathKeeps(42, 2, r, p);
    differ += a !== c ? 1 : 0;
    droppedA += a ? 0 : 1;
  }
  assert.ok(Math.abs(droppedA / n - p) < 0.02, `drop rate ${droppedA / n}`);
  assert.ok(Math.abs(differ / n - 2 * p * (1 - p)) < 0.02, `streams 1 and 2 differ on ${differ / n}`);
});

test("drop_path: backward applies the forward's mask", async () => {
  const g = new Graph();
  const x = randParam(g, "x", [64, 5]);
  const seed = g.input("seed", [1], "u32");
  const cot = g.input("c", [64, 5]);
  const y = dropPath(x, 0.4, seed, 3);
  const dx = grad(sumAll(mul(y, cot))).get(x)!;
  const exe = await compile([y, dx]);
  const cv = Float32Array.from({ length: 320 }, (_, i) => Math.cos(i) + 2);
  exe.write(cot, cv);
  exe.write(seed, Uint32Array.from([99]));
  const [yv, dv] = await exe.run([y, dx]);
  let zeros = 0;
  for (let i = 0; i < 320; i++) {
    const keep = dropPathKeeps(99, 3, Math.floor(i / 5), 0.4);
    assert.equal(yv[i] === 0, !keep, `forward mask at ${i}`);
    const want = keep ? cv[i] / 0.6 : 0;
    assert.ok(Math.abs(dv[i] - want) <= 1e-6 * want, `dx[${i}] ${dv[i]} vs ${want}`);
    zeros += keep ? 0 : 1;
  }
  assert.ok(zeros > 0 && zeros < 320, "some samples dropped, some kept");
  exe.destroy();
});

test("drop_path: forward + gradient vs the reference (u32 and i32 seeds)", async (t) => {
  for (const [shape, p, dtype, s] of [[[7, 5], 0.5, "u32", 7], [[9, 4, 3], 0.2, "i32", -3]] as const) {
    await t.step(`[${shape}] p ${p} ${dtype}`, async () => {
      await checkOp({
        build: (g) => dropPath(randParam(g, "x", [...shape]), p, g.input("seed", [1], dtype), 11),
        feeds: { seed: [s] },
      });
    });
  }
});

test("drop_path: block option drops whole residual branches; timm's linspace rates", async () => {
  assert.deepEqual(dropPathRates(0.1, 3), [0, 0.05, 0.1]);
  assert.deepEqual(dropPathRates(0.1, 1), [0]);
  assert.deepEqual(dropPathRates(0.2, 5).map((r) => +r.toFixed(12)), [0, 0.05, 0.1, 0.15, 0.2]);
  assertThrowsMsg(() => dropPathRates(1, 3), "dropPathRates", "[0, 1)");
  // with rate p, each sample's output is x + a·branch_attn + b·branch_mlp, a, b ∈ {0, 1/(1 − p)}
  const g = new Graph();
  const x = randParam(g, "x", [8, 3, 16]);
  const seed = g.input("seed", [1], "u32");
  const y = transformerBlock(g, x, "blocks.0", { dim: 16, heads: 2, dropPath: { rate: 0.5, seed } });
  const labels = g.nodes.filter((n) => n.op === "drop_path");
  assert.equal(labels.length, 2, "two drop_path nodes (attn and mlp branches)");
  assert.ok(labels[0].attrs.stream !== labels[1].attrs.stream, "distinct streams");
  const exe = await compile([y, x]);
  const [xv] = await exe.run([x]);
  // a seed whose masks drop both branches of some sample: that sample's output is x exactly
  let found = false;
  for (let s = 1; s < 50 && !found; s++) {
    exe.write(seed, Uint32Array.from([s]));
    const [yv] = await exe.run([y]);
    for (let r = 0; r < 8; r++) {
      const keepA = dropPathKeeps(s, labels[0].attrs.stream as number, r, 0.5);
      const keepM = dropPathKeeps(s, labels[1].attrs.stream as number, r, 0.5);
      const same = yv.slice(r * 48, (r + 1) * 48).every((v, j) => v === xv[r * 48 + j]);
      assert.equal(same, !keepA && !keepM, `seed ${s} sample ${r}: output = x iff both branches dropped`);
      found ||= same;
    }
  }
  assert.ok(found, "some sample had both branches dropped");
  exe.destroy();
});

test("drop_path: shape and attr errors", () => {
  const g = new Graph();
  const x = g.input("x", [4, 3]);
  assertThrowsMsg(() => dropPath(x, 0.1, g.input("s", [2], "u32")), "drop_path", "seed [1]");
  assertThrowsMsg(() => dropPath(x, 0, g.input("sf", [1], "f32")), "drop_path", "seed");
  assertThrowsMsg(() => dropPath(x, 1, g.input("s1", [1], "u32")), "drop_path", "[0, 1)");
  assertThrowsMsg(() => dropPath(x, 0.1, g.input("s2", [1], "u32"), -1), "drop_path", "stream");
});
