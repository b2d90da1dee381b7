// The pretrainable causal LM (models/lm.ts) and its HF checkpoint (io/hf_llama.ts):
// - one training step with every weight trainable matches PyTorch (tests/fixtures/parity/gen_lm.py:
//   logits, loss, every gradient, every weight after clipping + AdamW), at the parity tool's tolerance;
// - the exported checkpoint has HF's key set, shapes and config keys, opens with openLlm, gives the
//   same logits through causalLm (the frozen LM path) as the training graph, and its layers build as
//   the frozen encoder stack the vision models use;
// - `lm-eval`'s perplexity (the exact contract) equals an independent f64 CPU forward in this file.

import "../mod.ts";
import { Graph } from "../compiler/core/ir.ts";
import { grad } from "../compiler/grad.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { AdamW } from "../nn/optim.ts";
import { buildLm, initLmWeights, type LmConfig, lmNoDecay, lmTensorShapes } from "../models/lm.ts";
import { causalLm, frozenEncoderStack, llmLoader, openLlm } from "../models/llm.ts";
import { writeHfLlama } from "../io/hf_llama.ts";
import { openSafetensors } from "../io/safetensors.ts";
import { toFloat32 } from "../io/weights.ts";
import { BpeTokenizer } from "../io/tokenizer.ts";
import { splitWindows } from "../train/lm_score.ts";
import { assert, test } from "./testing.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const REF = `${ROOT}tests/fixtures/parity/parity-lm.safetensors`;
const TOKENIZER_1K = `${ROOT}data/corpus/reference/tokenizer-1k.json`;

