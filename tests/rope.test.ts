// Tests of rope: forward vs the f64 reference, the gradient rule (the inverse rotation) vs finite
// differences and the inverse kernel vs the reference (checkOp), for the forward op and the inverse
// op; a hand-computed case pinning HF's half-split pair order; inv_freq vs HF's values; accuracy at
// long positions; kernel labels; shape errors.
import { assertClose, checkOp, randParam } from "./harness.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { rope, ropeInvFreq } from "../compiler/ops/rope.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { kernelLabels, lower } from "../compiler/lower/plan.ts";
import { grad } from "../compiler/grad.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { Rng } from "../compiler/core/random.ts";
import { interpret } from "./ref/tensor.ts";

/** Runs `outs` on the GPU with x fed, and on the CPU reference. */
async function gpuAndRef(x: Node, xs: Float32Array, outs: Node[]) {
  const exe = await compile(outs);
  exe.write(x, xs);
  const got = await exe.run(outs);
  exe.destroy();
  const want = interpret(outs, new Map([[x, xs]]));
  return { got, want: outs.map((o) => want.get(o)!.data) };
}

test("rope: fwd + grad vs reference and finite differences", async (t) => {
  const cases: [string, number[], { heads: number; theta?: number; positionOffset?: number }][] = [
    ["B=2 T=5 H=2 Dh=4", [2, 5, 8], { heads: 2 }],
    ["B=1 T=37 H=3 Dh=16 offset 3", [1, 37, 48], { heads: 3, positionOffset: 3 }],
    ["theta 500000 (LLaMA 3), B=2 T=9 H=1 Dh=32", [2, 9, 32], { heads: 1, theta: 500000 }],
    ["Dh=2, offset 1000", [3, 4, 6], { heads: 3, positionOffset: 1000 }],
  ];
  for (const [name, shape, opts] of cases) {
    await t.step(name, async () => {
      await checkOp({ build: (g) => rope(randParam(g, "x", shape), opts) });
    });
    // the inverse op: its gradient is the forward rotation (and its kernel the `rope_bwd` one)
    await t.step(`${name}, inverse`, async () => {
      await checkOp({ build: (g) => rope(randParam(g, "x", shape), { ...opts, inverse: true }) });
    });
  }
});

test("rope: hand-computed B=1 T=2 H=1 Dh=4 pins HF's half-split pairs", async () => {
  // inv_freq = [10000^0, 10000^(-2/4)] = [1, 0.01] (0.01 rounded to f32 = 0.009999999776482582)
  assert.deepEqual([...ropeInvFreq(4, 10000)], [1, Math.fround(0.01)]);
  const g = new Graph();
  const x = g.input("x", [1, 2, 4]);
  const y = rope(x, { heads: 1 });
  const xs = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  // position 0: angle 0, identity. Position 1: angles (1, 0.01) for pairs (0, 2) and (1, 3):
  //   cos(1) = 0.5403023058681398, sin(1) = 0.8414709848078965,
  //   cos(0.01f) = 0.9999500004189004, sin(0.01f) = 0.009999833110660423;
  //   rotate_half([5,6,7,8]) = [-7,-8,5,6], out = x·[c1,c2,c1,c2] + rotate_half(x)·[s1,s2,s1,s2]:
  //   [5c1 − 7s1, 6c2 − 8s2, 7c1 + 5s1, 8c2 + 6s2]
  const want = [1, 2, 3, 4, -3.1887853643145765, 5.919701337628118, 7.9894710651164615, 8.059599002015165];
  // Meta's interleaved pairs (0,1), (2,3) would give [5c1 − 6s1, 6c1 + 5s1, ...] = [-2.347, 7.449, ...]
  const { got, want: ref } = await gpuAndRef(x, xs, [y]);
  assertClose("rope reference vs hand-computed", ref[0], want, 1e-14);
  assertClose("rope GPU vs hand-computed", got[0], want, 1e-6);
  // positionOffset shifts positions: the second token alone at offset 1 is rotated the same way
  const g2 = new Graph();
  const x2 = g2.input("x", [1, 1, 4]);
  const r2 = await gpuAndRef(x2, xs.slice(4), [rope(x2, { heads: 1, positionOffset: 1 })]);
  assertClose("rope GPU, offset 1", r2.got[0], want.slice(4), 1e-6);
});

