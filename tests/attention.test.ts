// Tests of the attention family: forward and all three gradients (q, k, v trainable) vs the f64 CPU
// reference and finite differences, over bidirectional/causal, Tq != Tk, odd head dims, multi-tile
// lengths, grouped-query heads and a custom scale; plus the saved logsumexp, the plan's kernels and
// workgroup folding, and shape errors.

import { checkOp, randParam } from "./harness.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { Graph } from "../compiler/ir.ts";
import { attention, attentionLse } from "../compiler/ops/attention.ts";
import { grad } from "../compiler/grad.ts";
import { kernelLabels, lower } from "../compiler/lower.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { compile } from "../compiler/runtime.ts";
import { interpret } from "./ref/tensor.ts";
import { assertClose } from "./harness.ts";

interface Case {
  what: string;
  B: number;
  Tq: number;
  Tk: number;
  H: number;
  Hkv?: number;
  Dh: number;
  causal: boolean;
  scale?: number;
}

const CASES: Case[] = [
  { what: "bidirectional", B: 2, Tq: 5, Tk: 5, H: 2, Dh: 4, causal: false },
  { what: "causal", B: 2, Tq: 5, Tk: 5, H: 2, Dh: 4, causal: true },
  { what: "Tq<Tk bidirectional", B: 2, Tq: 3, Tk: 7, H: 2, Dh: 4, causal: false },
  { what: "Tq<Tk causal", B: 2, Tq: 3, Tk: 7, H: 2, Dh: 4, causal: true },
  { what: "Tq>Tk causal (rows with no key)", B: 1, Tq: 6, Tk: 4, H: 2, Dh: 3, causal: true },
  { what: "odd Dh=5", B: 1, Tq: 6, Tk: 6, H: 3, Dh: 5, causal: false },
  { what: "long T=67, Dh=3, multi-tile", B: 1, Tq: 67, Tk: 67, H: 2, Dh: 3, causal: true },
  {
    what: "Tq=19 Tk=41, Dh=37 (several columns per thread)",
    B: 1,
    Tq: 19,
    Tk: 41,
    H: 1,
    Dh: 37,
    causal: false,
  },
  { what: "GQA H=4 Hkv=2", B: 2, Tq: 5, Tk: 5, H: 4, Hkv: 2, Dh: 4, causal: false },
  { what: "GQA H=4 Hkv=2 causal", B: 1, Tq: 6, Tk: 9, H: 4, Hkv: 2, Dh: 3, causal: true },
  { what: "MQA H=3 Hkv=1", B: 2, Tq: 4, Tk: 5, H: 3, Hkv: 1, Dh: 2, causal: false },
  { what: "scale 0.9", B: 2, Tq: 4, Tk: 6, H: 2, Dh: 4, causal: true, scale: 0.9 },
];

function build(c: Case, g: Graph) {
  const Hkv = c.Hkv ?? c.H;
  const q = randParam(g, "q", [c.B, c.Tq, c.H * c.Dh]);
  const k = randParam(g, "k", [c.B, c.Tk, Hkv * c.Dh]);
  const v = randParam(g, "v", [c.B, c.Tk, Hkv * c.Dh]);
  return attention(q, k, v, { heads: c.H, kvHeads: c.Hkv, causal: c.causal, scale: c.scale });
}

test("attention: forward and dq/dk/dv vs CPU f64 reference and finite differences", async (t) => {
  for (const c of CASES) {
    const Hkv = c.Hkv ?? c.H;
    await t.step(
      `${c.what}: B=${c.B} Tq=${c.Tq} Tk=${c.Tk} H=${c.H} Hkv=${Hkv} Dh=${c.Dh}${c.causal ? " causal" : ""}`,
      async () => {
        const r = await checkOp({ build: (g) => build(c, g), fdSamples: 12 });
        assert.deepEqual(Object.keys(r.gradErrs).sort(), ["k", "q", "v"]);
      },
    );
  }
});

