// Weight streaming: frozen weights with a streamGroup are either loaded once (resident) or streamed
// through two slot buffers, phase by phase, forward and backward. Both must give the same numbers.

import "../mod.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { grad } from "../compiler/grad.ts";
import { linear } from "../compiler/ops/matmul.ts";
import { relu } from "../compiler/ops/activation.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { mul } from "../compiler/ops/elementwise.ts";
import { compile, type HostArray, type WeightLoader } from "../compiler/runtime/executable.ts";
import { lower } from "../compiler/lower/plan.ts";
import { randn } from "../compiler/core/random.ts";
import { assert, assertRejectsMsg, test } from "./testing.ts";

const D = 24, LAYERS = 3;

/** x → [relu(linear(·, W_l)) for each frozen streamed layer] → sum(y·c); trainable input projection. */
function build() {
  const g = new Graph();
  const x = g.input("x", [5, D]);
  const w0 = g.param("proj", [D, D], { init: randn(1, D * D, 0.3) });
  let y = linear(x, w0);
  const frozen: Node[] = [];
  for (let l = 0; l < LAYERS; l++) {
    const a = g.param(`layer${l}.a`, [D, D], { trainable: false, dtype: "bf16", streamGroup: l });
    const b = g.param(`layer${l}.b`, [D, D], { trainable: false, dtype: "f32", streamGroup: l });
    frozen.push(a, b);
    y = linear(relu(linear(y, a)), b);
  }
  const c = g.input("c", [5, D]);
  const loss = sumAll(mul(y, c));
  const grads = grad(loss);
  return { g, x, c, y, loss, frozen, dproj: grads.get(w0)! };
}

const values = new Map<string, Float32Array>();
const loader: WeightLoader = (group, nodes) => {
  loads.push(group);
  const m = new Map<Node, HostArray>();
  for (const n of nodes) {
    if (n.streamGroup !== group) throw new Error(`${n} asked in group ${group}`);
    if (!values.has(n.name!)) values.set(n.name!, randn(100 + values.size, n.size, 0.25));
    m.set(n, values.get(n.name!)!);
  }
  return Promise.resolve(m);
};
let loads: number[] = [];

async function runMode(
  stream: "never" | "always",
  steps = 2,
  upload: "write-buffer" | "staging-ring" = "write-buffer",
) {
  const m = build();
  loads = [];
  const exe = await compile([m.y, m.dproj], { weights: loader, stream, upload });
  exe.write(m.x, randn(7, 5 * D));
  exe.write(m.c, randn(8, 5 * D));
  let out: HostArray[] = [];
  for (let s = 0; s < steps; s++) out = await exe.run([m.y, m.dproj]);
  return { exe, out, loads: [...loads] };
}

test("streaming: phases alternate slots, forward then backward in reverse", () => {
  const m = build();
  const plan = lower([m.y, m.dproj], [], { stream: true });
  const sp = plan.stream!;
  assert.deepEqual(sp.phases.map((p) => p.group), [0, 1, 2, 1, 0]);
  assert.equal(sp.phases[0].start, 0);
  assert.equal(sp.phases.at(-1)!.end, plan.dispatches.length);
  for (let i = 1; i < sp.phases.length; i++) assert.equal(sp.phases[i].start, sp.phases[i - 1].end);
  // every dispatch binding a streamed weight binds the slot of its phase, at the weight's offset
  sp.phases.forEach((ph, i) => {
    for (const d of plan.dispatches.slice(ph.start, ph.end)) {
      for (const b of d.bindings) {
        if (sp.slots.includes(b.buffer)) assert.equal(b.buffer, sp.slots[i % 2], `${d.label} in phase ${i}`);
      }
    }
  });
  // two slots instead of three layers of weights
  const layerBytes = D * D * 2 + D * D * 4;
  assert.equal(sp.residentBytes, LAYERS * layerBytes);
  assert.ok(sp.slotBytes >= layerBytes && sp.slotBytes < layerBytes + 512);
  const resident = lower([m.y, m.dproj]);
  assert.ok(plan.peakBytes < resident.peakBytes, `${plan.peakBytes} vs ${resident.peakBytes}`);
});

test("streaming gives the same numbers as resident weights, step after step", async () => {
  const res = await runMode("never");
  const str = await runMode("always");
  assert.deepEqual(res.loads, [0, 1, 2]); // loaded once at compile
  assert.ok(!res.exe.streaming && str.exe.streaming);
  // step 1: g0→slot0, g1→slot1, g2→slot0, (g1 still in slot1), g0→slot0;
  // step 2: g0 and g1 are still in their slots, so only g2→slot0 and g0→slot0
  assert.deepEqual(str.loads, [0, 1, 2, 0, 2, 0]);
  assert.deepEqual(str.out[0], res.out[0]);
  assert.deepEqual(str.out[1], res.out[1]);
  assert.ok(str.exe.streamStats.bytes > 0 && str.exe.streamStats.uploads === 6);
  res.exe.destroy();
  str.exe.destroy();
});

test("streaming through mapped staging buffers gives the same numbers as writeBuffer and resident", async () => {
  const res = await runMode("never");
  const staged = await runMode("always", 3, "staging-ring");
  assert.equal(staged.exe.uploadPath, "staging-ring");
  // 3 steps: the second and third reuse each slot's staging buffer after its map comes back
  assert.deepEqual(staged.loads, [0, 1, 2, 0, 2, 0, 2, 0]);
  assert.deepEqual(staged.out[0], res.out[0]);
  assert.deepEqual(staged.out[1], res.out[1]);
  // "auto" is writeBuffer (the faster path in measured streaming jobs; see CompileOptions.upload)
  const m = build();
  const auto = await compile([m.y], { weights: loader, stream: "always" });
  assert.equal(auto.uploadPath, "write-buffer");
  await assertRejectsMsg(
    () => compile([m.y], { weights: loader, upload: "mmap" as "auto" }),
    "upload",
    "mmap",
  );
  for (const e of [res.exe, staged.exe, auto]) e.destroy();
});

test("streaming: a budget below two slots is refused; a budget below resident streams", async () => {
  const m = build();
  const layerBytes = D * D * 2 + D * D * 4;
  await assertRejectsMsg(
    () => compile([m.y], { weights: loader, gpuMemoryBudget: layerBytes }),
    "budget of " + layerBytes,
    "two streaming slots",
  );
  const exe = await compile([m.y], { weights: loader, gpuMemoryBudget: 2.5 * layerBytes });
  assert.ok(exe.streaming);
  const ok = await compile([m.y], { weights: loader, gpuMemoryBudget: LAYERS * layerBytes });
  assert.ok(!ok.streaming);
  await assertRejectsMsg(() => compile([m.y]), "streamable weights", "loader");
  await assertRejectsMsg(() => exe.read(m.frozen[0]), "streamed");
});
