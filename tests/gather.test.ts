// Tests of the gather family: gather (embedding lookup, f32 trained / bf16 / f16 frozen tables) and
// scatter_add (its gradient, and an op in its own right), incl. repeated and out-of-range indices;
// a GPU run whose launches are folded into 2-D grids.
import { assertClose, checkOp, randParam } from "./harness.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { grad } from "../compiler/grad.ts";
import { kernelLabels, lower } from "../compiler/lower/plan.ts";
import { Rng } from "../compiler/core/random.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { fromBf16, fromF16, toBf16, toF16 } from "../compiler/core/dtype.ts";
import { getGpu } from "../compiler/runtime/device.ts";
import { interpret } from "./ref/tensor.ts";
import { mul } from "../compiler/ops/elementwise.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { gather, scatterAdd } from "../compiler/ops/gather.ts";

/** n random indices in [0, V), with many repeats when n > V. */
function randIdx(n: number, V: number, seed: number): number[] {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => r.int(V));
}

test("gather: f32 table, trained (scatter_add gradient)", async (t) => {
  const cases: [string, number[], number, number][] = [
    ["rank-1 idx, repeats", [13], 5, 3],
    ["rank-2 idx, repeats", [3, 7], 6, 5],
    ["rank-2 idx, few rows", [4, 9], 2, 7],
    ["rank-1 idx, more rows than uses", [6], 11, 4],
  ];
  for (const [what, S, V, D] of cases) {
    await t.step(`${what}: idx [${S}], table [${V},${D}]`, async () => {
      const n = S.reduce((a, b) => a * b, 1);
      const idx = randIdx(n, V, 7 + V);
      if (n > V) assert.ok(new Set(idx).size < n, "the case must repeat indices");
      await checkOp({
        build: (g) => {
          const y = gather(randParam(g, "table", [V, D]), g.input("idx", S, "i32"));
          assert.deepEqual(y.shape, [...S, D]);
          return y;
        },
        feeds: { idx },
      });
    });
  }
  await t.step("one index repeated everywhere (all rows sum into one)", async () => {
    await checkOp({
      build: (g) => gather(randParam(g, "table", [3, 4]), g.input("idx", [2, 5], "i32")),
      feeds: { idx: new Array(10).fill(1) },
    });
  });
  await t.step("out-of-range indices read zero rows and get no gradient", async () => {
    const r = await checkOp({
      build: (g) => gather(randParam(g, "table", [4, 3]), g.input("idx", [6], "i32")),
      feeds: { idx: [2, -1, 4, 2, 100, 0] },
    });
    assert.ok(r.forwardErr < 1e-6);
  });
  await t.step("plan: gradient is scatter_add, no gradient for the indices", () => {
    const g = new Graph();
    const table = randParam(g, "table", [5, 3]);
    const y = gather(table, g.input("idx", [4], "i32"));
    const gs = grad(sumAll(mul(y, g.input("c", [4, 3]))));
    assert.equal(gs.get(table)!.op, "scatter_add");
    const labels = kernelLabels(lower([gs.get(table)!]));
    // the loss's own backward (fill/expand/mul) precedes; only the scatter dispatches remain of gather
    assert.deepEqual(labels.filter((l) => /scatter|gather/.test(l)), [
      "scatter_add_init",
      "scatter_add_link",
      "scatter_add_sum",
    ]);
  });
});

test("gather: frozen 16-bit tables", async (t) => {
  for (const [dtype, to, from] of [["bf16", toBf16, fromBf16], ["f16", toF16, fromF16]] as const) {
    await t.step(`${dtype} table [7,5] (odd size), idx [2,3] with repeats`, async () => {
      const r = new Rng(99);
      const vals = Float32Array.from({ length: 35 }, () => from(to(r.normal())));
      const res = await checkOp({
        build: (g) => {
          const table = g.param("table", [7, 5], { dtype, trainable: false, init: vals });
          return mul(gather(table, g.input("idx", [2, 3], "i32")), randParam(g, "w", [2, 3, 5]));
        },
        feeds: { idx: [6, 0, 3, 6, 6, 1] },
      });
      assert.ok(res.forwardErr < 1e-6, `${dtype} rows must be exact: ${res.forwardErr}`);
    });
  }
  await t.step("frozen table: no scatter_add in the backward plan", () => {
    const g = new Graph();
    const table = g.param("table", [5, 3], { dtype: "bf16", trainable: false });
    const w = randParam(g, "w", [4, 3]);
    const gs = grad(sumAll(mul(gather(table, g.input("idx", [4], "i32")), w)));
    assert.deepEqual([...gs.keys()], [w]);
    assert.ok(!kernelLabels(lower([...gs.values()])).some((l) => l.startsWith("scatter_add")));
  });
});

