// Tests of the norm family: layerNorm (affine, affine-free, weight-only, bias-only) and rmsNorm (with
// and without weight) forward vs the f64 references, gradient rules vs finite differences, backward
// kernels vs the references (checkOp); frozen bf16/f16 weights (dx flows, no weight gradient is
// built); the folded row grid (rows > maxWorkgroupsPerDim) on the GPU; shape errors.
import "../mod.ts";
import { assertClose, checkOp, randParam } from "./harness.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { layerNorm, rmsNorm } from "../compiler/ops/norm.ts";
import { mul } from "../compiler/ops/elementwise.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { grad } from "../compiler/grad.ts";
import { kernelLabels, lower } from "../compiler/lower/plan.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { fromBf16, fromF16, toBf16, toF16 } from "../compiler/core/dtype.ts";
import { getGpu } from "../compiler/runtime/device.ts";
import { kernelOf } from "../kernels/table.ts";
import { OPS } from "../compiler/ops/table.ts";
import { DEFAULT_LOWER_CTX, type LowerCtx } from "../kernels/kernel.ts";
import { Rng } from "../compiler/core/random.ts";
import { interpret } from "./ref/tensor.ts";

const SHAPES = [[7, 5], [3, 300], [2, 3, 5, 7], [150, 9], [2, 1000], [6]];

/** A frozen [d] weight stored as bf16/f16, with values exactly representable there. */
function frozen(g: Graph, name: string, d: number, dtype: "bf16" | "f16", offset: number): Node {
  const r = new Rng(d * 31 + offset);
  const round = dtype === "bf16" ? (v: number) => fromBf16(toBf16(v)) : (v: number) => fromF16(toF16(v));
  const init = Float32Array.from({ length: d }, () => round(offset + 0.5 * r.normal()));
  return g.param(name, [d], { trainable: false, dtype, init });
}

/** Both kernel variants: workgroup reductions (GPUs) and row-per-thread (software adapters). */
const VARIANTS = [{ isSoftware: false }, { isSoftware: true }];
const vname = (c: { isSoftware: boolean }) => c.isSoftware ? "row-per-thread" : "workgroup";

test("norm: layerNorm affine / affine-free / weight-only / bias-only, fwd + grad", async (t) => {
  for (const shape of SHAPES) {
    const d = shape[shape.length - 1];
    for (const [aff, ctx] of ["wb", "", "w", "b"].flatMap((a) => VARIANTS.map((c) => [a, c] as const))) {
      await t.step(`layerNorm [${shape}] ${aff || "no affine"} (${vname(ctx)})`, async () => {
        await checkOp({
          ctx,
          build: (g) => {
            const x = g.apply(OPS.scale, [randParam(g, "x", shape, 2)], { factor: 1, offset: 0.7 });
            const w = aff.includes("w")
              ? g.apply(OPS.scale, [randParam(g, "w", [d], 0.5)], { factor: 1, offset: 1 })
              : undefined;
            const b = aff.includes("b") ? randParam(g, "b", [d]) : undefined;
            return layerNorm(x, w, b);
          },
        });
      });
    }
  }
});

test("norm: rmsNorm with and without weight, fwd + grad", async (t) => {
  for (const shape of SHAPES) {
    const d = shape[shape.length - 1];
    for (const [withW, ctx] of [true, false].flatMap((w) => VARIANTS.map((c) => [w, c] as const))) {
      await t.step(`rmsNorm [${shape}] ${withW ? "weight" : "no weight"} (${vname(ctx)})`, async () => {
        await checkOp({
          ctx,
          build: (g) => rmsNorm(randParam(g, "x", shape), withW ? randParam(g, "w", [d]) : undefined, 1e-5),
        });
      });
    }
  }
});

test("norm: frozen bf16/f16 weights: forward and dx, no weight-gradient kernel", async (t) => {
  for (const dtype of ["bf16", "f16"] as const) {
    for (const shape of [[7, 5], [3, 300]]) {
      const d = shape[1];
      await t.step(`layerNorm ${dtype} [${shape}]`, async () => {
        await checkOp({
          build: (g) =>
            layerNorm(randParam(g, "x", shape), frozen(g, "w", d, dtype, 1), frozen(g, "b", d, dtype, 0)),
        });
      });
      await t.step(`rmsNorm ${dtype} [${shape}]`, async () => {
        await checkOp({ build: (g) => rmsNorm(randParam(g, "x", shape), frozen(g, "w", d, dtype, 1)) });
      });
    }
  }
  await t.step("plans: weight gradients only when the weight is trainable", () => {
    const labels = (trainable: boolean, kind: "layer" | "rms") => {
      const g = new Graph();
      const x = g.param("x", [9, 6]);
      const w = trainable ? g.param("w", [6]) : frozen(g, "w", 6, "bf16", 1);
      const y = kind === "layer" ? layerNorm(x, w, trainable ? g.param("b", [6]) : undefined) : rmsNorm(x, w);
      const grads = grad(sumAll(mul(y, g.input("c", [9, 6]))));
      return kernelLabels(lower([...grads.values()]));
    };
    assert.ok(labels(true, "layer").includes("norm_wgrad"));
    assert.ok(labels(true, "rms").includes("norm_wgrad"));
    for (const kind of ["layer", "rms"] as const) {
      const l = labels(false, kind);
      assert.ok(l.includes(`${kind}norm_bwd`), l.join());
      assert.ok(!l.includes("norm_wgrad") && !l.includes("sum_fwd"), l.join());
    }
  });
});

