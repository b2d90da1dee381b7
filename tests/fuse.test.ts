// Epilogue fusion (compiler/fuse.ts, kernels/epilogue.ts) and in-place elementwise ops (OpDef.inPlace
// in compiler/lower.ts): both change only the lowering, so each case is checked three ways — the plan
// really is fused / in place (kernel labels, buffer counts), the fused plan matches the f64 CPU
// reference forward and backward (checkOp), and it equals the unfused plan bit for bit.

import "../mod.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { grad } from "../compiler/grad.ts";
import { linear, matmul } from "../compiler/ops/matmul.ts";
import { gelu, relu, silu } from "../compiler/ops/activation.ts";
import { add, mul, scale } from "../compiler/ops/elementwise.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { kernelLabels, lower } from "../compiler/lower/plan.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { type MatmulVariant, setMatmulVariant } from "../kernels/matmul.ts";
import { transformerBlock } from "../nn/block.ts";
import { randn } from "../compiler/core/random.ts";
import { assertClose, checkOp, randParam } from "./harness.ts";
import { layerNorm, rmsNorm } from "../compiler/ops/norm.ts";
import { reshape } from "../compiler/ops/layout.ts";
import { fromBf16, fromF16, toBf16, toF16 } from "../compiler/core/dtype.ts";
import { Rng } from "../compiler/core/random.ts";
import { DEFAULT_LOWER_CTX, type LowerCtx } from "../kernels/kernel.ts";
import { frozenEncoderStack, openLlm } from "../models/llm.ts";
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

// ---- norm prologue: a norm read only as the A operand of matmuls is computed in their loads ----

/** A frozen tensor stored as bf16/f16/f32, with values exactly representable in its dtype. */
function frozen(
  g: Graph,
  name: string,
  shape: number[],
  dtype: "bf16" | "f16" | "f32",
  offset = 0,
  std = 0.5,
) {
  const r = new Rng(shape.reduce((p, d) => p * d, 1) * 31 + name.length + offset);
  const round = dtype === "bf16"
    ? (v: number) => fromBf16(toBf16(v))
    : dtype === "f16"
    ? (v: number) => fromF16(toF16(v))
    : Math.fround;
  const size = shape.reduce((p, d) => p * d, 1);
  const init = Float32Array.from({ length: size }, () => round(offset + std * r.normal()));
  return g.param(name, shape, { trainable: false, dtype, init });
}

/** rmsNorm (frozen bf16 weight) → three q/k/v-like linears (frozen bf16) → summed; x enters via a scale. */
const rmsQkv = (rows: number[], d: number, n: number) => (g: Graph) => {
  const x = scale(randParam(g, "x", [...rows, d]), 1.5, 0.25);
  const h = rmsNorm(x, frozen(g, "nw", [d], "bf16", 1));
  const [q, k, v] = [0, 1, 2].map((i) => linear(h, frozen(g, `w${i}`, [n, d], "bf16", 0.1 * i)));
  return add(add(q, k), v);
};

/** layerNorm (frozen weight and bias, f16 or f32) → two linears with biases → multiplied. */
const lnPair = (rows: number[], d: number, n: number, dtype: "f16" | "f32") => (g: Graph) => {
  const x = scale(randParam(g, "x", [...rows, d]), 0.5, -0.25);
  const h = layerNorm(x, frozen(g, "nw", [d], dtype, 1), frozen(g, "nb", [d], dtype, 0.2));
  const lin = (i: number) =>
    linear(h, frozen(g, `w${i}`, [n, d], dtype, 0), frozen(g, `b${i}`, [n], "f32", 0.1));
  return mul(lin(0), lin(1));
};

const PRO_VARIANTS: [string, MatmulVariant, boolean][] = [
  ["direct", { kind: "direct", TM: 4, TN: 4 }, true],
  ["tiled", { kind: "tiled", WX: 8, WY: 8, TM: 2, TN: 2, BK: 8 }, false],
  ["tiled double", { kind: "tiled", WX: 8, WY: 8, TM: 2, TN: 2, BK: 8, double: true }, false],
];

/** The forward + backward (dx) plan of `build`, and its norm node. */
function proPlan(build: (g: Graph) => Node, fuse: boolean, ctx?: LowerCtx) {
  const g = new Graph();
  const y = build(g);
  const loss = sumAll(mul(y, g.input("c", y.shape)));
  const outs = [y, ...grad(loss).values()];
  const plan = lower(outs, [], { fuse, ctx });
  const norm = plan.order.find((n) => n.op === "rmsnorm" || n.op === "layernorm")!;
  return { g, y, outs, plan, norm, labels: kernelLabels(plan) };
}

/** Runs y and dx fused and unfused (same data) and returns both. */
async function fusedVsPlain(build: (g: Graph) => Node) {
  const run = async (fuse: boolean) => {
    const { g, y, outs } = proPlan(build, fuse);
    const exe = await compile(outs, { fuse });
    exe.write(g.byName("c"), randn(5, y.size));
    const x = g.byName("x"); // randParam's init differs between builds: same data for both
    exe.write(x, randn(6, x.size));
    const vals = await exe.run(outs);
    exe.destroy();
    return vals;
  };
  return { on: await run(true), off: await run(false) };
}

