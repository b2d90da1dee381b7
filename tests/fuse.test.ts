// Epilogue fusion (compiler/fuse.ts, kernels/epilogue.ts) and in-place elementwise ops (OpDef.inPlace
// in compiler/lower.ts): both change only the lowering, so each case is checked three ways — the plan
// really is fused / in place (kernel labels, buffer counts), the fused plan matches the f64 CPU
// reference forward and backward (checkOp), and it equals the unfused plan bit for bit.

import "../mod.ts";
import { Graph, type Node } from "../compiler/ir.ts";
import { grad } from "../compiler/grad.ts";
import { linear } from "../compiler/ops/matmul.ts";
import { gelu, relu, silu } from "../compiler/ops/activation.ts";
import { add, mul, scale } from "../compiler/ops/elementwise.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { kernelLabels, lower } from "../compiler/lower.ts";
import { compile } from "../compiler/runtime.ts";
import { type MatmulVariant, setMatmulVariant } from "../kernels/matmul.ts";
import { transformerBlock } from "../models/block.ts";
import { randn } from "../compiler/random.ts";
import { checkOp, randParam } from "./harness.ts";
import { assert, test } from "./testing.ts";

const VARIANTS: [string, MatmulVariant][] = [
  ["direct", { kind: "direct", TM: 4, TN: 4 }],
  ["tiled", { kind: "tiled", WX: 8, WY: 8, TM: 2, TN: 2, BK: 8 }],
];

async function withVariant(v: MatmulVariant, f: () => Promise<void>): Promise<void> {
  setMatmulVariant(v);
  try {
    await f();
  } finally {
    setMatmulVariant(undefined);
  }
}

/** Labels of the forward + backward plan of sum(y · c) for the graph `build` makes. */
function labelsOf(build: (g: Graph) => Node, fuse: boolean): string[] {
  const g = new Graph();
  const y = build(g);
  const loss = sumAll(mul(y, g.input("c", y.shape)));
  return kernelLabels(lower([y, ...grad(loss).values()], [], { fuse }));
}

const count = (labels: string[], l: string) => labels.filter((x) => x === l).length;

for (const [act, f] of [["gelu", gelu], ["silu", silu], ["relu", relu]] as const) {
  test(`fuse: linear + bias + ${act} in one kernel, forward and backward vs CPU (direct and tiled)`, async () => {
    // odd sizes: 3·5 rows, K = 7, N = 9; the backward reads the pre-activation the epilogue keeps
    const build = (g: Graph) =>
      f(linear(randParam(g, "x", [3, 5, 7]), randParam(g, "w", [9, 7], 0.5), randParam(g, "b", [9])));
    const fused = labelsOf(build, true), plain = labelsOf(build, false);
    assert.equal(count(fused, `${act}_fwd`), 0, `fused plan still has ${act}_fwd: ${fused}`);
    assert.equal(count(plain, `${act}_fwd`), 1);
    assert.equal(fused.length, plain.length - 1);
    for (const [, v] of VARIANTS) await withVariant(v, async () => void await checkOp({ build }));
  });

  test(`fuse: ${act}'s backward computed in the epilogue of the matmul that makes its dy, vs CPU`, async () => {
    // x → linear → act → linear: the second linear's dA is the activation's dy
    const build = (g: Graph) => {
      const h = f(
        linear(randParam(g, "x", [3, 5, 7]), randParam(g, "w1", [9, 7], 0.5), randParam(g, "b1", [9])),
      );
      return linear(h, randParam(g, "w2", [6, 9], 0.5), randParam(g, "b2", [6]));
    };
    const fused = labelsOf(build, true), plain = labelsOf(build, false);
    assert.equal(count(fused, `${act}_bwd`), 0, `fused plan still has ${act}_bwd: ${fused}`);
    assert.equal(count(plain, `${act}_bwd`), 1);
    assert.equal(fused.length, plain.length - 2);
    for (const [, v] of VARIANTS) await withVariant(v, async () => void await checkOp({ build }));
  });
}

test("fuse: residual add (either operand order) computed in the matmul's epilogue, vs CPU", async () => {
  for (const first of [true, false]) {
    const build = (g: Graph) => {
      const r = randParam(g, "r", [4, 6, 9]);
      const m = linear(randParam(g, "x", [4, 6, 5]), randParam(g, "w", [9, 5]), randParam(g, "b", [9]));
      return first ? add(m, r) : add(r, m);
    };
    const fused = labelsOf(build, true), plain = labelsOf(build, false);
    assert.equal(count(fused, "add"), 0, `fused plan still has an add: ${fused}`);
    assert.equal(count(plain, "add"), 1);
    for (const [, v] of VARIANTS) await withVariant(v, async () => void await checkOp({ build }));
  }
});

