// Tests of the attention family: forward and all three gradients (q, k, v trainable) vs the f64 CPU
// reference and finite differences, over bidirectional/causal, Tq != Tk, odd head dims (scalar rows
// in the direct kernels) and multiples of 4 (vec4 rows), multi-tile lengths, grouped-query heads, a
// custom scale and a real head size (64); plus the saved logsumexp (incl. rows with no visible key),
// the plan's kernels, workgroup folding (lowering limits and a GPU run with a folded grid), and shape
// errors. The GPU checks run with each kernel variant forced (tiled and direct); which variant the
// heuristic picks, and that each really is barrier-free or tiled, is checked on the lowered code.

import { checkOp, randParam } from "./harness.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { attention, attentionLse } from "../compiler/ops/attention.ts";
import { grad } from "../compiler/grad.ts";
import { kernelLabels, lower } from "../compiler/lower/plan.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { getGpu } from "../compiler/runtime/device.ts";
import { mul } from "../compiler/ops/elementwise.ts";
import { interpret } from "./ref/tensor.ts";
import { assertClose } from "./harness.ts";
import {
  type AttentionVariant,
  DIRECT_MAX_DH,
  DIRECT_MAX_SCALAR_DH,
  setAttentionVariant,
} from "../kernels/attention.ts";
import { DEFAULT_LOWER_CTX } from "../kernels/kernel.ts";

const VARIANTS: AttentionVariant[] = ["direct", "tiled"];

/** Runs fn with every attention kernel lowered as `v`, restoring the heuristic afterwards. */
async function withVariant<R>(v: AttentionVariant | undefined, fn: () => R | Promise<R>): Promise<R> {
  setAttentionVariant(v);
  try {
    return await fn();
  } finally {
    setAttentionVariant(undefined);
  }
}

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
  // (over DIRECT_MAX_SCALAR_DH: tiled even when direct is forced)
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
  // a real model's head size: several output columns per thread, smaller tiles to fit storage
  { what: "Dh=64 GQA causal", B: 1, Tq: 5, Tk: 7, H: 2, Hkv: 1, Dh: 64, causal: true },
  // vec4 rows of 3 (direct), rows with no visible key, GQA
  { what: "Tq>Tk causal GQA, Dh=12", B: 2, Tq: 7, Tk: 5, H: 4, Hkv: 2, Dh: 12, causal: true },
  // the largest scalar rows of the direct kernels
  { what: "Dh=31", B: 1, Tq: 6, Tk: 6, H: 2, Dh: 31, causal: true },
];

function build(c: Case, g: Graph) {
  const Hkv = c.Hkv ?? c.H;
  const q = randParam(g, "q", [c.B, c.Tq, c.H * c.Dh]);
  const k = randParam(g, "k", [c.B, c.Tk, Hkv * c.Dh]);
  const v = randParam(g, "v", [c.B, c.Tk, Hkv * c.Dh]);
  return attention(q, k, v, { heads: c.H, kvHeads: c.Hkv, causal: c.causal, scale: c.scale });
}

for (const variant of VARIANTS) {
  test(`attention (${variant}): forward and dq/dk/dv vs CPU f64 reference and finite differences`, async (t) => {
    for (const c of CASES) {
      const Hkv = c.Hkv ?? c.H;
      await t.step(
        `${c.what}: B=${c.B} Tq=${c.Tq} Tk=${c.Tk} H=${c.H} Hkv=${Hkv} Dh=${c.Dh}${
          c.causal ? " causal" : ""
        }`,
        async () => {
          const r = await withVariant(variant, () => checkOp({ build: (g) => build(c, g), fdSamples: 12 }));
          assert.deepEqual(Object.keys(r.gradErrs).sort(), ["k", "q", "v"]);
        },
      );
    }
  });
}

/** The lowered attention kernels of fwd + dq/dk/dv for a case, by label. */
function attnKernels(c: Case, ctx = DEFAULT_LOWER_CTX) {
  const g = new Graph();
  const plan = lower([...grad(sumAll(build(c, g))).values()], [], { ctx });
  return plan.dispatches.filter((d) => /^attention_(fwd|bwd_q|bwd_kv)$/.test(d.label));
}

test("attention: variant choice; direct kernels have no workgroup memory or barriers, tiled ones do", async () => {
  const c: Case = { what: "", B: 2, Tq: 9, Tk: 11, H: 4, Hkv: 2, Dh: 8, causal: true };
  const isDirect = (code: string) => !/workgroupBarrier|var<workgroup>/.test(code);
  const check = (what: string, ctx: typeof DEFAULT_LOWER_CTX, direct: boolean, cc = c) => {
    const ks = attnKernels(cc, ctx);
    assert.equal(ks.length, 3, `${what}: ${ks.map((d) => d.label)}`);
    for (const d of ks) assert.equal(isDirect(d.code), direct, `${what}: ${d.label}`);
  };
  const soft = { ...DEFAULT_LOWER_CTX, isSoftware: true };
  check("default ctx (GPU)", DEFAULT_LOWER_CTX, false);
  check("software adapter", soft, true);
  // a head too big for the direct kernels' registers falls back to tiled, even when forced
  check("software, big head", soft, false, { ...c, Dh: DIRECT_MAX_DH + 4 });
  check("software, biggest vec4 head", soft, true, { ...c, Dh: DIRECT_MAX_DH });
  check("software, big scalar head", soft, false, { ...c, Dh: DIRECT_MAX_SCALAR_DH + 1 });
  check("software, biggest scalar head", soft, true, { ...c, Dh: DIRECT_MAX_SCALAR_DH - 1 });
  await withVariant("direct", () => {
    check("forced direct", DEFAULT_LOWER_CTX, true);
    check("forced direct, big head", DEFAULT_LOWER_CTX, false, { ...c, Dh: DIRECT_MAX_DH + 4 });
  });
  await withVariant("tiled", () => check("forced tiled", soft, false));
  // the direct kernels read rows as vec4 when Dh % 4 == 0, as scalars otherwise
  await withVariant("direct", () => {
    for (const d of attnKernels(c)) assert.match(d.code, /var<storage, read> q: array<vec4<f32>>/, d.label);
    for (const d of attnKernels({ ...c, Dh: 6 })) assert.match(d.code, /var<storage, read> q: array<f32>/);
  });
});

