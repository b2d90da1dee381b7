// The runtime and lowering: liveness-based buffer reuse, one submit per run, dispatch folding,
// device-limit refusals, reflection checks, 16-bit storage, and the no-adapter message.

import "../mod.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { cast, scale } from "../compiler/ops/elementwise.ts";
import { sum } from "../compiler/ops/reduce.ts";
import { lower } from "../compiler/lower/plan.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { fromBf16, fromF16, toBf16, toF16 } from "../compiler/core/dtype.ts";
import { getGpu, NoAdapterError, openGpu } from "../compiler/runtime/device.ts";
import { sharedPipelineCount } from "../compiler/runtime/pipelines.ts";
import type { CustomOp } from "../kernels/table.ts";
import { OPS } from "../compiler/ops/table.ts";
import { grid1d } from "../kernels/kernel.ts";
import { assert, assertRejectsMsg, assertThrowsMsg, test } from "./testing.ts";
import { interpret } from "./ref/tensor.ts";
import { assertClose } from "./harness.ts";

function chain(len: number, n: number): { g: Graph; x: Node; y: Node } {
  const g = new Graph();
  const x = g.input("x", [n]);
  let y = x;
  for (let i = 0; i < len; i++) y = scale(y, 1.01, 0.001);
  return { g, x, y };
}

test("lowering reuses dead buffers (liveness) and reports peak bytes", async () => {
  const { x, y } = chain(12, 1000);
  const plan = lower([y]);
  // input + at most two pooled buffers ping-ponging, not 12 intermediates
  assert.equal(plan.dispatches.length, 12);
  assert.ok(plan.buffers.length <= 3, `expected <= 3 buffers, got ${plan.buffers.length}`);
  assert.equal(plan.peakBytes, plan.buffers.reduce((s, b) => s + b.bytes, 0));
  assert.ok(plan.peakBytes <= 3 * 4000);
  const exe = await compile([y]);
  const data = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i));
  exe.write(x, data);
  const [got] = await exe.run([y]);
  const want = interpret([y], new Map([[x, data]])).get(y)!.data;
  assertClose("chain of scales", got, want, 1e-6);
});

test("one run() is one command buffer and one queue.submit", async () => {
  const { x, y } = chain(5, 64);
  const exe = await compile([y]);
  exe.write(x, new Float32Array(64).fill(1));
  const q = exe.device.queue;
  const orig = q.submit.bind(q);
  let submits = 0, buffers = 0;
  q.submit = (cbs: GPUCommandBuffer[]) => {
    submits++;
    buffers += cbs.length;
    return orig(cbs);
  };
  try {
    await exe.run();
    await exe.run();
    const before = submits;
    await exe.run([y]); // a read rides in the same submission
    assert.equal(submits - before, 1);
  } finally {
    q.submit = orig;
  }
  assert.equal(submits, 3);
  assert.equal(buffers, 3);
});

test("executables on a device share pipelines of the same WGSL; a destroyed one refuses calls", async () => {
  const dev = (await getGpu()).device;
  const orig = dev.createComputePipeline.bind(dev);
  let made = 0;
  dev.createComputePipeline = (d: GPUComputePipelineDescriptor) => (made++, orig(d));
  const { x, y } = chain(4, 96);
  const again = chain(4, 96); // a new graph of the same shapes lowers to the same kernel text
  let a, b;
  try {
    a = await compile([y]);
    assert.ok(made >= 1, "the first build makes its pipeline");
    assert.ok(sharedPipelineCount(dev) >= made);
    made = 0;
    b = await compile([again.y]);
    assert.equal(made, 0, "the second build made no new pipeline");
  } finally {
    dev.createComputePipeline = orig;
  }
  const data = Float32Array.from({ length: 96 }, (_, i) => i / 7);
  a.write(x, data);
  b.write(again.x, data);
  const [ya] = await a.run([y]);
  const [yb] = await b.run([again.y]);
  assert.deepEqual([...yb], [...ya]);
  assertClose("shared pipelines", yb, interpret([y], new Map([[x, data]])).get(y)!.data, 1e-6);
  a.destroy();
  a.destroy(); // idempotent
  await assertRejectsMsg(() => a.run([y]), "destroyed"); // async methods reject, never throw
  assertThrowsMsg(() => a.write(x, data), "destroyed");
  await assertRejectsMsg(() => a.read(y), "destroyed");
  const [still] = await b.run([again.y]); // b's pipelines and buffers are its own to keep
  assert.deepEqual([...still], [...ya]);
  b.destroy();
});