/** max |a − b| / max(|b|, floor) — the parity tool's scaled error. */
function scaled(a: ArrayLike<number>, b: ArrayLike<number>, floor = 0): number {
  let num = 0, den = floor;
  for (let i = 0; i < b.length; i++) {
    if (!Number.isFinite(a[i])) return Infinity;
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

test("lm: one training step with every weight trainable matches PyTorch (logits, loss, grads, AdamW)", async () => {
  const ref = await openSafetensors(REF);
  const read = async (n: string) => toFloat32(ref.info(n), await ref.read(n));
  const C = JSON.parse(ref.metadata.config); // the generator writes its config into the file
  const cfg: LmConfig = {
    hidden: C.hidden,
    layers: C.layers,
    heads: C.heads,
    kvHeads: C.kv_heads,
    intermediate: C.intermediate,
    vocab: C.vocab,
    maxPositions: 64,
    rmsEps: C.eps,
    ropeTheta: C.theta,
  };
  const [B, T] = ref.info("ids").shape;
  const init = new Map<string, Float32Array>();
  for (const { name } of lmTensorShapes(cfg)) init.set(name, await read(`param.${name}`));
  const g = new Graph();
  const m = buildLm(g, cfg, B, T, init);
  const grads = grad(m.loss);
  const lr = 1e-3;
  const opt = new AdamW(g, grads, {
    lr,
    betas: [0.9, 0.95],
    eps: 1e-8,
    weightDecay: 0.1,
    maxGradNorm: 1,
    noDecay: lmNoDecay,
  });
  const params = [...m.params.values()];
  assert.equal(grads.size, params.length, "every weight is trainable");
  const gradNodes = params.map((p) => grads.get(p)!);
  const exe = await compile([m.logits, m.loss, ...gradNodes], { effects: opt.effects });
  exe.write(m.ids, Int32Array.from(await read("ids")));
  exe.write(m.targets, Int32Array.from(await read("targets")));
  opt.prepareStep(exe, lr);
  const [logits, loss, ...gv] = await exe.run([m.logits, m.loss, ...gradNodes]);
  const errs: Record<string, number> = {};
  errs.logits = scaled(logits, await read("logits"));
  errs.loss = scaled(loss, await read("loss"));
  let gscale = 0;
  for (const p of params) {
    for (const v of await read(`grad.${p.name}`)) gscale = Math.max(gscale, Math.abs(v));
  }
  errs.grad = 0;
  errs.next = 0;
  for (const [i, p] of params.entries()) {
    const gRef = await read(`grad.${p.name}`);
    errs.grad = Math.max(errs.grad, scaled(gv[i], gRef, 1e-3 * gscale));
    const nRef = await read(`next.${p.name}`), nOurs = await exe.read(p);
    for (let j = 0; j < nRef.length; j++) {
      if (Math.abs(gRef[j]) < 1e-6) continue;
      const e = Math.max(0, Math.abs(nOurs[j] - nRef[j]) - 2 ** -22 * Math.abs(nRef[j])) / lr;
      errs.next = Math.max(errs.next, e);
    }
  }
  exe.destroy();
  ref.close();
  const report = Object.entries(errs).map(([k, e]) => `${k} ${e.toExponential(2)}`).join(", ");
  console.log(`    lm parity, worst scaled errors: ${report}`);
  for (const [k, e] of Object.entries(errs)) assert.ok(e <= 1e-4, `${k}: ${e} > 1e-4`);
});

const TINY: LmConfig = {
  hidden: 32,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  intermediate: 48,
  vocab: 1024,
  maxPositions: 16,
};

async function tinyCheckpoint(
  dtype: "bf16" | "f32",
): Promise<{ dir: string; init: Map<string, Float32Array> }> {
  const dir = await Deno.makeTempDir({ prefix: "lm-ck-" });
  const init = initLmWeights(TINY, 3, 0.2); // large weights: logits far from uniform
  for (const [n, v] of init) if (n.includes("norm")) v.forEach((_, i) => v[i] = 1 + 0.1 * Math.sin(i));
  const g = new Graph();
  const m = buildLm(g, TINY, 1, 8, init);
  const tensors = new Map(
    lmTensorShapes(TINY).map(({ name, shape }) => [name, { shape, data: init.get(name)! }]),
  );
  await writeHfLlama(dir, m.cfg, tensors, { dtype, bosId: 1023, eosId: 1023, tokenizerJson: TOKENIZER_1K });
  return { dir, init };
}

test("lm: the exported HF checkpoint has HF's keys and shapes, and opens in the frozen paths", async (t) => {
  const { dir, init } = await tinyCheckpoint("f32");
  await t.step("config.json and the tensor names/shapes are HF LlamaForCausalLM's", async () => {
    const c = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    assert.deepEqual(c.architectures, ["LlamaForCausalLM"]);
    for (
      const [k, v] of Object.entries({
        model_type: "llama",
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        intermediate_size: 48,
        vocab_size: 1024,
        max_position_embeddings: 16,
        rms_norm_eps: 1e-5,
        rope_theta: 10000,
        tie_word_embeddings: false,
        hidden_act: "silu",
        bos_token_id: 1023,
        eos_token_id: 1023,
        torch_dtype: "float32",
      })
    ) assert.equal(c[k], v, k);
    const st = await openSafetensors(`${dir}/model.safetensors`);
    const want = [
      "model.embed_tokens.weight:1024,32",
      ...[0, 1].flatMap((i) => [
        `model.layers.${i}.input_layernorm.weight:32`,
        `model.layers.${i}.self_attn.q_proj.weight:32,32`,
        `model.layers.${i}.self_attn.k_proj.weight:16,32`,
        `model.layers.${i}.self_attn.v_proj.weight:16,32`,
        `model.layers.${i}.self_attn.o_proj.weight:32,32`,
        `model.layers.${i}.post_attention_layernorm.weight:32`,
        `model.layers.${i}.mlp.gate_proj.weight:48,32`,
        `model.layers.${i}.mlp.up_proj.weight:48,32`,
        `model.layers.${i}.mlp.down_proj.weight:32,48`,
      ]),
      "model.norm.weight:32",
      "lm_head.weight:1024,32",
    ];
    assert.deepEqual(st.list().map((x) => `${x.name}:${x.shape}`).sort(), want.sort());
    assert.equal(st.metadata?.format, "pt");
    const tc = JSON.parse(await Deno.readTextFile(`${dir}/tokenizer_config.json`));
    assert.equal(tc.tokenizer_class, "PreTrainedTokenizerFast");
    assert.equal(tc.eos_token, "<|endoftext|>");
    assert.equal(tc.add_bos_token, false);
    st.close();
    const bf = await tinyCheckpoint("bf16");
    const sb = await openSafetensors(`${bf.dir}/model.safetensors`);
    assert.ok(sb.list().every((x) => x.dtype === "BF16"));
    assert.equal(JSON.parse(await Deno.readTextFile(`${bf.dir}/config.json`)).torch_dtype, "bfloat16");
    sb.close();
    await Deno.remove(bf.dir, { recursive: true });
  });
  await t.step("causalLm on the checkpoint gives the training graph's logits", async () => {
    const ids = Int32Array.from([5, 900, 17, 1023, 44, 250, 3, 77]);
    const g1 = new Graph();
    const m = buildLm(g1, TINY, 1, 8, init, false);
    const e1 = await compile([m.logits]);
    e1.write(m.ids, ids);
    const [a] = await e1.run([m.logits]);
    const ck = await openLlm(dir);
    const g2 = new Graph();
    const idsIn = g2.input("ids", [1, 8], "i32");
    const logits = await causalLm(g2, idsIn, ck);
    const e2 = await compile([logits], { weights: llmLoader(ck.src) });
    e2.write(idsIn, ids);
    const [b] = await e2.run([logits]);
    assert.ok(scaled(b, a) < 1e-6, `causalLm vs training graph: ${scaled(b, a)}`);
    e1.destroy();
    e2.destroy();
    ck.src.close();
  });
  await t.step("its last layer builds and runs as the frozen encoder stack (--llm DIR)", async () => {
    const ck = await openLlm(dir);
    const g = new Graph();
    const x = g.param("x", [2, 5, 32], {
      trainable: false,
      init: (n) => Float32Array.from({ length: n }, (_, i) => Math.sin(i)),
    });
    const stack = await frozenEncoderStack(g, x, ck, [1]);
    const exe = await compile([stack.out], { weights: stack.loader });
    const [y] = await exe.run([stack.out]);
    assert.equal(y.length, 2 * 5 * 32);
    assert.ok(y.every(Number.isFinite) && y.some((v) => Math.abs(v) > 0.1));
    exe.destroy();
    ck.src.close();
  });
  await Deno.remove(dir, { recursive: true });
});

/** An independent f64 LLaMA forward (HF semantics) of one window: −Σ log p over its predicted tokens. */
function refWindowNll(W: Map<string, Float64Array>, c: LmConfig, ids: number[]): number {
  const D = c.hidden, H = c.heads, KV = c.kvHeads ?? H, Dh = D / H, F = c.intermediate, V = c.vocab;
  const T = ids.length, eps = c.rmsEps ?? 1e-5;
  const mat = (x: Float64Array, w: Float64Array, rows: number, out: number, inn: number) => {
    const y = new Float64Array(rows * out);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < out; o++) {
        let s = 0;
        for (let i = 0; i < inn; i++) s += x[r * inn + i] * w[o * inn + i];
        y[r * out + o] = s;
      }
    }
    return y;
  };
  const rms = (x: Float64Array, w: Float64Array) => {
    const y = new Float64Array(x.length);
    for (let r = 0; r < T; r++) {
      let s = 0;
      for (let i = 0; i < D; i++) s += x[r * D + i] ** 2;
      const k = 1 / Math.sqrt(s / D + eps);
      for (let i = 0; i < D; i++) y[r * D + i] = x[r * D + i] * k * w[i];
    }
    return y;
  };
  const rope = (x: Float64Array, heads: number) => {
    const y = new Float64Array(x.length);
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < heads; h++) {
        for (let i = 0; i < Dh / 2; i++) {
          const ang = t * Math.pow(10000, -(2 * i) / Dh);
          const o = t * heads * Dh + h * Dh;
          const a = x[o + i], b = x[o + i + Dh / 2];
          y[o + i] = a * Math.cos(ang) - b * Math.sin(ang);
          y[o + i + Dh / 2] = b * Math.cos(ang) + a * Math.sin(ang);
        }
      }
    }
    return y;
  };
  const w = (n: string) => W.get(n)!;
  let x = new Float64Array(T * D);
  ids.forEach((id, t) => x.set(w("model.embed_tokens.weight").subarray(id * D, (id + 1) * D), t * D));
  for (let l = 0; l < c.layers; l++) {
    const p = (n: string) => w(`model.layers.${l}.${n}`);
    const h0 = rms(x, p("input_layernorm.weight"));
    const q = rope(mat(h0, p("self_attn.q_proj.weight"), T, D, D), H);
    const k = rope(mat(h0, p("self_attn.k_proj.weight"), T, KV * Dh, D), KV);
    const v = mat(h0, p("self_attn.v_proj.weight"), T, KV * Dh, D);
    const a = new Float64Array(T * D);
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / (H / KV));
      for (let t = 0; t < T; t++) {
        const s = new Float64Array(t + 1);
        let mx = -Infinity;
        for (let u = 0; u <= t; u++) {
          let d = 0;
          for (let i = 0; i < Dh; i++) d += q[t * D + h * Dh + i] * k[u * KV * Dh + kh * Dh + i];
          s[u] = d / Math.sqrt(Dh);
          mx = Math.max(mx, s[u]);
        }
        let z = 0;
        for (let u = 0; u <= t; u++) z += s[u] = Math.exp(s[u] - mx);
        for (let u = 0; u <= t; u++) {
          for (let i = 0; i < Dh; i++) a[t * D + h * Dh + i] += (s[u] / z) * v[u * KV * Dh + kh * Dh + i];
        }
      }
    }
    const o = mat(a, p("self_attn.o_proj.weight"), T, D, D);
    const hres = x.map((xv, i) => xv + o[i]);
    const f = rms(hres, p("post_attention_layernorm.weight"));
    const gt = mat(f, p("mlp.gate_proj.weight"), T, F, D), up = mat(f, p("mlp.up_proj.weight"), T, F, D);
    const act = gt.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]);
    const dn = mat(act, p("mlp.down_proj.weight"), T, D, F);
    x = hres.map((hv, i) => hv + dn[i]);
  }
  const lg = mat(rms(x, w("model.norm.weight")), w("lm_head.weight"), T, V, D);
  let nll = 0;
  for (let t = 0; t + 1 < T; t++) {
    let mx = -Infinity;
    for (let u = 0; u < V; u++) mx = Math.max(mx, lg[t * V + u]);
    let z = 0;
    for (let u = 0; u < V; u++) z += Math.exp(lg[t * V + u] - mx);
    nll += mx + Math.log(z) - lg[t * V + ids[t + 1]];
  }
  return nll;
}