test("attention: saved logsumexp matches the reference; the plan runs the flash-style kernels", async () => {
  const g = new Graph();
  const c: Case = { what: "", B: 2, Tq: 9, Tk: 11, H: 4, Hkv: 2, Dh: 6, causal: true };
  const y = build(c, g);
  const lse = attentionLse(y);
  const cpu = interpret([y, lse]);
  const exe = await compile([y, lse]);
  const [, gotL] = await exe.run([y, lse]);
  assertClose("logsumexp", gotL, cpu.get(lse)!.data, 1e-5);
  exe.destroy();

  const loss = sumAll(y);
  const gs = grad(loss);
  const labels = kernelLabels(lower([...gs.values()]));
  for (const l of ["attention_fwd", "attention_bwd_d", "attention_bwd_q", "attention_bwd_kv"]) {
    assert.ok(labels.includes(l), `plan lacks ${l}: ${labels.join(", ")}`);
  }
});

test("attention: a gradient needed only for q builds no dk/dv kernel", () => {
  const g = new Graph();
  const q = randParam(g, "q", [1, 4, 8]);
  const k = g.param("k", [1, 4, 8], { trainable: false });
  const v = g.param("v", [1, 4, 8], { trainable: false });
  const gs = grad(sumAll(attention(q, k, v, { heads: 2 })));
  const labels = kernelLabels(lower([...gs.values()]));
  assert.ok(labels.includes("attention_bwd_q"));
  assert.ok(!labels.includes("attention_bwd_kv"), labels.join(", "));
});

test("attention: large batch·heads folds into 2-D grids within limits; big heads fit workgroup storage", () => {
  const g = new Graph();
  // B·H·(Tq/16) = 4096·32·13 workgroups for the forward: far over 65535 in one dimension
  const [B, T, H, Dh] = [4096, 200, 32, 128];
  const q = g.input("q", [B, T, H * Dh]);
  const k = g.param("k", [B, T, 8 * Dh]);
  const v = g.param("v", [B, T, 8 * Dh]);
  const y = attention(q, k, v, { heads: H, kvHeads: 8, causal: true });
  const plan = lower([...grad(sumAll(y)).values()]);
  for (const d of plan.dispatches) {
    for (const w of d.workgroups) assert.ok(w >= 1 && w <= 65535, `${d.label}: ${d.workgroups}`);
    if (!d.label.startsWith("attention") || d.label === "attention_bwd_d") continue;
    let bytes = 0;
    for (const m of d.code.matchAll(/var<workgroup> \w+: array<f32, (\d+)>/g)) bytes += 4 * Number(m[1]);
    assert.ok(bytes > 0 && bytes <= 16384, `${d.label}: ${bytes} bytes of workgroup storage`);
    const wg = Number(/@workgroup_size\((\d+)\)/.exec(d.code)![1]);
    assert.ok(wg <= 256, `${d.label}: workgroup size ${wg}`);
  }
});

test("attention: shape errors name the op and the shapes", () => {
  const g = new Graph();
  const q = g.input("q", [2, 5, 8]);
  const k = g.input("k", [2, 7, 8]);
  const v = g.input("v", [2, 7, 8]);
  assertThrowsMsg(() => attention(q, k, v, { heads: 3 }), "attention", "[2,5,8]", "divisible by heads=3");
  const v6 = g.input("v6", [2, 6, 8]);
  assertThrowsMsg(() => attention(q, k, v6, { heads: 2 }), "attention", "[2,6,8]", "same length Tk");
  const kb = g.input("kb", [3, 7, 8]);
  const vb = g.input("vb", [3, 7, 8]);
  assertThrowsMsg(() => attention(q, kb, vb, { heads: 2 }), "attention", "[3,7,8]", "same batch size");
  const q12 = g.input("q12", [2, 5, 12]);
  const k8 = g.input("k8", [2, 7, 8]);
  assertThrowsMsg(
    () => attention(q12, k8, k8, { heads: 3, kvHeads: 2 }),
    "attention",
    "[2,5,12]",
    "multiple of kvHeads",
  );
  const k4 = g.input("k4", [2, 7, 4]);
  assertThrowsMsg(() => attention(q, k4, k4, { heads: 2 }), "attention", "[2,7,4]", "kvHeads·Dh");
  const q2 = g.input("q2", [10, 8]);
  assertThrowsMsg(() => attention(q2, k, v, { heads: 2 }), "attention", "[10,8]", "[B,Tq,H·Dh]");
});
