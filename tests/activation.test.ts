// Tests of the activation family: gelu/silu/relu forward vs the f64 references, their gradient
// rules vs finite differences and their backward kernels vs the f64 references (checkOp), GELU's
// accuracy over its whole range (the WGSL erf), and shape errors.
import { checkOp, randParam } from "./harness.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { Graph } from "../compiler/core/ir.ts";
import { gelu, relu, silu } from "../compiler/ops/activation.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { kernelLabels, lower } from "../compiler/lower/plan.ts";
import { grad } from "../compiler/grad.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { erfc } from "./ref/activation.ts";
import { interpret } from "./ref/tensor.ts";
import { OPS } from "../compiler/ops/table.ts";

const ACTS = [["gelu", gelu], ["silu", silu], ["relu", relu]] as const;

test("activation: gelu/silu/relu fwd + grad on odd shapes", async (t) => {
  for (const shape of [[7, 5], [3, 300], [2, 3, 5, 7], [1]]) {
    for (const [name, f] of ACTS) {
      await t.step(`${name} [${shape}]`, async () => {
        // std 3 reaches GELU's and SiLU's tails as well as the curved middle
        await checkOp({ build: (g) => f(randParam(g, "x", shape, 3)) });
      });
    }
  }
});

test("activation: kernel labels of forward and backward", () => {
  for (const [name, f] of ACTS) {
    const g = new Graph();
    const x = g.param("x", [4, 3]);
    const gx = grad(sumAll(f(x))).get(x)!;
    // the backward kernel recomputes from x: the forward kernel is not needed for the gradient
    assert.deepEqual(kernelLabels(lower([gx])).filter((l) => l.startsWith(name)), [`${name}_bwd`]);
    assert.deepEqual(kernelLabels(lower([f(x)])), [`${name}_fwd`]);
  }
});

test("activation: the f64 reference erfc matches known values", () => {
  const known: [number, number][] = [
    [0.5, 0.4795001221869534],
    [1, 0.15729920705028513],
    [3, 2.209049699858544e-5],
    [5, 1.5374597944280349e-12],
    [-1, 1.8427007929497148],
  ];
  for (const [z, want] of known) assert.ok(Math.abs(erfc(z) - want) <= 1e-14 * want, `erfc(${z})`);
});

test("activation: GPU gelu and its derivative are float32-accurate over [-10, 10]", async () => {
  const xs = Float32Array.from({ length: 2001 }, (_, i) => -10 + i / 100);
  const g = new Graph();
  const x = g.input("x", [xs.length]);
  const dy = g.input("dy", [xs.length]);
  const y = gelu(x), dx = g.apply(OPS.gelu_bwd, [x, dy], {});
  const exe = await compile([y, dx]);
  exe.write(x, xs);
  exe.write(dy, new Float32Array(xs.length).fill(1));
  const [gy, gdx] = await exe.run([y, dx]);
  const want = interpret([y, dx], new Map([[x, xs], [dy, new Float32Array(xs.length).fill(1)]]));
  const wy = want.get(y)!.data, wdx = want.get(dx)!.data;
  exe.destroy();
  for (let i = 0; i < xs.length; i++) {
    // relative accuracy everywhere, down into the negative tail (gelu(-10) ≈ -7.6e-23), except an
    // absolute 1e-7 where gelu' crosses zero (x ≈ -0.75: Φ(x) + x·φ(x) cancels in f32)
    const ey = Math.abs(gy[i] - wy[i]) / Math.abs(wy[i] || 1);
    const ed = Math.abs(gdx[i] - wdx[i]) / (Math.abs(wdx[i]) + 5e-3);
    assert.ok(ey < 1e-5, `gelu(${xs[i]}) = ${gy[i]}, want ${wy[i]}`);
    assert.ok(ed < 2e-5, `gelu'(${xs[i]}) = ${gdx[i]}, want ${wdx[i]}`);
  }
});

test("activation: shape errors name the op and the shapes", () => {
  const g = new Graph();
  const idx = g.input("idx", [2, 3], "i32");
  for (const [name, f] of ACTS) assertThrowsMsg(() => f(idx), name, "[2,3]:i32", "f32");
  const x = g.input("x", [2, 3]), dy = g.input("dy", [3, 2]);
  assertThrowsMsg(() => g.apply(OPS.gelu_bwd, [x, dy], {}), "gelu_bwd", "[2,3]", "[3,2]", "same shape");
});