test("scatter_add: as an op (fwd + its gather gradient)", async (t) => {
  const cases: [number[], number, number][] = [[[9], 4, 3], [[2, 5], 3, 6], [[5], 8, 1]];
  for (const [S, V, D] of cases) {
    await t.step(`idx [${S}] → [${V},${D}]`, async () => {
      const n = S.reduce((a, b) => a * b, 1);
      const idx = randIdx(n, V, 31 + n);
      idx[n - 1] = V; // one out-of-range index: dropped
      await checkOp({
        build: (g) => scatterAdd(g.input("idx", S, "i32"), randParam(g, "src", [...S, D]), V),
        feeds: { idx },
      });
    });
  }
  await t.step("larger: 600 positions into 37 rows (multi-workgroup link + sum)", async () => {
    await checkOp({
      build: (g) => scatterAdd(g.input("idx", [600], "i32"), randParam(g, "src", [600, 3]), 37),
      feeds: { idx: randIdx(600, 37, 5) },
      fdSamples: 4,
    });
  });
});

test("gather + scatter_add gradient on the GPU with folded grids (maxWorkgroupsPerDim 4)", async () => {
  // 1100 indices into a [400, 3] table: gather_fwd (3300 threads), scatter_add_link (1100) and
  // scatter_add_sum (1200) each need 5..13 workgroups of 256 → folded into 4-wide grids
  const g = new Graph();
  const table = randParam(g, "table", [400, 3]);
  const idx = g.input("idx", [20, 55], "i32");
  const y = gather(table, idx);
  const c = g.input("c", y.shape);
  const gt = grad(sumAll(mul(y, c))).get(table)!;
  const iv = randIdx(idx.size, 400, 3);
  iv[7] = 400; // out of range: a zero row, no gradient
  iv[8] = -1;
  const cv = Array.from({ length: c.size }, (_, i) => Math.cos(i));
  const outs: Node[] = [y, gt];
  const cpu = interpret(outs, new Map<Node, ArrayLike<number>>([[idx, iv], [c, cv]]));
  const gpu = await getGpu();
  const exe = await compile(outs, { ctx: { ...gpu.lowerCtx, maxWorkgroupsPerDim: 4 } });
  for (const l of ["gather_fwd", "scatter_add_link", "scatter_add_sum"]) {
    const d = exe.plan.dispatches.find((d) => d.label === l)!;
    assert.ok(d.workgroups[1] > 1, `${l} is not folded: ${d.workgroups}`);
  }
  exe.write(idx, Int32Array.from(iv));
  exe.write(c, cv);
  const [gy, ggt] = await exe.run(outs);
  assertClose("gather (folded)", gy, cpu.get(y)!.data, 1e-6);
  assertClose("scatter_add gradient (folded)", ggt, cpu.get(gt)!.data, 1e-5);
  exe.destroy();
});

test("gather/scatter_add: shape and dtype errors", () => {
  const g = new Graph();
  const table = g.input("table", [5, 3]);
  const idx = g.input("idx", [2, 4], "i32");
  assertThrowsMsg(() => gather(table, g.input("fidx", [2, 4])), "gather", "[5,3]:f32", "[2,4]:f32", "i32");
  assertThrowsMsg(() => gather(g.input("t1", [15]), idx), "gather", "[15]:f32", "[V, D]");
  assertThrowsMsg(() => gather(g.input("t3", [2, 3, 4]), idx), "gather", "[2,3,4]");
  assertThrowsMsg(() => scatterAdd(idx, g.input("s", [2, 5, 3]), 5), "scatter_add", "[2,4]:i32", "[2,5,3]");
  assertThrowsMsg(() => scatterAdd(idx, g.input("s2", [2, 4, 3]), 0), "scatter_add", "rows=0");
  assertThrowsMsg(
    () => scatterAdd(g.input("fi", [2], "f32"), g.input("s3", [2, 3]), 4),
    "scatter_add",
    "[2]:f32",
  );
});
