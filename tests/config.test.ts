// LLM configs (HF config.json for LLaMA/OPT, Meta params.json), config-vs-tensor checks, layer selection.

import {
  assert,
  assertDeepEquals,
  assertEquals,
  assertRejectsMsg,
  assertThrowsMsg,
  test,
} from "./testing.ts";
import {
  checkConfigAgainstTensors,
  type LlmConfig,
  metaIntermediate,
  parseHfConfig,
  parseLayerSelection,
  parseMetaParams,
  readConfig,
} from "../io/config.ts";
import { openCheckpointDir, openSafetensors, writeSafetensors } from "../io/safetensors.ts";

const FIX = new URL("./fixtures/", import.meta.url).pathname;
const LLAMA_CFG = JSON.parse(Deno.readTextFileSync(FIX + "llama-tiny/config.json"));
const OPT_CFG = JSON.parse(Deno.readTextFileSync(FIX + "opt-tiny/config.json"));
const META_PARAMS = JSON.parse(Deno.readTextFileSync(FIX + "llama-tiny-meta/params.json"));

const LLAMA_TINY: LlmConfig = {
  type: "llama",
  hidden: 64,
  heads: 4,
  kvHeads: 4,
  headDim: 16,
  intermediate: 172,
  layers: 3,
  vocab: 128,
  normEps: 1e-6,
  ropeTheta: 10000,
  tieEmbeddings: false,
  maxPositions: 128,
  activation: "silu",
};

/** HF LLaMA name → Meta name (for building a Meta-named copy of llama-tiny). */
function hfToMeta(name: string): string {
  return name
    .replace(/^model\.embed_tokens\./, "tok_embeddings.")
    .replace(/^model\.norm\./, "norm.")
    .replace(/^lm_head\./, "output.")
    .replace(/^model\.layers\./, "layers.")
    .replace(".self_attn.q_proj.", ".attention.wq.")
    .replace(".self_attn.k_proj.", ".attention.wk.")
    .replace(".self_attn.v_proj.", ".attention.wv.")
    .replace(".self_attn.o_proj.", ".attention.wo.")
    .replace(".mlp.gate_proj.", ".feed_forward.w1.")
    .replace(".mlp.down_proj.", ".feed_forward.w2.")
    .replace(".mlp.up_proj.", ".feed_forward.w3.")
    .replace(".input_layernorm.", ".attention_norm.")
    .replace(".post_attention_layernorm.", ".ffn_norm.");
}

test("config: HF llama and opt config.json of the fixtures", async () => {
  assertDeepEquals(parseHfConfig(LLAMA_CFG, "llama/config.json"), LLAMA_TINY);
  assertDeepEquals(await readConfig(FIX + "llama-tiny"), LLAMA_TINY);
  assertDeepEquals(await readConfig(FIX + "llama-tiny-bf16/"), LLAMA_TINY);
  assertDeepEquals(await readConfig(FIX + "opt-tiny"), {
    type: "opt",
    hidden: 64,
    heads: 4,
    kvHeads: 4,
    headDim: 16,
    intermediate: 256,
    layers: 3,
    vocab: 128,
    normEps: 1e-5,
    ropeTheta: 0,
    tieEmbeddings: true,
    maxPositions: 64,
    doLayerNormBefore: true,
    wordEmbedProjDim: 64,
    activation: "relu",
  });
});

test("config: llama variants (GQA, head_dim, rope_theta spellings, defaults) and errors", () => {
  const base = { ...LLAMA_CFG };
  delete base.rope_parameters;
  delete base.head_dim;
  delete base.num_key_value_heads;
  const c = parseHfConfig(base, "c.json");
  assertEquals(c.ropeTheta, 10000);
  assertEquals(c.kvHeads, 4);
  assertEquals(c.headDim, 16);
  assertEquals(parseHfConfig({ ...base, rope_theta: 500000 }, "c.json").ropeTheta, 500000);
  assertEquals(parseHfConfig({ ...base, rope_parameters: { rope_theta: 1e6 } }, "c.json").ropeTheta, 1e6);
  const gqa = parseHfConfig({ ...base, num_key_value_heads: 2, head_dim: 32 }, "c.json");
  assertEquals(gqa.kvHeads, 2);
  assertEquals(gqa.headDim, 32);
  assertThrowsMsg(
    () => parseHfConfig({ ...base, num_key_value_heads: 3 }, "c.json"),
    "c.json",
    "num_key_value_heads",
    "3",
  );
  assertThrowsMsg(
    () => parseHfConfig({ ...base, hidden_size: undefined }, "c.json"),
    "c.json",
    "hidden_size",
  );
  assertThrowsMsg(
    () => parseHfConfig({ ...base, num_hidden_layers: 2.5 }, "c.json"),
    "c.json",
    "num_hidden_layers",
    "2.5",
  );
  assertThrowsMsg(
    () => parseHfConfig({ ...base, model_type: "gpt2" }, "c.json"),
    "c.json",
    'unsupported model_type "gpt2"',
  );
  assertThrowsMsg(
    () => parseHfConfig({ ...base, attention_bias: true }, "c.json"),
    "c.json",
    "attention_bias",
  );
  assertThrowsMsg(() => parseHfConfig([1], "c.json"), "c.json", "not a JSON object");
});

