// Frozen LLM layers from the real checkpoint formats, against PyTorch:
// - ref-blocks (shared): outputs and input gradients of LLaMA/OPT layers in the paper's encoder
//   semantics; ref-ours (tests/fixtures/gen_refs.py, PyTorch f64 on each checkpoint's stored weights)
//   for OPT, whose shared reference is 2.4e-4 off these weights (see tests/fixtures/README.md);
// - the three LLaMA forms (fp32 safetensors, sharded bf16, Meta .pth in fp16) decode to identical
//   matrices, and give identical block outputs given the same norm vectors;
// - LM mode: HF logits and loss — the shared ref-lm (made from the bf16 model) from the bf16 files,
//   and ref-ours from each form, the Meta .pth included (which needs the q/k permutation);
// - streaming under a GPU memory budget matches resident weights.

import "../mod.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { interpret } from "./ref/tensor.ts";
import { grad } from "../compiler/grad.ts";
import { mul } from "../compiler/ops/elementwise.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { reshape, slice } from "../compiler/ops/layout.ts";
import { crossEntropy } from "../compiler/ops/loss.ts";
import { compile } from "../compiler/runtime/executable.ts";
import {
  causalLm,
  frozenEncoderStack,
  layerTensorNames,
  type LlmCheckpoint,
  llmLoader,
  openLlm,
} from "../models/llm.ts";
import { openSafetensors } from "../io/safetensors.ts";
import { writeRandomLlama } from "../io/random_llm.ts";
import { toFloat32, type WeightSource } from "../io/weights.ts";
import { fromBf16, fromF16, toBf16, toF16 } from "../compiler/core/dtype.ts";
import { assert, assertRejectsMsg, test } from "./testing.ts";

const FX = new URL("./fixtures/", import.meta.url).pathname;

async function refs(file: string) {
  const src = await openSafetensors(FX + file);
  const get = async (name: string) => toFloat32(src.info(name), await src.read(name));
  return { src, get };
}

/** max |a - b| / max |b| — "within 1e-4 of the reference scale". */
function scaledErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    if (!Number.isFinite(a[i])) return Infinity;
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

/** y = stack(x) and dx = d(sum(y·g))/dx, x being a trainable param so autodiff returns dx. */
async function runStack(
  ck: LlmCheckpoint,
  layers: number[],
  x: Float32Array,
  gdata: Float32Array,
  opts: { budget?: number; norms?: Map<string, Float32Array> } = {},
) {
  const g = new Graph();
  const xp = g.param("x", [2, 9, ck.cfg.hidden], { init: x });
  const stack = await frozenEncoderStack(g, xp, ck, layers);
  const cot = g.input("g", [2, 9, ck.cfg.hidden]);
  const dx = grad(sumAll(mul(stack.out, cot))).get(xp)!;
  const exe = await compile([stack.out, dx], { weights: stack.loader, gpuMemoryBudget: opts.budget });
  exe.write(cot, gdata);
  for (const [name, v] of opts.norms ?? []) {
    if (g.params.some((p) => p.name === name)) exe.write(g.byName(name), v);
  }
  const [y, dxv] = await exe.run([stack.out, dx]);
  const result = {
    y,
    dx: dxv,
    streaming: exe.streaming,
    stats: { ...exe.streamStats },
    peak: exe.plan.peakBytes,
  };
  exe.destroy();
  return result;
}

const CASES: [string, string, number[], string][] = [
  ["llama.last", "llama-tiny", [2], "ref-blocks.safetensors"],
  ["llama.last2", "llama-tiny", [1, 2], "ref-blocks.safetensors"],
  ["opt.last", "opt-tiny", [2], "ref-ours.safetensors"],
  ["opt.last2", "opt-tiny", [1, 2], "ref-ours.safetensors"],
];

test("llm: LLaMA and OPT frozen layers match PyTorch (y and dx within 1e-4 of the reference scale)", async (t) => {
  const shared = await refs("ref-blocks.safetensors");
  for (const [key, dir, layers, file] of CASES) {
    await t.step(`${key} (${dir}, layers ${layers}) vs ${file}`, async () => {
      const r = await refs(file);
      const ck = await openLlm(FX + dir);
      const out = await runStack(ck, layers, await shared.get(`${key}.x`), await shared.get(`${key}.g`));
      const ey = scaledErr(out.y, await r.get(`${key}.y`)), edx = scaledErr(out.dx, await r.get(`${key}.dx`));
      assert.ok(ey < 1e-4, `${key}: y error ${ey}`);
      assert.ok(edx < 1e-4, `${key}: dx error ${edx}`);
      if (key.startsWith("opt")) {
        // the shared OPT reference is ~2.4e-4 off these fp16 weights in y (PyTorch on the same weights
        // agrees with us, see gen_refs.py); its dx differs more (3e-2 for last2: ReLU units whose
        // input sits near 0 switch with such weight differences), so only y is compared with it
        assert.ok(scaledErr(out.y, await shared.get(`${key}.y`)) < 5e-4);
      }
      ck.src.close();
      r.src.close();
    });
  }
  shared.src.close();
});