test("fuse: not fused where it would be wrong (broadcast add, residual computed after the matmul)", () => {
  // broadcast: the add's other operand is [9], not the output's shape
  const bcast = (g: Graph) =>
    add(linear(randParam(g, "x", [2, 5]), randParam(g, "w", [9, 5])), randParam(g, "b", [9]));
  assert.equal(count(labelsOf(bcast, true), "add"), 1);
  // the residual is computed after the matmul: the epilogue could not read it yet
  const late = (g: Graph) => {
    const m = linear(randParam(g, "x", [2, 5]), randParam(g, "w", [3, 5]));
    const r = scale(randParam(g, "r", [2, 3]), 2);
    return add(m, r);
  };
  assert.equal(count(labelsOf(late, true), "add"), 1);
});

/** A pre-LN transformer block with a loss; returns its plan outputs. */
function block(g: Graph) {
  const x = g.input("x", [2, 7, 16]);
  const y = transformerBlock(g, x, "blk", { dim: 16, heads: 2, mlpRatio: 4, act: "gelu" });
  const loss = sumAll(mul(y, g.input("c", y.shape)));
  return { x, y, loss, grads: grad(loss) };
}

test("fuse + in place: a transformer block's step is bit-identical with and without, with fewer kernels and bytes", async () => {
  const run = async (on: boolean) => {
    const g = new Graph();
    const { x, y, loss, grads } = block(g);
    const outs = [y, loss, ...grads.values()];
    const exe = await compile(outs, { fuse: on, inPlace: on });
    exe.write(x, randn(3, x.size));
    exe.write(g.byName("c"), randn(4, y.size));
    await exe.run();
    const vals = await Promise.all(outs.map((o) => exe.read(o)));
    const r = { vals, kernels: exe.kernelCount, peak: exe.plan.peakBytes, labels: kernelLabels(exe.plan) };
    exe.destroy();
    return r;
  };
  const on = await run(true), off = await run(false);
  for (let k = 0; k < on.vals.length; k++) {
    assert.deepEqual(on.vals[k], off.vals[k], `output ${k} differs between fused and unfused plans`);
  }
  // the MLP's gelu, its backward and both residual adds are absorbed by their matmuls
  assert.equal(count(on.labels, "gelu_fwd") + count(on.labels, "gelu_bwd"), 0);
  assert.equal(on.kernels, off.kernels - 4, `${on.kernels} vs ${off.kernels} kernels`);
  // a training step keeps most activations for the backward, so its peak is where they all live
  // and neither changes it; a forward-only (evaluation) plan frees them as it goes
  assert.ok(on.peak <= off.peak, `peak bytes ${on.peak} (fused, in place) vs ${off.peak}`);
  const g = new Graph();
  const { y } = block(g);
  const pooled = (o: { fuse: boolean; inPlace: boolean }) =>
    lower([y], [], o).buffers.filter((b) => !b.persistent).reduce((s, b) => s + b.bytes, 0);
  const plain = pooled({ fuse: false, inPlace: false });
  assert.ok(pooled({ fuse: false, inPlace: true }) < plain, "in-place alone saves activation memory");
  assert.ok(pooled({ fuse: true, inPlace: false }) < plain, "fusion alone saves activation memory");
});

test("in place: elementwise chains reuse their input's buffer, never one that is still needed", async () => {
  const build = (g: Graph) => {
    const x = randParam(g, "x", [5, 13]);
    const t = relu(scale(x, 1.5, 0.25)); // scale → relu in place
    const u = add(t, t); // both operands share a buffer: must not be in place
    const w = mul(u, randParam(g, "y", [5, 13])); // u dies here: in place
    return add(w, u); // u is read again: the mul above must not have overwritten it... (it did not die)
  };
  const g = new Graph();
  const y = build(g);
  const on = lower([y], [], { inPlace: true }), off = lower([y], [], { inPlace: false });
  assert.ok(on.buffers.length < off.buffers.length, `${on.buffers.length} vs ${off.buffers.length} buffers`);
  await checkOp({ build });
});