const PRO_CASES: [string, (g: Graph) => Node][] = [
  // odd: rows not a multiple of 4, D = 7 / 13 (scalar A loads, K tail), N odd
  ["rms 3x5 D7 N9", rmsQkv([3, 5], 7, 9)],
  ["ln f32 15 D13 N5", lnPair([15], 13, 5, "f32")],
  // D a multiple of 4: the vec4 A paths (direct along k, tiled staging)
  ["rms 2x7 D12 N6", rmsQkv([2, 7], 12, 6)],
  ["ln f16 2x7 D16 N7", lnPair([2, 7], 16, 7, "f16")],
  // a batched b (not folded into M: each batch's rows start at bat·M in the statistics)
  ["rms batched b 3x5 D8 N5", (g: Graph) => {
    const h = rmsNorm(scale(randParam(g, "x", [3, 5, 8]), 1.5), frozen(g, "nw", [8], "f32", 1));
    return matmul(h, frozen(g, "w", [3, 8, 5], "bf16"));
  }],
];

for (const [name, build] of PRO_CASES) {
  test(`fuse: norm prologue (${name}): norm output never stored, y and dx vs CPU and unfused`, async () => {
    const { plan, norm, labels } = proPlan(build, true);
    const plain = proPlan(build, false);
    const kind = norm.op;
    assert.equal(count(labels, `${kind}_fwd`), 0, `fused plan still has ${kind}_fwd: ${labels}`);
    assert.equal(count(labels, `${kind}_stats`), 1);
    assert.equal(count(plain.labels, `${kind}_fwd`), 1);
    assert.ok(!plan.storage.has(norm), "the fused norm has no buffer");
    for (const d of plan.dispatches) {
      for (const b of d.bindings) assert.ok(b.what !== `${norm}`, `${d.label} binds ${norm}`);
    }
    // y and dx: fused ≈ unfused to rounding (the prologue repeats the norm's arithmetic)
    const { on, off } = await fusedVsPlain(build);
    for (let k = 0; k < on.length; k++) assertClose(`output ${k} fused vs unfused`, on[k], off[k], 1e-5);
    for (const [, v, soft] of PRO_VARIANTS) {
      await withVariant(v, async () => void await checkOp({ build, ctx: { isSoftware: soft } }));
    }
  });
}

test("fuse: norm prologue not applied where y is needed (trainable weight's dW, other readers, outputs, limits)", () => {
  const fusedNorm = (build: (g: Graph) => Node, ctx?: LowerCtx) => {
    const { labels, norm } = proPlan(build, true, ctx);
    return count(labels, `${norm.op}_stats`) === 1 && count(labels, `${norm.op}_fwd`) === 0;
  };
  assert.ok(fusedNorm(rmsQkv([3, 5], 7, 9)), "the frozen case fuses");
  // a trainable weight: its dW reads y in the B slot (ViT)
  assert.ok(
    !fusedNorm((g) => {
      const h = rmsNorm(randParam(g, "x", [5, 7]), frozen(g, "nw", [7], "bf16", 1));
      return add(linear(h, frozen(g, "w0", [9, 7], "bf16")), linear(h, randParam(g, "w1", [9, 7])));
    }),
  );
  // y also read by an elementwise op
  assert.ok(
    !fusedNorm((g) => {
      const h = layerNorm(randParam(g, "x", [5, 7]));
      return add(linear(h, frozen(g, "w0", [7, 7], "f32")), h);
    }),
  );
  // y read through a reshape
  assert.ok(
    !fusedNorm((g) => {
      const h = rmsNorm(randParam(g, "x", [2, 5, 8]));
      return linear(reshape(h, [10, 8]), frozen(g, "w0", [3, 8], "f32"));
    }),
  );
  // too few storage buffers for a, b, bias, out and the prologue's weight, bias, mean, rstd
  const ln = lnPair([5], 7, 3, "f32");
  assert.ok(fusedNorm(ln, { ...DEFAULT_LOWER_CTX, maxStorageBuffers: 8 }));
  assert.ok(!fusedNorm(ln, { ...DEFAULT_LOWER_CTX, maxStorageBuffers: 7 }));
  // y is a plan output
  const g = new Graph();
  const h = rmsNorm(randParam(g, "x", [5, 7]));
  const labels = kernelLabels(lower([h, linear(h, frozen(g, "w0", [3, 7], "f32"))]));
  assert.equal(count(labels, "rmsnorm_fwd"), 1);
});

test("fuse: norm prologue in a real LLaMA block (llama-tiny, encoder mode): y and dx as unfused", async () => {
  const ck = await openLlm(new URL("./fixtures/llama-tiny", import.meta.url).pathname);
  const run = async (fuse: boolean) => {
    const g = new Graph();
    const xp = g.param("x", [2, 9, ck.cfg.hidden], { init: randn(7, 2 * 9 * ck.cfg.hidden) });
    const stack = await frozenEncoderStack(g, xp, ck, [2]);
    const cot = g.input("g", [2, 9, ck.cfg.hidden]);
    const dx = grad(sumAll(mul(stack.out, cot))).get(xp)!;
    const exe = await compile([stack.out, dx], { weights: stack.loader, fuse });
    exe.write(cot, randn(8, cot.size));
    const vals = await exe.run([stack.out, dx]);
    const labels = kernelLabels(exe.plan);
    exe.destroy();
    return { vals, labels };
  };
  const on = await run(true), off = await run(false);
  ck.src.close();
  // both RMSNorms of the layer (before q/k/v and before gate/up) become statistics only; the stack's
  // final unit-scale norm is its output and stays
  assert.equal(count(on.labels, "rmsnorm_stats"), 2, `${on.labels}`);
  assert.equal(count(on.labels, "rmsnorm_fwd"), count(off.labels, "rmsnorm_fwd") - 2, `${on.labels}`);
  assertClose("llama block y fused vs unfused", on.vals[0], off.vals[0], 1e-5);
  assertClose("llama block dx fused vs unfused", on.vals[1], off.vals[1], 1e-5);
});