test("norm: kernel labels", () => {
  const g = new Graph();
  const x = g.param("x", [4, 8]);
  const w = g.param("w", [8]);
  const b = g.param("b", [8]);
  const grads = grad(sumAll(layerNorm(x, w, b)));
  assert.deepEqual(
    kernelLabels(lower([...grads.values()])).filter((l) => l !== "mul"),
    ["layernorm_fwd", "fill", "expand", "layernorm_bwd", "norm_wgrad", "sum_fwd"],
  );
  assert.deepEqual(kernelLabels(lower([rmsNorm(x)])), ["rmsnorm_fwd"]);
});

/** The kernel lowering of node n on its own. */
const lowerNode = (n: Node, ctx: LowerCtx) => kernelOf(n)(n, ctx);

test("norm: rows beyond maxWorkgroupsPerDim fold into a 2-D grid", async (t) => {
  const ctx = { ...DEFAULT_LOWER_CTX, maxWorkgroupsPerDim: 4 };
  await t.step("lowering: workgroup counts", () => {
    const g = new Graph();
    const x = g.param("x", [7, 5]), big = g.param("big", [13, 70]);
    assert.deepEqual(lowerNode(layerNorm(x), ctx).dispatches[0].workgroups, [4, 2, 1]);
    assert.deepEqual(lowerNode(rmsNorm(big), ctx).dispatches[0].workgroups, [4, 4, 1]);
    assert.deepEqual(lowerNode(rmsNorm(big), DEFAULT_LOWER_CTX).dispatches[0].workgroups, [
      13,
      1,
      1,
    ]);
    // norm_wgrad over 70 columns (2 blocks of 64) × 1 row block = 2 tasks
    const w = g.param("w", [70]);
    const y = layerNorm(big, w);
    const dy = g.input("dy", [13, 70]);
    const part = g.apply(OPS.norm_wgrad, [big, dy, g.aux(y, 1), g.aux(y, 0)], { rowsPerBlock: 4 });
    assert.deepEqual(part.shape, [4, 70]);
    assert.deepEqual(lowerNode(part, ctx).dispatches[0].workgroups, [4, 2, 1]);
  });
  // [13,70] folds the row kernels at 4 per dim; [130,260] at 12 per dim also folds norm_wgrad
  // (5 column blocks × 3 row blocks), and still fits every other kernel of the gradient graph
  const cases = [
    { kind: "layer", shape: [13, 70], max: 4, bias: true },
    { kind: "rms", shape: [13, 70], max: 4, bias: false },
    { kind: "layer", shape: [130, 260], max: 12, bias: false },
    { kind: "rms", shape: [130, 260], max: 12, bias: false },
  ] as const;
  for (const { kind, shape, max, bias } of cases) {
    await t.step(`${kind}Norm [${shape}] fwd + bwd on the GPU with maxWorkgroupsPerDim ${max}`, async () => {
      const g = new Graph();
      const d = shape[1];
      const x = randParam(g, "x", [...shape]);
      const w = randParam(g, "w", [d], 0.5);
      const y = kind === "layer" ? layerNorm(x, w, bias ? randParam(g, "b", [d]) : undefined) : rmsNorm(x, w);
      const c = g.input("c", [...shape]);
      const grads = grad(sumAll(mul(y, c)));
      const outs = [y, ...grads.values()];
      const cv = Float32Array.from({ length: c.size }, (_, i) => Math.sin(i));
      const cpu = interpret(outs, new Map([[c, cv]]));
      const gpu = await getGpu();
      // the workgroup-per-row kernels (what GPUs run) are the ones whose grid folds
      const exe = await compile(outs, {
        ctx: { ...gpu.lowerCtx, maxWorkgroupsPerDim: max, isSoftware: false },
      });
      const folded = exe.plan.dispatches.filter((d) => d.workgroups[1] > 1).map((d) => d.label);
      for (const l of [`${kind}norm_fwd`, `${kind}norm_bwd`, ...(max === 12 ? ["norm_wgrad"] : [])]) {
        assert.ok(folded.includes(l), `${l} not folded (folded: ${folded.join()})`);
      }
      exe.write(c, cv);
      const got = await exe.run(outs);
      outs.forEach((o, i) => assertClose(`${o}`, got[i], cpu.get(o)!.data, 1e-4));
      exe.destroy();
    });
  }
});

test("norm: shape errors name the op and the shapes", () => {
  const g = new Graph();
  const x = g.input("x", [7, 5]);
  const w6 = g.param("w", [6]);
  const w5 = g.param("w5", [5]);
  assertThrowsMsg(() => layerNorm(x, w6), "layernorm", "[7,5]", "[6]", "[5]");
  assertThrowsMsg(() => layerNorm(x, w5, w6), "layernorm", "[6]", "[5]");
  assertThrowsMsg(() => rmsNorm(x, w6), "rmsnorm", "[7,5]", "[6]", "[5]");
  assertThrowsMsg(() => rmsNorm(x, g.param("w2", [1, 5])), "rmsnorm", "[1,5]", "[5]");
  const idx = g.input("idx", [7, 5], "i32");
  assertThrowsMsg(() => layerNorm(idx), "layernorm", "[7,5]:i32", "f32");
  assertThrowsMsg(() => rmsNorm(idx), "rmsnorm", "[7,5]:i32", "f32");
  assertThrowsMsg(() => rmsNorm(x, g.input("wi", [5], "i32")), "rmsnorm", "[5]:i32");
});
