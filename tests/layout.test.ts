// Tests of the layout family: reshape (alias), permute/transpose, slice (+ slice_bwd), concat.
// Each op: GPU forward vs CPU reference, gradient rule vs finite differences, GPU backward vs CPU.
import { checkOp, randParam } from "./harness.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { Graph } from "../compiler/core/ir.ts";
import { grad } from "../compiler/grad.ts";
import { kernelLabels, lower } from "../compiler/lower/plan.ts";
import { scale } from "../compiler/ops/elementwise.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { concat, permute, reshape, slice, transpose } from "../compiler/ops/layout.ts";
import { canonicalPerm } from "../kernels/layout.ts";

test("layout: reshape is an alias (no kernel) and gradients flow through it", async (t) => {
  await t.step("plan of reshape + scale has one dispatch", () => {
    const g = new Graph();
    const x = g.input("x", [4, 6]);
    const y = scale(reshape(x, [3, -1]), 2);
    assert.deepEqual(y.shape, [3, 8]);
    assert.deepEqual(kernelLabels(lower([y])), ["scale"]);
  });
  await t.step("grad through reshape (fwd + bwd vs CPU)", async () => {
    await checkOp({ build: (g) => scale(reshape(randParam(g, "x", [2, 3, 5]), [5, 6]), -1.5) });
  });
  await t.step("reshape error", () => {
    const g = new Graph();
    assertThrowsMsg(() => reshape(g.input("x", [4, 6]), [5, 5]), "reshape", "[4,6]");
  });
});

test("layout: permute / transpose of 2-D, 3-D, 4-D", async (t) => {
  const cases: [number[], number[]][] = [
    [[3, 5], [1, 0]],
    [[7, 1], [1, 0]],
    [[2, 3, 5], [2, 0, 1]],
    [[2, 3, 5], [1, 2, 0]],
    [[2, 3, 5], [0, 2, 1]],
    [[3, 1, 4, 5], [0, 2, 1, 3]],
    [[2, 3, 4, 5], [3, 1, 0, 2]],
    [[2, 3, 4, 5], [0, 2, 3, 1]],
  ];
  for (const [shape, perm] of cases) {
    await t.step(`permute [${shape}] by [${perm}]`, async () => {
      await checkOp({ build: (g) => permute(randParam(g, "x", shape), perm) });
    });
  }
  await t.step("tiled transposes spanning several 16x16 tiles, odd sizes", async () => {
    await checkOp({ build: (g) => permute(randParam(g, "x", [37, 19]), [1, 0]), fdSamples: 6 });
    await checkOp({ build: (g) => permute(randParam(g, "x", [3, 17, 33]), [0, 2, 1]), fdSamples: 6 });
    await checkOp({ build: (g) => permute(randParam(g, "x", [2, 18, 3, 7]), [0, 2, 3, 1]), fdSamples: 6 });
  });
  await t.step("kernel choice: tiled for (batched) 2-D transposes, general otherwise", () => {
    const label = (shape: number[], perm: number[]) => {
      const g = new Graph();
      return kernelLabels(lower([permute(g.input("x", shape), perm)]));
    };
    assert.deepEqual(label([4, 6], [1, 0]), ["permute_tiled"]);
    assert.deepEqual(label([2, 3, 4, 5], [0, 2, 3, 1]), ["permute_tiled"]); // = [2,3,20] by [0,2,1]
    assert.deepEqual(label([2, 3, 4, 5], [0, 2, 1, 3]), ["permute_fwd"]); // inner axis stays
    assert.deepEqual(label([2, 3, 4, 5], [3, 1, 0, 2]), ["permute_fwd"]);
    assert.deepEqual(canonicalPerm([2, 3, 4, 5], [0, 2, 3, 1]), { shape: [2, 3, 20], perm: [0, 2, 1] });
    assert.deepEqual(canonicalPerm([3, 1, 4], [2, 1, 0]), { shape: [3, 4], perm: [1, 0] });
    assert.deepEqual(canonicalPerm([2, 3, 5], [2, 0, 1]), { shape: [6, 5], perm: [1, 0] });
  });
  await t.step("transpose(x, 1, -1) of [3,4,5]", async () => {
    await checkOp({
      build: (g) => {
        const y = transpose(randParam(g, "x", [3, 4, 5]), 1, -1);
        assert.deepEqual(y.shape, [3, 5, 4]);
        return y;
      },
    });
  });
  await t.step("permute of an i32 tensor", async () => {
    await checkOp({
      build: (g) => permute(g.input("idx", [2, 3], "i32"), [1, 0]),
      feeds: { idx: [1, -2, 3, 40, 5, 6] },
    });
  });
  await t.step("identity permute is a no-op", () => {
    const g = new Graph();
    const x = g.input("x", [2, 3]);
    assert.equal(permute(x, [0, 1]), x);
  });
  await t.step("bad perms", () => {
    const g = new Graph();
    const x = g.input("x", [2, 3, 4]);
    assertThrowsMsg(() => permute(x, [0, 1]), "permute", "[2,3,4]", "permutation");
    assertThrowsMsg(() => permute(x, [0, 1, 1]), "permute", "[2,3,4]", "permutation");
    assertThrowsMsg(() => permute(x, [0, 1, 3]), "permute", "[2,3,4]");
    assertThrowsMsg(() => transpose(x, 0, 3), "transpose", "axis 3");
    const h = g.param("h", [2, 3], { dtype: "bf16", trainable: false });
    assertThrowsMsg(() => permute(h, [1, 0]), "permute", "[2,3]:bf16", "32-bit");
  });
});