test("lm-eval: perplexity (the exact contract) equals an independent f64 forward", async () => {
  const { dir } = await tinyCheckpoint("bf16");
  const text = "A dictionary containing a natural history requires too many hands, as well as too much time.";
  const file = await Deno.makeTempFile({ suffix: ".txt" });
  await Deno.writeTextFile(file, text);
  // a corpus of 10 documents: 9 train, 1 held out; the unigram baseline counts the train split's tokens
  const docs = [
    "the cat sat",
    "a dog ran far",
    "the end",
    "hands and time",
    "too much",
    "a natural history",
    "requires",
    "many hands",
    "as well as",
    "held out",
  ];
  const corpus = `${dir}/corpus.txt`;
  await Deno.writeTextFile(corpus, docs.join("\n\n") + "\n");
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}examples/lm_eval.ts`, "--llm", dir, "--text", file, "--unigram", corpus],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(r.stdout);
  assert.equal(r.code, 0, out + new TextDecoder().decode(r.stderr));
  assert.match(out, new RegExp(`^checkpoint ${dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"));
  const m = /^perplexity (\S+) over (\d+) tokens$/m.exec(out);
  assert.ok(m, out);
  // the reference: the checkpoint's (bf16) weights, its tokenizer, windows of max_position_embeddings
  const ids = (await BpeTokenizer.load(`${dir}/tokenizer.json`)).encode(text);
  const st = await openSafetensors(`${dir}/model.safetensors`);
  const W = new Map<string, Float64Array>();
  for (const t of st.list()) W.set(t.name, Float64Array.from(toFloat32(t, await st.read(t.name))));
  st.close();
  const windows = splitWindows(ids.length, TINY.maxPositions);
  assert.ok(
    windows.length >= 2 && windows.at(-1)![1] - windows.at(-1)![0] < TINY.maxPositions,
    "a short last window",
  );
  let nll = 0, n = 0;
  for (const [s, e] of windows) {
    nll += refWindowNll(W, TINY, ids.slice(s, e));
    n += e - s - 1;
  }
  const want = Math.exp(nll / n);
  assert.equal(Number(m[2]), n);
  assert.ok(Math.abs(Number(m[1]) - want) / want < 1e-4, `perplexity ${m[1]} vs f64 reference ${want}`);
  assert.ok(want > 2 && want < 1e4, `a non-trivial perplexity (${want})`);
  // add-one unigram over the train documents (each followed by <|endoftext|>), same predicted tokens
  const tok = await BpeTokenizer.load(`${dir}/tokenizer.json`);
  const counts = new Map<number, number>();
  let total = 0;
  for (const d of docs.slice(0, 9)) {
    for (const id of [...tok.encode(d), 1023]) {
      counts.set(id, (counts.get(id) ?? 0) + 1);
      total++;
    }
  }
  let unll = 0;
  for (const [s, e] of windows) {
    for (let t = s + 1; t < e; t++) unll -= Math.log(((counts.get(ids[t]) ?? 0) + 1) / (total + 1024));
  }
  const u = /^unigram perplexity (\S+) over (\d+) tokens$/m.exec(out);
  assert.ok(u, out);
  assert.equal(Number(u[2]), n);
  assert.ok(
    Math.abs(Number(u[1]) / Math.exp(unll / n) - 1) < 1e-9,
    `unigram ${u[1]} vs ${Math.exp(unll / n)}`,
  );
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(file);
});