test("attention: saved logsumexp matches the reference (each variant); the plan runs the flash-style kernels", async () => {
  for (const variant of VARIANTS) {
    await withVariant(variant, () => checkLse(variant));
  }

  const g = new Graph();
  const y = build({ what: "", B: 2, Tq: 9, Tk: 11, H: 4, Hkv: 2, Dh: 6, causal: true }, g);

  const loss = sumAll(y);
  const gs = grad(loss);
  const labels = kernelLabels(lower([...gs.values()]));
  for (const l of ["attention_fwd", "attention_bwd_d", "attention_bwd_q", "attention_bwd_kv"]) {
    assert.ok(labels.includes(l), `plan lacks ${l}: ${labels.join(", ")}`);
  }
});

async function checkLse(variant: AttentionVariant) {
  for (const [Tq, Tk, Dh] of [[9, 11, 6], [7, 4, 8]]) {
    // [7, 4] causal: queries 0..2 see no key, their lse is the kernels' -3.4028235e38 (not -Infinity)
    const g = new Graph();
    const c: Case = { what: "", B: 2, Tq, Tk, H: 4, Hkv: 2, Dh, causal: true };
    const y = build(c, g);
    const lse = attentionLse(y);
    const cpu = interpret([y, lse]);
    const exe = await compile([y, lse]);
    const [gotY, gotL] = await exe.run([y, lse]);
    assertClose(`${variant} output Tq=${Tq} Tk=${Tk}`, gotY, cpu.get(y)!.data, 1e-5);
    assertClose(`${variant} logsumexp Tq=${Tq} Tk=${Tk}`, gotL, cpu.get(lse)!.data, 1e-5);
    if (Tq > Tk) assert.equal(gotL[0], cpu.get(lse)!.data[0]);
    exe.destroy();
  }
}

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

test("attention: large batch·heads folds into 2-D grids within limits; big heads fit workgroup storage", async () => {
  await withVariant("direct", () => {
    for (const d of lowerHuge().dispatches) {
      for (const w of d.workgroups) assert.ok(w >= 1 && w <= 65535, `direct ${d.label}: ${d.workgroups}`);
    }
  });
  const plan = lowerHuge(); // tiled on the default (GPU) ctx
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

function lowerHuge() {
  const g = new Graph();
  // B·H·(Tq/16) = 4096·32·13 workgroups for the forward: far over 65535 in one dimension
  const [B, T, H, Dh] = [4096, 200, 32, 128];
  const q = g.input("q", [B, T, H * Dh]);
  const k = g.param("k", [B, T, 8 * Dh]);
  const v = g.param("v", [B, T, 8 * Dh]);
  const y = attention(q, k, v, { heads: H, kvHeads: 8, causal: true });
  return lower([...grad(sumAll(y)).values()]);
}

for (const variant of VARIANTS) {
  test(`attention (${variant}): fwd + dq/dk/dv on the GPU with folded grids (maxWorkgroupsPerDim 4)`, async () => {
    await withVariant(variant, () => checkFolded(variant));
  });
}

async function checkFolded(variant: AttentionVariant) {
  // tiled, T=20: B·H·(query tiles) = 2·4·2 = 16 workgroups → 4x4 for the forward and dq;
  // B·Hkv·(key tiles) = 2·2·2 = 8 → 4x2 for dk/dv. direct, T=70: B·H·T = 560 query threads in
  // workgroups of 64 → 4x3, B·Hkv·T = 280 key threads → 4x2
  const T = variant === "tiled" ? 20 : 70;
  const g = new Graph();
  const y = build({ what: "", B: 2, Tq: T, Tk: T, H: 4, Hkv: 2, Dh: 6, causal: true }, g);
  const c = g.input("c", y.shape);
  const gs = grad(sumAll(mul(y, c)));
  const outs: Node[] = [y, attentionLse(y), ...gs.values()];
  const cv = Array.from({ length: c.size }, (_, i) => Math.cos(i));
  const cpu = interpret(outs, new Map([[c, cv]]));
  const gpu = await getGpu();
  const exe = await compile(outs, { ctx: { ...gpu.lowerCtx, maxWorkgroupsPerDim: 4 } });
  for (const l of ["attention_fwd", "attention_bwd_q", "attention_bwd_kv"]) {
    const d = exe.plan.dispatches.find((d) => d.label === l)!;
    assert.ok(d.workgroups[1] > 1, `${variant} ${l} is not folded: ${d.workgroups}`);
  }
  exe.write(c, cv);
  const got = await exe.run(outs);
  const names = ["output", "logsumexp", ...[...gs.keys()].map((p) => `d${p.name}`)];
  outs.forEach((o, i) => assertClose(`${variant} ${names[i]} (folded)`, got[i], cpu.get(o)!.data, 1e-4));
  exe.destroy();
}

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
