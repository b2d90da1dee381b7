// The runtime never computes a wrong result from how it is called: runs, writes and reads take effect
// in call order whether or not each run is awaited (resident and streamed plans), and values that would
// wrap or mean something else are refused with a message naming the node or option.

import "../mod.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { linear } from "../compiler/ops/matmul.ts";
import { relu } from "../compiler/ops/activation.ts";
import { crossEntropy } from "../compiler/ops/loss.ts";
import { add } from "../compiler/ops/elementwise.ts";
import {
  compile,
  type Executable,
  type HostArray,
  type WeightLoader,
} from "../compiler/runtime/executable.ts";
import { randn } from "../compiler/core/random.ts";
import { assert, assertRejectsMsg, assertThrowsMsg, test } from "./testing.ts";

const D = 16, ROWS = 4, LAYERS = 3;

/** x → relu(linear(·, W_l)) over streamable frozen layers → y; the loader yields to the event loop. */
function build() {
  const g = new Graph();
  const x = g.input("x", [ROWS, D]);
  let y = x;
  for (let l = 0; l < LAYERS; l++) {
    const w = g.param(`layer${l}.w`, [D, D], { trainable: false, streamGroup: l });
    y = relu(linear(y, w));
  }
  return { x, y };
}

// a loader that takes a few milliseconds, as a disk read does: other calls interleave with a run
const loader: WeightLoader = async (group, nodes) => {
  await new Promise((r) => setTimeout(r, 2));
  return new Map<Node, HostArray>(nodes.map((n) => [n, randn(50 + group, n.size, 0.3)]));
};

const inputs = [0, 1, 2, 3].map((k) => randn(10 + k, ROWS * D));

async function plans(): Promise<[string, Executable, Node, Node][]> {
  const r = build(), s = build();
  const resident = await compile([r.y], { weights: loader, stream: "never" });
  const streamed = await compile([s.y], { weights: loader, stream: "always" });
  assert.ok(!resident.streaming && streamed.streaming);
  return [["resident", resident, r.x, r.y], ["streamed", streamed, s.x, s.y]];
}

test("runs, writes and reads apply in call order, awaited or not (resident and streamed)", async () => {
  for (const [mode, exe, x, y] of await plans()) {
    // the reference: each run awaited before the next write
    const want: Float32Array[] = [];
    for (const v of inputs) {
      exe.write(x, v);
      want.push((await exe.run([y]))[0] as Float32Array);
    }
    assert.ok(want[0].some((v, i) => v !== want[1][i]), "different inputs give different outputs");

    // write A; run(); write B; run() … without awaiting: each run sees the write made before it
    const runs: Promise<HostArray[]>[] = [];
    const buf = new Float32Array(ROWS * D);
    for (const v of inputs) {
      buf.set(v); // one array reused: a held write must have taken its own copy
      exe.write(x, buf);
      runs.push(exe.run([y]));
    }
    const got = await Promise.all(runs);
    got.forEach(([o], k) => assert.deepEqual(o, want[k], `${mode}: un-awaited run ${k}`));

    // concurrent runs on one input, and reads queued among them
    exe.write(x, inputs[2]);
    const [a, b, xs, c] = await Promise.all([exe.run([y]), exe.run([y]), exe.read(x), exe.run([y])]);
    for (const [o] of [a, b, c]) assert.deepEqual(o, want[2], `${mode}: concurrent runs`);
    assert.deepEqual(xs, inputs[2], `${mode}: a read sees the writes before it`);
    exe.write(x, inputs[3]);
    const after = exe.run([]);
    assert.deepEqual(await exe.read(y), want[3], `${mode}: a read after an un-awaited run sees its output`);
    await after;
    assert.equal(exe.steps, 2 * inputs.length + 4, `${mode}: every run ran once`);
    exe.destroy();
  }
});

test("destroy() while a streamed run is queued: the run rejects, naming destroy()", async () => {
  const s = build();
  const exe = await compile([s.y], { weights: loader, stream: "always" });
  exe.write(s.x, inputs[0]);
  const first = exe.run([s.y]);
  const second = exe.run([s.y]);
  exe.destroy();
  const [r1, r2] = await Promise.allSettled([first, second]);
  for (const r of [r1, r2]) {
    assert.equal(r.status, "rejected");
    assert.match(String((r as PromiseRejectedResult).reason), /destroyed/);
  }
});