test("llm: the three LLaMA forms decode to identical matrices and give identical outputs", async () => {
  const forms = await Promise.all(
    ["llama-tiny", "llama-tiny-bf16", "llama-tiny-meta"].map((d) => openLlm(FX + d)),
  );
  assert.deepEqual(forms.map((f) => f.format), ["hf", "hf", "meta"]);
  const names = forms[0].src.list().map((t) => t.name).sort();
  for (const f of forms.slice(1)) assert.deepEqual(f.src.list().map((t) => t.name).sort(), names);
  const decode = async (s: WeightSource, n: string) => toFloat32(s.info(n), await s.read(n));
  const round = [(v: number) => v, (v: number) => fromBf16(toBf16(v)), (v: number) => fromF16(toF16(v))];
  for (const n of names) {
    const [a, b, c] = await Promise.all(forms.map((f) => decode(f.src, n)));
    if (n.includes("norm")) {
      // fixture property: the RMSNorm weights are not 16-bit exact in the fp32 file, so each
      // 16-bit form holds them rounded to its own dtype
      assert.deepEqual(b, a.map(round[1]), `${n}: bf16 form is not the bf16 rounding of fp32`);
      assert.deepEqual(c, a.map(round[2]), `${n}: Meta form is not the f16 rounding of fp32`);
    } else {
      assert.deepEqual(b, a, `${n}: bf16 shards differ from fp32`);
      assert.deepEqual(c, a, `${n}: Meta .pth differs from fp32`);
    }
  }
  // same norm vectors everywhere (the bf16 ones, exact in all three storage dtypes' f32 view):
  // then the f32, bf16 and f16 matrix paths must give bit-identical outputs
  const r = await refs("ref-blocks.safetensors");
  const x = await r.get("llama.last2.x"), gd = await r.get("llama.last2.g");
  const norms = new Map<string, Float32Array>();
  for (const n of names.filter((n) => n.includes("norm"))) norms.set(n, await decode(forms[1].src, n));
  const outs = [];
  for (const f of forms) outs.push(await runStack(f, [1, 2], x, gd, { norms }));
  for (const o of outs.slice(1)) {
    assert.deepEqual(o.y, outs[0].y);
    assert.deepEqual(o.dx, outs[0].dx);
  }
  for (const f of forms) f.src.close();
  r.src.close();
});

test("llm: LM mode (rotary, causal mask, final norm, lm_head) matches HF logits and loss", async (t) => {
  const shared = await refs("ref-lm.safetensors");
  const ours = await refs("ref-ours.safetensors");
  const ids = Int32Array.from(await shared.get("input_ids"));
  const cases: [string, typeof shared, string][] = [
    ["llama-tiny-bf16", shared, ""], // the shared ref-lm was made from the bf16 model
    ["llama-tiny", ours, "lm.llama-tiny."],
    ["llama-tiny-bf16", ours, "lm.llama-tiny-bf16."],
    ["llama-tiny-meta", ours, "lm.llama-tiny-meta."],
  ];
  for (const [dir, ref, prefix] of cases) {
    await t.step(`${dir} vs ${ref === shared ? "ref-lm" : "ref-ours"}`, async () => {
      const ck = await openLlm(FX + dir);
      const g = new Graph();
      const [B, T] = [2, 12];
      const idsIn = g.input("ids", [B, T], "i32");
      const logits = await causalLm(g, idsIn, ck);
      // next-token loss: logits[:, :-1] against ids[:, 1:]
      const V = ck.cfg.vocab;
      const labels = g.input("labels", [B * (T - 1)], "i32");
      const loss = crossEntropy(reshape(slice(logits, 1, 0, T - 1), [B * (T - 1), V]), labels);
      const exe = await compile([logits, loss], { weights: llmLoader(ck.src) });
      exe.write(idsIn, ids);
      exe.write(
        labels,
        Int32Array.from(
          { length: B * (T - 1) },
          (_, k) => ids[Math.floor(k / (T - 1)) * T + (k % (T - 1)) + 1],
        ),
      );
      const [lg, ls] = await exe.run([logits, loss]);
      const refLoss = (await ref.get(prefix + "loss"))[0];
      const e = scaledErr(lg, await ref.get(prefix + "logits"));
      assert.ok(e < 1e-4, `${dir}: logits error ${e}`);
      assert.ok(Math.abs(ls[0] - refLoss) < 1e-4 * Math.abs(refLoss), `${dir}: loss ${ls[0]} vs ${refLoss}`);
      exe.destroy();
      ck.src.close();
    });
  }
  shared.src.close();
  ours.src.close();
});

