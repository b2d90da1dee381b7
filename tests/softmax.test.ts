// Tests of softmax over the last axis: forward vs the f64 reference, gradient rule vs finite
// differences, softmax_bwd on the GPU vs the reference (checkOp); numerical stability with inputs
// whose exp overflows f32; the folded row grid; shape errors.
import "../mod.ts";
import { assertClose, checkOp, randParam } from "./harness.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { Graph } from "../compiler/core/ir.ts";
import { softmax } from "../compiler/ops/softmax.ts";
import { mul, scale } from "../compiler/ops/elementwise.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { grad } from "../compiler/grad.ts";
import { kernelLabels, lower } from "../compiler/lower/plan.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { getGpu } from "../compiler/runtime/device.ts";
import { kernelOf } from "../kernels/table.ts";
import { OPS } from "../compiler/ops/table.ts";
import { DEFAULT_LOWER_CTX } from "../kernels/kernel.ts";
import { interpret } from "./ref/tensor.ts";

/** Both kernel variants: workgroup reductions (GPUs) and row-per-thread (software adapters). */
const VARIANTS = [{ isSoftware: false }, { isSoftware: true }];
const vname = (c: { isSoftware: boolean }) => c.isSoftware ? "row-per-thread" : "workgroup";

test("softmax: last axis, odd shapes, fwd + grad", async (t) => {
  const shapes = [[7, 5], [3, 300], [2, 3, 5, 7], [2, 1000], [4, 1], [9], [67, 3]];
  for (const [shape, ctx] of shapes.flatMap((s) => VARIANTS.map((c) => [s, c] as const))) {
    await t.step(`softmax [${shape}] (${vname(ctx)})`, async () => {
      await checkOp({ ctx, build: (g) => softmax(randParam(g, "x", shape, 2)) });
    });
  }
  await t.step("axis given as rank-1", async () => {
    await checkOp({ build: (g) => softmax(randParam(g, "x", [3, 4, 6]), 2) });
  });
});

test("softmax: stable for inputs whose exp overflows f32 (x ≈ 100 ± 5)", async (t) => {
  // exp(100) > f32 max: without subtracting the row max every output would be NaN
  for (const ctx of VARIANTS) {
    await t.step(vname(ctx), async () => {
      await checkOp({ ctx, build: (g) => softmax(scale(randParam(g, "x", [5, 33], 5), 1, 100)) });
      await checkOp({ ctx, build: (g) => softmax(scale(randParam(g, "x", [5, 33], 5), 1, -100)) });
    });
  }
});

test("softmax: kernel labels", () => {
  const g = new Graph();
  const x = g.param("x", [4, 8]);
  const gx = grad(sumAll(mul(softmax(x), g.input("c", [4, 8])))).get(x)!;
  assert.deepEqual(kernelLabels(lower([gx])).filter((l) => l.startsWith("softmax")), [
    "softmax_fwd",
    "softmax_bwd",
  ]);
});

test("softmax: rows beyond maxWorkgroupsPerDim fold into a 2-D grid", async (t) => {
  const ctx = { ...DEFAULT_LOWER_CTX, maxWorkgroupsPerDim: 4 };
  await t.step("lowering: workgroup counts", () => {
    const g = new Graph();
    const y = softmax(g.param("x", [2, 7, 30]));
    assert.deepEqual(kernelOf(y)(y, ctx).dispatches[0].workgroups, [4, 4, 1]);
    assert.deepEqual(kernelOf(y)(y, DEFAULT_LOWER_CTX).dispatches[0].workgroups, [14, 1, 1]);
    const dx = g.apply(OPS.softmax_bwd, [y, g.input("dy", [2, 7, 30])], {});
    assert.deepEqual(kernelOf(dx)(dx, ctx).dispatches[0].workgroups, [4, 4, 1]);
  });
  // the row-per-thread variant folds 64-thread workgroups: 300 rows are 5 workgroups
  const cases = [
    { shape: [2, 7, 30], ctx: { maxWorkgroupsPerDim: 4, isSoftware: false } },
    { shape: [2, 150, 3], ctx: { maxWorkgroupsPerDim: 3, isSoftware: true } },
  ];
  for (const { shape, ctx } of cases) {
    await t.step(
      `[${shape}] fwd + bwd on the GPU, ${vname(ctx)}, maxWorkgroupsPerDim ${ctx.maxWorkgroupsPerDim}`,
      async () => {
        const g = new Graph();
        const x = randParam(g, "x", shape, 2);
        const y = softmax(x);
        const c = g.input("c", shape);
        const gx = grad(sumAll(mul(y, c))).get(x)!;
        const cv = Float32Array.from({ length: c.size }, (_, i) => Math.cos(i));
        const cpu = interpret([y, gx], new Map([[c, cv]]));
        const gpu = await getGpu();
        const exe = await compile([y, gx], { ctx: { ...gpu.lowerCtx, ...ctx } });
        for (const l of ["softmax_fwd", "softmax_bwd"]) {
          assert.ok(exe.plan.dispatches.some((d) => d.label === l && d.workgroups[1] > 1), `${l} not folded`);
        }
        exe.write(c, cv);
        const [gy, ggx] = await exe.run([y, gx]);
        assertClose("softmax fwd (folded)", gy, cpu.get(y)!.data, 1e-4);
        assertClose("softmax bwd (folded)", ggx, cpu.get(gx)!.data, 1e-4);
        exe.destroy();
      },
    );
  }
});

test("softmax: shape errors name the op and the shapes", () => {
  const g = new Graph();
  const x = g.input("x", [2, 3]);
  assertThrowsMsg(() => softmax(x, 0), "softmax", "[2,3]", "last axis", "axis 0");
  assertThrowsMsg(() => softmax(x, -2), "softmax", "[2,3]", "last axis");
  assertThrowsMsg(() => softmax(x, 2), "softmax", "out of range");
  assertThrowsMsg(() => softmax(g.input("i", [2, 3], "i32")), "softmax", "[2,3]:i32", "f32");
  assertThrowsMsg(
    () => g.apply(OPS.softmax_bwd, [x, g.input("dy", [3, 2])], {}),
    "softmax_bwd",
    "[2,3]",
    "[3,2]",
  );
});