test("large 1-D launches fold into 2-D grids within maxComputeWorkgroupsPerDimension", async () => {
  assert.deepEqual(grid1d(5000, 256, { maxWorkgroupsPerDim: 5 }).workgroups, [5, 4, 1]);
  assertThrowsMsg(() => grid1d(1e9, 1, { maxWorkgroupsPerDim: 10 }), "grid1d", "exceed");
  const gpu = await getGpu();
  const g = new Graph();
  const x = g.input("x", [1500]);
  const y = sum(g.apply(OPS.reshape, [scale(x, 2)], { shape: [6, 250] }), 1);
  const exe = await compile([y], { ctx: { ...gpu.lowerCtx, maxWorkgroupsPerDim: 3 } });
  for (const d of exe.plan.dispatches) {
    assert.ok(d.workgroups.every((w) => w <= 3), `${d.label} ${d.workgroups}`);
  }
  const data = Float32Array.from({ length: 1500 }, (_, i) => (i % 17) - 8);
  exe.write(x, data);
  const [got] = await exe.run([y]);
  assertClose("folded sum", got, interpret([y], new Map([[x, data]])).get(y)!.data, 1e-6);
});

test("a tensor over maxStorageBufferBindingSize is refused with a clear error", () => {
  const { y } = chain(2, 4096);
  assertThrowsMsg(
    () => lower([y], [], { maxBindingBytes: 8192 }),
    "scale",
    "16384 bytes",
    "maxStorageBufferBindingSize",
  );
});

test("bindings are checked against the reflected shader", async () => {
  // custom ops (kernels/table.ts CustomOp) whose kernels bind wrongly
  const custom = (name: string, lower: CustomOp["kernel"]): CustomOp => ({
    name,
    infer: (i) => ({ shape: i[0].shape, dtype: "f32" }),
    grad: "none",
    kernel: lower,
  });
  const badBind = custom("test_badbind", (n) => ({
    dispatches: [{
      label: "test_badbind",
      code: `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1) fn main() { out[0] = x[0]; }`,
      bindings: [{ name: "input", ref: { node: n.inputs[0] } }, { name: "out", ref: { node: n } }],
      workgroups: [1, 1, 1],
    }],
  }));
  const badWrite = custom("test_badwrite", (n) => ({
    dispatches: [{
      label: "test_badwrite",
      code: `@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1) fn main() { x[0] = 1.0; out[0] = x[0]; }`,
      bindings: [{ name: "x", ref: { node: n.inputs[0] } }, { name: "out", ref: { node: n } }],
      workgroups: [1, 1, 1],
    }],
  }));
  const g = new Graph();
  const x = g.input("x", [4]);
  await assertRejectsMsg(
    () => compile([g.apply(badBind, [x], {})]),
    "test_badbind",
    "'input'",
    "declares only",
  );
  await assertRejectsMsg(
    () => compile([g.apply(badWrite, [x], {})]),
    "test_badwrite",
    "'x'",
    "must not be written",
  );
});

test("bf16/f16 storage: host rounding and GPU unpacking", async () => {
  // independent reference for f16: V8's Math.f16round where present, else exact dyadic checks
  const f16round = (Math as unknown as { f16round?: (x: number) => number }).f16round;
  const vals = [0, 1, -2.5, 65504, 1e-5, 6.1e-5, 3.14159, -1e-8, 70000, 0.1];
  for (const v of vals) {
    if (f16round) assert.equal(fromF16(toF16(v)), f16round(v), `f16 ${v}`);
    const b = fromBf16(toBf16(v));
    assert.ok(Math.abs(b - v) <= Math.abs(v) * 2 ** -8, `bf16 ${v} -> ${b}`);
  }
  assert.equal(toBf16(1 + 2 ** -8), toBf16(1)); // tie rounds to even
  assert.equal(fromBf16(toBf16(1 + 3 * 2 ** -9)), 1 + 2 ** -7);
  for (const dtype of ["bf16", "f16"] as const) {
    const g = new Graph();
    const data = Float32Array.from({ length: 7 }, (_, i) => (i - 3) * 0.37);
    const w = g.param("w", [7], { trainable: false, dtype, init: data });
    const y = scale(cast(w), 2);
    const exe = await compile([y]);
    const [got] = await exe.run([y]);
    const rt = dtype === "bf16" ? (v: number) => fromBf16(toBf16(v)) : (v: number) => fromF16(toF16(v));
    assert.deepEqual([...got], [...data].map((v) => Math.fround(2 * rt(v))));
    assert.deepEqual([...await exe.read(w)], [...data].map(rt));
  }
});

test("no adapter: a clear message saying what to install", async () => {
  const gpu = navigator.gpu;
  const orig = gpu.requestAdapter;
  Object.defineProperty(gpu, "requestAdapter", { value: () => Promise.resolve(null), configurable: true });
  try {
    await assertRejectsMsg(() => openGpu({ quiet: true }), "No WebGPU adapter", "mesa-vulkan-drivers");
  } finally {
    Object.defineProperty(gpu, "requestAdapter", { value: orig, configurable: true });
    delete (gpu as unknown as Record<string, unknown>).requestAdapter;
  }
  const e = new NoAdapterError("x");
  assert.equal(e.name, "NoAdapterError");
});