test("llm: streaming under a memory budget matches resident; too small a budget is refused", async () => {
  const ck = await openLlm(FX + "llama-tiny");
  const r = await refs("ref-blocks.safetensors");
  const x = await r.get("llama.last2.x"), gd = await r.get("llama.last2.g");
  const layers = [0, 1, 2];
  // bytes of one layer's streamable matrices (fp32 checkpoint)
  const layerBytes = layerTensorNames(ck.cfg, 0).filter((n) => ck.src.info(n).shape.length === 2)
    .reduce((s, n) => s + ck.src.info(n).bytes, 0);
  const resident = await runStack(ck, layers, x, gd);
  const streamed = await runStack(ck, layers, x, gd, { budget: Math.round(1.5 * layerBytes) });
  assert.ok(!resident.streaming && streamed.streaming);
  assert.deepEqual(streamed.y, resident.y);
  assert.deepEqual(streamed.dx, resident.dx);
  assert.ok(streamed.peak < resident.peak, `peak ${streamed.peak} vs ${resident.peak}`);
  assert.ok(streamed.stats.bytes >= 3 * layerBytes, `streamed ${streamed.stats.bytes} bytes`);
  console.log(
    `llama-tiny 3 layers: peak ${resident.peak} B resident vs ${streamed.peak} B streamed; ` +
      `${streamed.stats.bytes} B uploaded in ${streamed.stats.uploads} uploads at ` +
      `${(streamed.stats.bytes / streamed.stats.seconds / 1e9).toFixed(3)} GB/s (read + upload, lavapipe)`,
  );
  await assertRejectsMsg(
    () => runStack(ck, layers, x, gd, { budget: layerBytes }),
    "budget",
    "two streaming slots",
  );
  ck.src.close();
  r.src.close();
});

test("llm: bad layer selection, missing tensors, config mismatch and wrong width give clear errors", async () => {
  const ck = await openLlm(FX + "llama-tiny");
  const g = new Graph();
  await assertRejectsMsg(
    () => frozenEncoderStack(g, g.input("x", [1, 2, 64]), ck, [3]),
    "layer 3",
    "3 layers",
  );
  await assertRejectsMsg(() => frozenEncoderStack(g, g.input("y", [1, 2, 32]), ck, [0]), "64");
  ck.src.close();
  const tmp = await Deno.makeTempDir();
  try {
    // a random checkpoint holding only layer 1 of 3: layer 1 works, layer 2 is missing
    await writeRandomLlama(`${tmp}/part`, { hidden: 32, heads: 4, intermediate: 48, layers: 3, vocab: 16 }, {
      only: [1],
    });
    const part = await openLlm(`${tmp}/part`);
    const g2 = new Graph();
    const stack = await frozenEncoderStack(g2, g2.input("x", [1, 3, 32]), part, [1]);
    const exe = await compile([stack.out], { weights: stack.loader });
    exe.write(g2.byName("x"), Float32Array.from({ length: 96 }, (_, i) => Math.sin(i)));
    const [y] = await exe.run([stack.out]);
    assert.ok(y.every(Number.isFinite) && y.some((v) => v !== 0));
    exe.destroy();
    await assertRejectsMsg(
      () => frozenEncoderStack(g2, g2.input("x2", [1, 3, 32]), part, [2]),
      "no tensor",
      "model.layers.2.",
    );
    part.src.close();
    // a config that disagrees with the tensors
    await Deno.mkdir(`${tmp}/bad`);
    const cfg = JSON.parse(await Deno.readTextFile(FX + "llama-tiny/config.json"));
    await Deno.writeTextFile(`${tmp}/bad/config.json`, JSON.stringify({ ...cfg, intermediate_size: 100 }));
    await Deno.copyFile(FX + "llama-tiny/model.safetensors", `${tmp}/bad/model.safetensors`);
    const bad = await openLlm(`${tmp}/bad`);
    const g3 = new Graph();
    await assertRejectsMsg(
      () => frozenEncoderStack(g3, g3.input("x", [1, 2, 64]), bad, [0]),
      "model.safetensors",
      "mlp.gate_proj.weight",
      "100",
    );
    bad.src.close();
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

test("llm: a grouped-query-attention checkpoint (LLaMA-2/3 style kvHeads < heads) runs and matches the CPU reference", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await writeRandomLlama(tmp, { hidden: 32, heads: 4, kvHeads: 2, intermediate: 48, layers: 2, vocab: 16 });
    const ck = await openLlm(tmp);
    assert.equal(ck.cfg.kvHeads, 2);
    assert.deepEqual(ck.src.info("model.layers.0.self_attn.k_proj.weight").shape, [16, 32]);
    const g = new Graph();
    const x = g.input("x", [2, 5, 32]);
    const stack = await frozenEncoderStack(g, x, ck, [0, 1]);
    const exe = await compile([stack.out], { weights: stack.loader });
    const xs = Float32Array.from({ length: 320 }, (_, i) => Math.sin(0.37 * i));
    exe.write(x, xs);
    const [y] = await exe.run([stack.out]);
    const feeds = new Map<Node, ArrayLike<number>>([[x, xs]]);
    const streamable = g.params.filter((p) => p.streamGroup !== undefined);
    for (const [n, v] of await stack.loader(0, streamable)) {
      feeds.set(n, v instanceof Uint16Array ? Float64Array.from(v, (w) => fromBf16(w)) : v);
    }
    const want = interpret([stack.out], feeds).get(stack.out)!.data;
    assert.ok(scaledErr(y, want) < 1e-5, `GQA stack error ${scaledErr(y, want)}`);
    exe.destroy();
    ck.src.close();
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