test("async methods reject (never throw), and a refused run runs nothing", async () => {
  const g = new Graph();
  const x = g.input("x", [ROWS, D]);
  const w = g.param("w", [D, D], { init: randn(3, D * D, 0.2) });
  const h = relu(linear(x, w));
  const y = add(h, x);
  const exe = await compile([y]);
  exe.write(x, inputs[0]);
  let p: Promise<unknown> | undefined;
  try {
    p = exe.run([h]); // an intermediate: not readable after the run
  } catch (e) {
    throw new Error(`run() threw synchronously: ${(e as Error).message}`);
  }
  await assertRejectsMsg(() => p!, "intermediate", "outputs");
  assert.equal(exe.steps, 0, "the refused run submitted nothing");
  await assertRejectsMsg(() => exe.read(h), "intermediate");
  exe.destroy();
  for (const call of [() => exe.run([y]), () => exe.read(y), () => exe.profile()]) {
    let q: Promise<unknown> | undefined;
    try {
      q = call();
    } catch (e) {
      throw new Error(`a call after destroy() threw synchronously: ${(e as Error).message}`);
    }
    await assertRejectsMsg(() => q!, "destroyed");
  }
  assertThrowsMsg(() => exe.write(x, inputs[0]), "destroyed"); // write() is synchronous
});

test("values that would wrap or be misread are refused, naming the node", async () => {
  const g = new Graph();
  const f = g.input("f", [4]);
  const i = g.input("i", [4], "i32");
  const u = g.input("u", [4], "u32");
  const h = g.input("h", [4], "bf16");
  const exe = await compile([f, i, u, h]);
  // a Uint16Array is raw 16-bit words: right for bf16/f16, meaningless for f32/i32/u32
  assertThrowsMsg(() => exe.write(f, new Uint16Array([1, 2, 3, 4])), "f#", "Uint16Array", "f16/bf16");
  assertThrowsMsg(() => exe.write(i, new Uint16Array(4)), "i#", "Uint16Array");
  exe.write(h, new Uint16Array([0x3f80, 0x4000, 0, 0xbf80])); // 1, 2, 0, -1 as bf16 words
  assert.deepEqual([...await exe.read(h)], [1, 2, 0, -1]);
  // i32: whole numbers in [-2^31, 2^31 - 1]
  assertThrowsMsg(() => exe.write(i, [1, 2, 3, 2 ** 40]), "i#", "[3] is 1099511627776", "wrap");
  assertThrowsMsg(() => exe.write(i, new Float32Array([0.5, 0, 0, 0])), "i#", "[0] is 0.5");
  assertThrowsMsg(() => exe.write(i, new Uint32Array([2 ** 31, 0, 0, 0])), "i#", "2147483648");
  exe.write(i, [-(2 ** 31), 2 ** 31 - 1, 0, -7]);
  assert.deepEqual([...await exe.read(i)], [-(2 ** 31), 2 ** 31 - 1, 0, -7]);
  // u32: no negatives
  assertThrowsMsg(() => exe.write(u, new Int32Array([0, -1, 0, 0])), "u#", "[1] is -1");
  assertThrowsMsg(() => exe.write(u, [0, 0, 0, 2 ** 32]), "u#", "4294967296");
  exe.write(u, new Float32Array([0, 1, 2, 3]));
  assert.deepEqual([...await exe.read(u)], [0, 1, 2, 3]);
  // a refused write leaves the old values in place
  assert.deepEqual([...await exe.read(i)], [-(2 ** 31), 2 ** 31 - 1, 0, -7]);
  exe.destroy();
});

test("crossEntropy labels outside [0, classes) are refused at write(), not turned into NaN", async () => {
  const g = new Graph();
  const logits = g.input("logits", [3, 5]);
  const labels = g.input("labels", [3], "i32");
  const loss = crossEntropy(logits, labels);
  assert.deepEqual(labels.valueRange && [labels.valueRange.lo, labels.valueRange.hi], [0, 5]);
  const exe = await compile([loss]);
  exe.write(logits, randn(1, 15));
  assertThrowsMsg(() => exe.write(labels, [0, 5, 1]), "labels#", "[1] is 5", "[0, 5)", "crossEntropy");
  assertThrowsMsg(() => exe.write(labels, new Int32Array([-1, 0, 0])), "labels#", "[0] is -1");
  exe.write(labels, [0, 4, 2]);
  const [l] = await exe.run([loss]);
  assert.ok(Number.isFinite(l[0]) && l[0] > 0, `loss ${l[0]}`);
  exe.destroy();
});

test("compile options that would be ignored or misread are refused, naming the option", async () => {
  const { y } = build();
  await assertRejectsMsg(
    () => compile([y], { weights: loader, gpuMemoryBudget: NaN }),
    "gpuMemoryBudget",
    "NaN",
  );
  await assertRejectsMsg(
    () => compile([y], { weights: loader, gpuMemoryBudget: -1 }),
    "gpuMemoryBudget",
    "-1",
  );
  await assertRejectsMsg(() => compile([y], { weights: loader, maxBindingBytes: 0 }), "maxBindingBytes");
  await assertRejectsMsg(() => compile([y], { weights: loader, maxBindingBytes: 1.5 }), "maxBindingBytes");
  await assertRejectsMsg(
    () => compile([y], { weights: loader, stream: "sometimes" as "auto" }),
    "stream",
    "sometimes",
  );
  const ok = await compile([y], { weights: loader, gpuMemoryBudget: Infinity }); // no limit: resident
  assert.ok(!ok.streaming);
  ok.destroy();
});