test("rope: inv_freq equals HF's f32 tensor bit for bit", () => {
  // entries of HF's LlamaRotaryEmbedding.inv_freq (transformers 5.17, Dh = 128), read from torch;
  // each differs by one ulp from theta^(-2i/Dh) rounded once from f64
  const hf: [number, number, number][] = [
    [500000, 2, 0.663601279258728],
    [500000, 4, 0.44036662578582764],
    [500000, 10, 0.12868738174438477],
    [10000, 7, 0.36517414450645447],
    [10000, 10, 0.23713736236095428],
    [10000, 18, 0.07498941570520401],
  ];
  for (const [theta, i, want] of hf) assert.equal(ropeInvFreq(128, theta)[i], want, `theta ${theta}, i ${i}`);
});

test("rope: accurate at long positions, and the inverse undoes it", async () => {
  // angles up to ~3·10^5 rad at i = 0; the f64 reference takes cos/sin of the same f32 angle
  const g = new Graph();
  const shape = [1, 64, 2 * 16];
  const x = g.input("x", shape);
  const opts = { heads: 2, positionOffset: 300_000, theta: 500000 };
  const y = rope(x, opts);
  const back = rope(y, { ...opts, inverse: true });
  const r = new Rng(17);
  const xs = Float32Array.from({ length: 64 * 32 }, () => r.normal());
  const { got, want } = await gpuAndRef(x, xs, [y, back]);
  assertClose("rope at positions 300000..300063 (GPU vs f64)", got[0], want[0], 2e-6);
  assertClose("inverse(rope(x)) = x (GPU)", got[1], xs, 2e-6);
  assertClose("inverse(rope(x)) = x (reference)", want[1], xs, 1e-14);
});

test("rope: kernel labels of forward and backward", () => {
  const g = new Graph();
  const x = g.param("x", [2, 3, 8]);
  const y = rope(x, { heads: 2 });
  const gx = grad(sumAll(y)).get(x)!;
  // the gradient is the inverse rotation of dy alone: the forward kernel is not needed for it
  assert.deepEqual(kernelLabels(lower([gx])).filter((l) => l.startsWith("rope")), ["rope_bwd"]);
  assert.deepEqual(kernelLabels(lower([y])), ["rope_fwd"]);
  assert.equal(gx.op, "rope");
  assert.equal(gx.attrs.inverse, true);
});

test("rope: shape errors name the op and the shapes", () => {
  const g = new Graph();
  assertThrowsMsg(() => rope(g.input("a", [1, 2, 6]), { heads: 2 }), "rope", "[1,2,6]", "even", "6/2");
  assertThrowsMsg(
    () => rope(g.input("b", [1, 2, 6]), { heads: 4 }),
    "rope",
    "[1,2,6]",
    "divisible",
    "heads=4",
  );
  assertThrowsMsg(() => rope(g.input("c", [2, 8]), { heads: 2 }), "rope", "[2,8]", "[B,T,H·Dh]");
  assertThrowsMsg(() => rope(g.input("d", [1, 2, 4], "i32"), { heads: 1 }), "rope", "[1,2,4]:i32", "f32");
  const x = g.input("x", [1, 2, 8]);
  assertThrowsMsg(() => rope(x, { heads: 0 }), "rope", "[1,2,8]", "heads");
  assertThrowsMsg(() => rope(x, { heads: 2, positionOffset: -1 }), "rope", "positionOffset");
  assertThrowsMsg(() => rope(x, { heads: 2, positionOffset: 2 ** 24 }), "rope", "2^24");
  assertThrowsMsg(() => rope(x, { heads: 2, theta: 1 }), "rope", "theta");
});
