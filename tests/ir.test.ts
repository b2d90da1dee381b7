// Graph building and autodiff structure: shape errors name the op, the shapes and what was expected;
// gradients exist only for trainable params and flow through frozen ops.

import "../mod.ts";
import { Graph } from "../compiler/core/ir.ts";
import { add, mul, scale } from "../compiler/ops/elementwise.ts";
import { reshape } from "../compiler/ops/layout.ts";
import { max, sum, sumAll } from "../compiler/ops/reduce.ts";
import { grad, needsGradSet } from "../compiler/grad.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { interpret } from "./ref/tensor.ts";

test("shape errors name the op, the input shapes and what was expected", () => {
  const g = new Graph();
  const a = g.input("a", [2, 3]), b = g.input("b", [4, 3]);
  assertThrowsMsg(() => add(a, b), "add", "[2,3]", "[4,3]", "broadcast");
  assertThrowsMsg(() => reshape(a, [5]), "reshape", "[2,3]", "[5]");
  assertThrowsMsg(() => reshape(a, [-1, 4]), "reshape", "-1");
  assertThrowsMsg(() => sum(a, 2), "sum", "axis 2", "rank 2");
  assertThrowsMsg(() => mul(a, g.input("i", [2, 3], "i32")), "mul", "i32", "f32");
  assertThrowsMsg(() => g.param("w", [2], { dtype: "bf16" }), "'w'", "trainable", "bf16");
  assertThrowsMsg(() => g.input("a", [1]), "'a'", "twice");
  assertThrowsMsg(() => g.input("neg", [2, -1]), "invalid shape");
  assertThrowsMsg(() => grad(a), "grad", "scalar");
  const other = new Graph().input("z", [2, 3]);
  assertThrowsMsg(() => add(a, other), "add", "another graph");
});

test("autodiff: frozen params and data inputs get no gradient, but gradients flow through frozen ops", () => {
  const g = new Graph();
  const x = g.input("x", [4, 3]);
  const w1 = g.param("w1", [4, 3], { init: Float32Array.from({ length: 12 }, (_, i) => 0.1 * i - 0.5) });
  const frozen = g.param("frozen", [4, 3], {
    trainable: false,
    init: Float32Array.from({ length: 12 }, (_, i) => 1 + 0.05 * i),
  });
  const h = mul(x, w1); // trainable
  const f = mul(h, frozen); // frozen op above it
  const loss = sumAll(mul(f, f));
  const grads = grad(loss);
  assert.deepEqual([...grads.keys()].map((n) => n.name), ["w1"]);
  const needs = needsGradSet(g.nodes);
  assert.ok(!needs.has(x) && !needs.has(frozen) && needs.has(f));
  // no node of the backward graph has the frozen weight's gradient: nothing multiplies dy by h to
  // get d(frozen); check by value on the CPU interpreter: dL/dw1 = 2 f * frozen * x
  const xs = Float32Array.from({ length: 12 }, (_, i) => Math.cos(i));
  const env = interpret([grads.get(w1)!], new Map([[x, xs]]));
  const w = w1.init as Float32Array, fr = frozen.init as Float32Array;
  const want = xs.map((xv, i) => 2 * (xv * w[i] * fr[i]) * fr[i] * xv);
  const got = env.get(grads.get(w1)!)!.data;
  for (let i = 0; i < 12; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-5, `${i}: ${got[i]} vs ${want[i]}`);
});

test("autodiff: a loss that depends on no trainable param has no gradients; max is differentiable", () => {
  const g = new Graph();
  const x = g.input("x", [3, 4]);
  assert.equal(grad(sumAll(scale(x, 2))).size, 0);
  const p = g.param("p", [3, 4], { init: Float32Array.from({ length: 12 }, (_, i) => (i * 7) % 5) });
  const m = max(add(p, x), 1);
  const gr = grad(sumAll(m));
  assert.equal(gr.size, 1);
  const env = interpret([gr.get(p)!], new Map([[x, new Float32Array(12)]]));
  // rows of (i*7)%5 are [0,2,4,1] [3,0,2,4] [1,3,0,2]: one 1 at each row's maximum
  assert.deepEqual([...env.get(gr.get(p)!)!.data], [0, 0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0]);
});