test("layout: slice on every axis, negative indices", async (t) => {
  const shape = [4, 5, 3];
  const cases: [number, number, number][] = [
    [0, 1, 3],
    [0, -1, 4],
    [1, 0, 2],
    [1, -4, -1],
    [2, 2, 3],
    [2, 0, -1],
    [-1, 1, 3],
  ];
  for (const [axis, start, end] of cases) {
    await t.step(`slice [${shape}] axis ${axis} ${start}:${end}`, async () => {
      await checkOp({ build: (g) => slice(randParam(g, "x", shape), axis, start, end) });
    });
  }
  await t.step("slice of a 1-D tensor, default end", async () => {
    await checkOp({
      build: (g) => {
        const y = slice(randParam(g, "x", [9]), 0, 4);
        assert.deepEqual(y.shape, [5]);
        return y;
      },
    });
  });
  await t.step("default end on a negative and on a middle axis", async () => {
    await checkOp({
      build: (g) => {
        const y = slice(randParam(g, "x", shape), -1, 1);
        assert.deepEqual(y.shape, [4, 5, 2]);
        return y;
      },
    });
    await checkOp({
      build: (g) => {
        const y = slice(randParam(g, "x", shape), 1, -2);
        assert.deepEqual(y.shape, [4, 2, 3]);
        return y;
      },
    });
  });
  await t.step("full slice is a no-op; shapes", () => {
    const g = new Graph();
    const x = g.input("x", [4, 5]);
    assert.equal(slice(x, 1, 0, 5), x);
    assert.equal(slice(x, 1, -5), x);
    assert.deepEqual(slice(x, 1, -3, -1).shape, [4, 2]);
  });
  await t.step("slice errors: out of range, empty, bad axis", () => {
    const g = new Graph();
    const x = g.input("x", [4, 5]);
    assertThrowsMsg(() => slice(x, 1, 0, 6), "slice", "[4,5]", "end <= 5");
    assertThrowsMsg(() => slice(x, 1, -6, 2), "slice", "[4,5]", "-1:2");
    assertThrowsMsg(() => slice(x, 0, 2, 2), "slice", "[4,5]", "non-empty");
    assertThrowsMsg(() => slice(x, 0, 3, 1), "slice", "[4,5]", "non-empty");
    assertThrowsMsg(() => slice(x, 2, 0, 1), "slice", "axis 2");
  });
});

test("layout: concat of 2 and 3 inputs on axes 0, 1, last", async (t) => {
  const cases: [string, number[][], number][] = [
    ["2 on axis 0", [[2, 3], [5, 3]], 0],
    ["2 on axis 1", [[3, 2, 4], [3, 5, 4]], 1],
    ["2 on last", [[2, 3, 1], [2, 3, 4]], -1],
    ["3 on axis 0", [[1, 4], [3, 4], [2, 4]], 0],
    ["3 on axis 1", [[2, 3, 3], [2, 1, 3], [2, 4, 3]], 1],
    ["3 on last", [[3, 2], [3, 5], [3, 1]], 2 - 1],
  ];
  for (const [what, shapes, axis] of cases) {
    await t.step(`concat ${what}: ${shapes.map((s) => `[${s}]`).join(" ")}`, async () => {
      await checkOp({ build: (g) => concat(shapes.map((s, k) => randParam(g, `x${k}`, s)), axis) });
    });
  }
  await t.step("concat of 10 inputs (more than 8 bindings), one dispatch each", async () => {
    const build = (g: Graph) =>
      concat(Array.from({ length: 10 }, (_, k) => randParam(g, `x${k}`, [2, 1 + (k % 3)])), 1);
    const g = new Graph();
    assert.deepEqual(kernelLabels(lower([build(g)])), new Array(10).fill("concat_fwd"));
    await checkOp({ build, fdSamples: 4 });
  });
  await t.step("concat of the same tensor twice, only one input trainable", async () => {
    await checkOp({
      build: (g) => {
        const a = randParam(g, "a", [2, 3]);
        const c = g.param("c", [2, 2], { trainable: false, init: new Float32Array([1, 2, 3, 4]) });
        return concat([a, c, a], 1);
      },
    });
  });
  await t.step("gradient of concat is slices of dy (plan labels)", () => {
    const g = new Graph();
    const a = randParam(g, "a", [2, 3]), b = randParam(g, "b", [2, 4]);
    const gs = grad(sumAll(concat([a, b], 1)));
    assert.equal(gs.get(a)!.op, "slice");
    assert.equal(gs.get(b)!.op, "slice");
  });
  await t.step("concat errors: rank, dim, dtype mismatch", () => {
    const g = new Graph();
    const a = g.input("a", [2, 3]), b = g.input("b", [2, 3, 1]), c = g.input("c", [4, 4]);
    assertThrowsMsg(() => concat([a, b], 0), "concat", "[2,3]", "[2,3,1]", "rank 2");
    assertThrowsMsg(() => concat([a, c], 0), "concat", "[2,3]", "[4,4]", "axis 0");
    assertThrowsMsg(() => concat([a, g.input("i", [2, 3], "i32")], 0), "concat", "[2,3]:i32");
    assertThrowsMsg(() => concat([a, a], 2), "concat", "axis 2");
    assertThrowsMsg(() => concat([], 0), "concat");
  });
});