test("config: opt unsupported variants (post-LN, word_embed_proj_dim)", () => {
  // OPT-350m: post-LayerNorm and a 512 → 1024 projection.
  assertThrowsMsg(
    () => parseHfConfig({ ...OPT_CFG, do_layer_norm_before: false }, "opt-350m/config.json"),
    "opt-350m/config.json",
    "unsupported",
    "do_layer_norm_before",
  );
  assertThrowsMsg(
    () => parseHfConfig({ ...OPT_CFG, word_embed_proj_dim: 32 }, "opt/config.json"),
    "opt/config.json",
    "unsupported",
    "word_embed_proj_dim 32",
  );
  const d = { ...OPT_CFG };
  delete d.word_embed_proj_dim;
  delete d.do_layer_norm_before;
  delete d.activation_function;
  const c = parseHfConfig(d, "c.json");
  assertEquals(c.wordEmbedProjDim, 64);
  assertEquals(c.doLayerNormBefore, true);
  assertEquals(c.activation, "relu");
});

test("config: Meta params.json (vocab -1 from tensors, FFN width formula)", async () => {
  // Meta's formula for the fixture: int(2*4*64/3) = 170 → multiple of 4 → 172, the HF twin's value.
  assertEquals(metaIntermediate(64, 4), 172);
  assertEquals(metaIntermediate(4096, 256), 11008); // LLaMA-7B
  assertEquals(metaIntermediate(8192, 4096, 1.3), 28672); // LLaMA-2-70B
  const tensors = [
    { name: "tok_embeddings.weight", shape: [128, 64] },
    { name: "layers.0.feed_forward.w1.weight", shape: [172, 64] },
  ];
  const file = FIX + "llama-tiny-meta/params.json";
  const meta = parseMetaParams(META_PARAMS, file, tensors);
  assertDeepEquals(meta, { ...LLAMA_TINY, maxPositions: 2048 });
  assertDeepEquals(await readConfig(FIX + "llama-tiny-meta", tensors), meta);
  // Without tensors, the vocabulary comes from consolidated.00.pth's header (models/pth.ts) ...
  assertDeepEquals(await readConfig(FIX + "llama-tiny-meta"), meta);
  // ... and without that file either, the error says what is missing.
  const noPth = await Deno.makeTempDir();
  try {
    await Deno.copyFile(file, `${noPth}/params.json`);
    await assertRejectsMsg(
      () => readConfig(noPth),
      `${noPth}/params.json`,
      "vocab_size is -1",
      "tok_embeddings.weight",
    );
  } finally {
    await Deno.remove(noPth, { recursive: true });
  }
  // The tensors' FFN width wins over the formula when they disagree.
  const odd = parseMetaParams(META_PARAMS, file, [tensors[0], { ...tensors[1], shape: [176, 64] }]);
  assertEquals(odd.intermediate, 176);
  const gqa = parseMetaParams(
    { ...META_PARAMS, vocab_size: 32000, n_kv_heads: 2, rope_theta: 5e5 },
    "p.json",
  );
  assertEquals(gqa.vocab, 32000);
  assertEquals(gqa.kvHeads, 2);
  assertEquals(gqa.ropeTheta, 5e5);
  assertThrowsMsg(
    () => parseMetaParams({ ...META_PARAMS, dim: undefined }, "p.json", tensors),
    "p.json",
    '"dim"',
  );
  const empty = await Deno.makeTempDir();
  try {
    await assertRejectsMsg(() => readConfig(empty), empty, "no config.json", "params.json");
    await Deno.writeTextFile(`${empty}/config.json`, "{ nope");
    await assertRejectsMsg(() => readConfig(empty), `${empty}/config.json`, "not valid JSON");
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});

test("config: configs agree with the fixture tensors (hf llama, sharded bf16, opt, meta names)", async () => {
  for (const dir of ["llama-tiny", "llama-tiny-bf16", "opt-tiny"]) {
    const src = await openCheckpointDir(FIX + dir);
    try {
      checkConfigAgainstTensors(await readConfig(FIX + dir), src, "hf");
    } finally {
      src.close();
    }
  }
  // A Meta-named copy of llama-tiny (what models/pth.ts gives for consolidated.00.pth).
  const tmp = await Deno.makeTempDir();
  const hf = await openSafetensors(FIX + "llama-tiny/model.safetensors");
  try {
    const tensors = await Promise.all(
      hf.list().map(async (t) => ({ ...t, name: hfToMeta(t.name), data: await hf.read(t.name) })),
    );
    await writeSafetensors(`${tmp}/meta.safetensors`, tensors);
    const meta = await openSafetensors(`${tmp}/meta.safetensors`);
    try {
      const cfg = parseMetaParams(META_PARAMS, "params.json", meta.list());
      checkConfigAgainstTensors(cfg, meta, "meta");
      assertThrowsMsg(
        () => checkConfigAgainstTensors({ ...cfg, intermediate: 170 }, meta, "meta"),
        `${tmp}/meta.safetensors`,
        "'layers.0.feed_forward.w1.weight'",
        "[172, 64]",
        "[170, 64]",
        "intermediate 170",
      );
    } finally {
      meta.close();
    }
  } finally {
    hf.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

test("config: config/tensor mismatches name the file, tensor, shape and config value", async () => {
  const path = FIX + "llama-tiny/model.safetensors";
  const src = await openSafetensors(path);
  try {
    assertThrowsMsg(
      () => checkConfigAgainstTensors({ ...LLAMA_TINY, kvHeads: 2 }, src, "hf"),
      path,
      "'model.layers.0.self_attn.k_proj.weight'",
      "[64, 64]",
      "[32, 64]",
      "kvHeads 2",
    );
    assertThrowsMsg(
      () => checkConfigAgainstTensors({ ...LLAMA_TINY, vocab: 32000 }, src, "hf"),
      path,
      "'model.embed_tokens.weight'",
      "[128, 64]",
      "vocab 32000",
    );
    assertThrowsMsg(
      () => checkConfigAgainstTensors({ ...LLAMA_TINY, layers: 4 }, src, "hf"),
      path,
      "no tensor 'model.layers.3.self_attn.q_proj.weight'",
      "4 layers",
    );
    assertThrowsMsg(
      () => checkConfigAgainstTensors({ ...LLAMA_TINY, layers: 2 }, src, "hf"),
      path,
      "'model.layers.2.",
      "layer 2",
      "has 2 layers",
    );
    // Wrong naming scheme: the first Meta tensor is missing.
    assertThrowsMsg(
      () => checkConfigAgainstTensors(LLAMA_TINY, src, "meta"),
      path,
      "no tensor 'tok_embeddings.weight'",
    );
  } finally {
    src.close();
  }
  const opt = await openSafetensors(FIX + "opt-tiny/model.safetensors");
  try {
    const cfg = await readConfig(FIX + "opt-tiny");
    assertThrowsMsg(
      () => checkConfigAgainstTensors({ ...cfg, maxPositions: 2048 }, opt, "hf"),
      "opt-tiny/model.safetensors",
      "'model.decoder.embed_positions.weight'",
      "[66, 64]",
      "maxPositions 2048",
    );
    assertThrowsMsg(
      () => checkConfigAgainstTensors({ ...cfg, tieEmbeddings: false }, opt, "hf"),
      "opt-tiny/model.safetensors",
      "no tensor 'lm_head.weight'",
    );
  } finally {
    opt.close();
  }
});

test("config: layer selection", () => {
  assertDeepEquals(parseLayerSelection("31", 32), [31]);
  assertDeepEquals(parseLayerSelection("30,31", 32), [30, 31]);
  assertDeepEquals(parseLayerSelection(" 30 , 31 ", 32), [30, 31]);
  assertDeepEquals(parseLayerSelection("last", 32), [31]);
  assertDeepEquals(parseLayerSelection("last:2", 32), [30, 31]);
  assertDeepEquals(parseLayerSelection("last:3", 3), [0, 1, 2]);
  assertDeepEquals(parseLayerSelection("all", 3), [0, 1, 2]);
  assertDeepEquals(parseLayerSelection("0-3", 32), [0, 1, 2, 3]);
  assertDeepEquals(parseLayerSelection("0-1,5", 32), [0, 1, 5]);
  assertThrowsMsg(
    () => parseLayerSelection("32", 32),
    "'32'",
    "layer 32 is out of range",
    "32 layers (0-31)",
  );
  assertThrowsMsg(() => parseLayerSelection("0-40", 32), "layer 40 is out of range", "32 layers");
  assertThrowsMsg(() => parseLayerSelection("last:33", 32), "last:33", "32 layers");
  assertThrowsMsg(() => parseLayerSelection("last:0", 32), "last:0");
  assertThrowsMsg(() => parseLayerSelection("3,3", 32), "layer 3 is selected twice");
  assertThrowsMsg(() => parseLayerSelection("last,31", 32), "layer 31 is selected twice");
  assertThrowsMsg(() => parseLayerSelection("5,2", 32), "increasing order");
  assertThrowsMsg(() => parseLayerSelection("3-1", 32), "runs backwards");
  assertThrowsMsg(() => parseLayerSelection("", 32), "empty");
  assertThrowsMsg(() => parseLayerSelection("1,,2", 32), "empty");
  assertThrowsMsg(() => parseLayerSelection("-1", 32), "'-1'", "not a layer index");
  assertThrowsMsg(() => parseLayerSelection("first", 32), "'first'", "not a layer index");
  assertThrowsMsg(() => parseLayerSelection("1.5", 32), "'1.5'");
  assert(parseLayerSelection("all", 1).length === 1);
});

test("config: sizes past any real model and activations the model does not compute are refused", async () => {
  for (
    const [key, v] of [
      ["num_hidden_layers", 2 ** 31],
      ["hidden_size", 2 ** 20],
      ["num_attention_heads", 4096],
      ["intermediate_size", 2 ** 30],
      ["vocab_size", 2 ** 40],
      ["max_position_embeddings", 2 ** 40],
    ] as const
  ) {
    const t0 = performance.now();
    assertThrowsMsg(
      () => parseHfConfig({ ...LLAMA_CFG, [key]: v }, "d/config.json"),
      "d/config.json",
      key,
      `${v}`,
    );
    assert(performance.now() - t0 < 50);
  }
  assertThrowsMsg(
    () => parseMetaParams({ ...META_PARAMS, vocab_size: 128, n_layers: 2 ** 31 }, "m/params.json"),
    "m/params.json",
    "n_layers",
  );
  assertThrowsMsg(
    () => parseMetaParams({ ...META_PARAMS, vocab_size: 128, ffn_dim_multiplier: 1e300 }, "m/params.json"),
    "m/params.json",
    "ffn_dim_multiplier",
  );
  // readConfig on a directory: the message names config.json and the field; `--llm-layers all` on a
  // huge count fails at once instead of building a 2^31-element array
  const dir = await Deno.makeTempDir({ prefix: "cfg-huge-" });
  try {
    await Deno.writeTextFile(
      `${dir}/config.json`,
      JSON.stringify({ ...LLAMA_CFG, num_hidden_layers: 2 ** 31 }),
    );
    await assertRejectsMsg(() => readConfig(dir), `${dir}/config.json`, '"num_hidden_layers" is 2147483648');
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assertThrowsMsg(() => parseLayerSelection("all", 2 ** 31), "2147483648", "1..1024");
  // activations: LLaMA computes SiLU (HF also calls it "swish"), OPT ReLU; anything else is refused
  assertEquals(parseHfConfig({ ...LLAMA_CFG, hidden_act: "swish" }, "c.json").activation, "swish");
  assertThrowsMsg(
    () => parseHfConfig({ ...LLAMA_CFG, hidden_act: "gelu" }, "x/config.json"),
    "x/config.json",
    '"hidden_act" is "gelu"',
    '"silu"',
  );
  assertThrowsMsg(
    () => parseHfConfig({ ...OPT_CFG, activation_function: "gelu_new" }, "o/config.json"),
    "o/config.json",
    '"activation_function" is "gelu_new"',
    '"relu"',
  );
  assertThrowsMsg(() => parseHfConfig({ ...LLAMA_CFG, hidden_act: 7 }, "c.json"), "c.json", "hidden_act");
});
