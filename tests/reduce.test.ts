// Tests of the reduce family: sum/mean/max over every axis vs the f64 reference and finite
// differences (short axes: thread per output; long axes: workgroup per output); the argmax saved by
// max, ties included; the folded workgroup grid on the GPU; and the shared kernel helpers
// (foldGroups, f32lit) that the reduction kernels use.
import { assertClose, checkOp, randParam } from "./harness.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { argmax, max, mean, sum, sumAll } from "../compiler/ops/reduce.ts";
import { mul } from "../compiler/ops/elementwise.ts";
import { grad } from "../compiler/grad.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { getGpu } from "../compiler/runtime/device.ts";
import { Rng } from "../compiler/core/random.ts";
import { f32lit, foldGroups } from "../kernels/kernel.ts";
import { interpret } from "./ref/tensor.ts";

test("reduce: sum/mean/max over each axis, short and long axes", async (t) => {
  // [70, 40] over axis 0 is long (70 > 64) with many outputs: software adapters take a thread per
  // output there, GPUs a workgroup per output; both are forced
  const cases = [[3, 5, 4], [2, 130, 3], [300, 2], [70, 40]].flatMap((shape) =>
    [false, true].map((sw) => ({ shape, ctx: { isSoftware: sw } }))
  );
  for (const { shape, ctx } of cases) {
    for (let axis = 0; axis < shape.length; axis++) {
      for (const [name, f] of [["sum", sum], ["mean", mean], ["max", max]] as const) {
        await t.step(`${name} axis ${axis} of [${shape}]${ctx.isSoftware ? " (software)" : ""}`, async () => {
          await checkOp({ ctx, build: (g) => f(randParam(g, "x", shape), axis, axis === 1) });
        });
      }
    }
  }
});

/** First index of the maximum along axis 1 of a [outer, len, inner] array, computed directly. */
function firstArgmax(x: ArrayLike<number>, [outer, len, inner]: number[]): number[] {
  const out: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let best = 0;
      for (let j = 1; j < len; j++) {
        if (x[(o * len + j) * inner + i] > x[(o * len + best) * inner + i]) best = j;
      }
      out.push(best);
    }
  }
  return out;
}

test("reduce: max's argmax is the first maximum, with ties, short and long (workgroup) axes", async (t) => {
  // small integers make ties the rule; [2, 130, 3] takes the workgroup path (axis > 64), where tied
  // maxima land in different threads (j, j + 64, j + 128) and the tree must keep the lowest index
  for (const shape of [[3, 5, 4], [2, 130, 3], [4, 200, 1]]) {
    await t.step(`max axis 1 of [${shape}]`, async () => {
      const [outer, len, inner] = shape;
      const rng = new Rng(shape[1]);
      const x = Array.from({ length: outer * len * inner }, () => rng.int(4));
      // an all-equal column (answer 0), and one whose only maximum is the last element
      for (let j = 0; j < len; j++) x[j * inner] = 2;
      for (let j = 0; j < len; j++) x[(len + j) * inner] = j === len - 1 ? 9 : 1;
      const g = new Graph();
      const xi = g.input("x", shape);
      const m = max(xi, 1);
      const am = argmax(m);
      const want = firstArgmax(x, shape);
      assert.equal(want[0], 0);
      assert.equal(want[inner], len - 1);
      const cpu = interpret([m, am], new Map([[xi, x]]));
      assert.deepEqual(Array.from(cpu.get(am)!.data), want, "CPU reference argmax");
      const exe = await compile([m, am]);
      exe.write(xi, x);
      const [gm, gam] = await exe.run([m, am]);
      assert.deepEqual(Array.from(gam), want, "GPU argmax");
      assertClose("max", gm, cpu.get(m)!.data, 0);
      exe.destroy();
    });
  }
});

test("reduce: workgroup-per-output path with a folded grid (maxWorkgroupsPerDim 4), fwd + bwd", async (t) => {
  // [2, 130, 3] over axis 1: 6 outputs, one workgroup each → a 4x2 grid with 2 idle workgroups
  for (const [name, f] of [["sum", sum], ["mean", mean], ["max", max]] as const) {
    await t.step(name, async () => {
      const g = new Graph();
      const x = randParam(g, "x", [2, 130, 3]);
      const y = f(x, 1);
      const c = g.input("c", y.shape);
      const gx = grad(sumAll(mul(y, c))).get(x)!;
      const cv = Array.from({ length: c.size }, (_, i) => Math.cos(i));
      const outs: Node[] = [y, gx, ...(name === "max" ? [argmax(y)] : [])];
      const cpu = interpret(outs, new Map([[c, cv]]));
      const gpu = await getGpu();
      const exe = await compile(outs, { ctx: { ...gpu.lowerCtx, maxWorkgroupsPerDim: 4 } });
      const d = exe.plan.dispatches.find((d) => d.label === `${name}_fwd`)!;
      assert.deepEqual(d.workgroups, [4, 2, 1]);
      exe.write(c, cv);
      const got = await exe.run(outs);
      outs.forEach((o, i) => assertClose(`${name} output ${i} (folded)`, got[i], cpu.get(o)!.data, 1e-5));
      exe.destroy();
    });
  }
});

test("kernel helpers: foldGroups folds into y and names the kernel on overflow; f32lit", () => {
  assert.deepEqual(foldGroups(10, { maxWorkgroupsPerDim: 4 }), { workgroups: [4, 3, 1], gx: 4 });
  assert.deepEqual(foldGroups(3, { maxWorkgroupsPerDim: 4 }), { workgroups: [3, 1, 1], gx: 3 });
  assert.deepEqual(foldGroups(0, { maxWorkgroupsPerDim: 4 }), { workgroups: [1, 1, 1], gx: 1 });
  assertThrowsMsg(() => foldGroups(17, { maxWorkgroupsPerDim: 4 }, "sum_fwd"), "sum_fwd", "17", "4x4");
  assert.equal(f32lit(2), "2.0");
  assert.equal(f32lit(0.5), "f32(0.5)");
  assert.equal(f32lit(3.4e38), "f32(3.3999999521443642e+38)");
  // finite in f64 but not in f32
  assertThrowsMsg(() => f32lit(1e39), "f32lit", "1e+39", "finite in f32");
  assertThrowsMsg(() => f32lit(NaN), "f32lit", "NaN", "finite in f32");
});
