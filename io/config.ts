// LLM configurations: HF config.json (LLaMA, OPT) and Meta's LLaMA-v1 params.json, a check that a
// config agrees with a checkpoint's tensors, and the `--layers` selection syntax.

import { CheckpointError, type WeightSource } from "./weights.ts";

/** An LLM's architecture, read from HF config.json or Meta params.json (same fields for both). */
export interface LlmConfig {
  /** Architecture family. */
  type: "llama" | "opt";
  /** Hidden size (the width of every layer's input and output). */
  hidden: number;
  /** Attention (query) heads. */
  heads: number;
  /** Key/value heads (fewer than `heads` with grouped-query attention). */
  kvHeads: number;
  /** Per-head width: hidden / heads. */
  headDim: number;
  /** MLP hidden width. */
  intermediate: number;
  /** Decoder layers in the full model. */
  layers: number;
  /** Vocabulary size. */
  vocab: number;
  /** Epsilon of the RMSNorm (LLaMA) or LayerNorm (OPT). */
  normEps: number;
  /** Rotary base (LLaMA; 10000 by default). 0 for OPT, which has learned positions. */
  ropeTheta: number;
  /** Whether lm_head shares the token embedding matrix. */
  tieEmbeddings: boolean;
  /** Longest sequence the model was trained for. */
  maxPositions: number;
  // OPT extras (activation is also set for LLaMA: "silu").
  /** OPT: pre-LN layers (only true is supported). */
  doLayerNormBefore?: boolean;
  /** OPT: width of the embedding projection, when it differs from `hidden`. */
  wordEmbedProjDim?: number;
  /** MLP activation as the config names it ("silu" for LLaMA, "relu" for OPT). */
  activation?: string;
}

type Json = Record<string, unknown>;

function asObject(json: unknown, file: string): Json {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new CheckpointError(file, "config is not a JSON object");
  }
  return json as Json;
}

/**
 * Upper bounds on config sizes, each well above any published model (LLaMA-3.1-405B: hidden 16384,
 * 128 heads, 126 layers, intermediate 53248; Gemma: vocab 256000), so a corrupt or hostile value is
 * refused before anything is allocated or enumerated per layer (2^31 layers hung the loader).
 */
export const CONFIG_LIMITS = {
  hidden: 65536,
  heads: 1024,
  headDim: 4096,
  intermediate: 1 << 20,
  layers: 1024,
  vocab: 1 << 23,
  maxPositions: 1 << 27,
} as const;

/** Which limit applies to each config key. */
const LIMIT_OF: Record<string, number> = {
  hidden_size: CONFIG_LIMITS.hidden,
  dim: CONFIG_LIMITS.hidden,
  word_embed_proj_dim: CONFIG_LIMITS.hidden,
  num_attention_heads: CONFIG_LIMITS.heads,
  n_heads: CONFIG_LIMITS.heads,
  num_key_value_heads: CONFIG_LIMITS.heads,
  n_kv_heads: CONFIG_LIMITS.heads,
  head_dim: CONFIG_LIMITS.headDim,
  intermediate_size: CONFIG_LIMITS.intermediate,
  ffn_dim: CONFIG_LIMITS.intermediate,
  multiple_of: CONFIG_LIMITS.intermediate,
  num_hidden_layers: CONFIG_LIMITS.layers,
  n_layers: CONFIG_LIMITS.layers,
  vocab_size: CONFIG_LIMITS.vocab,
  max_position_embeddings: CONFIG_LIMITS.maxPositions,
  max_seq_len: CONFIG_LIMITS.maxPositions,
};

/** A required (or defaulted) integer ≥ min (and ≤ the key's bound in LIMIT_OF). */
function int(j: Json, key: string, file: string, dflt?: number, min = 1): number {
  const v = j[key] ?? dflt;
  if (v === undefined) throw new CheckpointError(file, `config lacks "${key}"`);
  if (!Number.isSafeInteger(v) || (v as number) < min) {
    throw new CheckpointError(
      file,
      `config "${key}" is ${JSON.stringify(j[key])}, expected an integer >= ${min}`,
    );
  }
  const max = LIMIT_OF[key];
  if (max !== undefined && (v as number) > max) {
    throw new CheckpointError(
      file,
      `config "${key}" is ${v}, more than ${max} (larger than any supported model: corrupt?)`,
    );
  }
  return v as number;
}

/** The MLP activation named by `key` (default `dflt`), refused unless it is the one the model computes. */
function activation(j: Json, key: string, file: string, dflt: string, computes: readonly string[]): string {
  const v = j[key] ?? dflt;
  if (typeof v !== "string" || !computes.includes(v)) {
    throw new CheckpointError(
      file,
      `config "${key}" is ${JSON.stringify(v)}, but this model computes only ${
        computes.map((c) => `"${c}"`).join(" / ")
      }`,
    );
  }
  return v;
}

/** A required (or defaulted) finite number > 0. */
function pos(j: Json, key: string, file: string, dflt?: number): number {
  const v = j[key] ?? dflt;
  if (v === undefined) throw new CheckpointError(file, `config lacks "${key}"`);
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw new CheckpointError(
      file,
      `config "${key}" is ${JSON.stringify(j[key])}, expected a positive number`,
    );
  }
  return v;
}

function bool(j: Json, key: string, file: string, dflt: boolean): boolean {
  const v = j[key] ?? dflt;
  if (typeof v !== "boolean") {
    throw new CheckpointError(file, `config "${key}" is ${JSON.stringify(v)}, expected true or false`);
  }
  return v;
}

function headsCheck(file: string, heads: number, kvHeads: number, kvKey: string): void {
  if (heads % kvHeads !== 0) {
    throw new CheckpointError(
      file,
      `config "${kvKey}" ${kvHeads} does not divide the ${heads} attention heads (grouped-query attention needs it)`,
    );
  }
}

/** Parses a Hugging Face config.json (model_type "llama" or "opt"). */
export function parseHfConfig(json: unknown, file: string): LlmConfig {
  const j = asObject(json, file);
  const type = j.model_type;
  if (type === "llama") {
    const hidden = int(j, "hidden_size", file);
    const heads = int(j, "num_attention_heads", file);
    const kvHeads = int(j, "num_key_value_heads", file, heads);
    headsCheck(file, heads, kvHeads, "num_key_value_heads");
    if (j.head_dim == null && hidden % heads !== 0) {
      throw new CheckpointError(
        file,
        `hidden_size ${hidden} is not a multiple of num_attention_heads ${heads}`,
      );
    }
    const headDim = int(j, "head_dim", file, hidden / heads);
    for (const key of ["attention_bias", "mlp_bias"]) {
      if (j[key] === true) throw new CheckpointError(file, `unsupported LLaMA variant: "${key}" is true`);
    }
    // transformers ≥ 5 moves rope_theta into rope_parameters.
    const rp = j.rope_parameters;
    const rpTheta = typeof rp === "object" && rp !== null ? (rp as Json).rope_theta : undefined;
    const ropeTheta = pos({ rope_theta: j.rope_theta ?? rpTheta }, "rope_theta", file, 10000);
    return {
      type: "llama",
      hidden,
      heads,
      kvHeads,
      headDim,
      intermediate: int(j, "intermediate_size", file),
      layers: int(j, "num_hidden_layers", file),
      vocab: int(j, "vocab_size", file),
      normEps: pos(j, "rms_norm_eps", file, 1e-6),
      ropeTheta,
      tieEmbeddings: bool(j, "tie_word_embeddings", file, false),
      maxPositions: int(j, "max_position_embeddings", file, 2048),
      // "swish" is HF's other name for SiLU
      activation: activation(j, "hidden_act", file, "silu", ["silu", "swish"]),
    };
  }
  if (type === "opt") {
    const hidden = int(j, "hidden_size", file);
    const heads = int(j, "num_attention_heads", file);
    if (hidden % heads !== 0) {
      throw new CheckpointError(
        file,
        `hidden_size ${hidden} is not a multiple of num_attention_heads ${heads}`,
      );
    }
    const doLayerNormBefore = bool(j, "do_layer_norm_before", file, true);
    if (!doLayerNormBefore) {
      throw new CheckpointError(
        file,
        "unsupported OPT variant: do_layer_norm_before is false (post-LayerNorm, as OPT-350m); only pre-LN OPT is supported",
      );
    }
    const wordEmbedProjDim = int(j, "word_embed_proj_dim", file, hidden);
    if (wordEmbedProjDim !== hidden) {
      throw new CheckpointError(
        file,
        `unsupported OPT variant: word_embed_proj_dim ${wordEmbedProjDim} differs from hidden_size ${hidden} (project_in/out, as OPT-350m)`,
      );
    }
    if (!bool(j, "enable_bias", file, true)) {
      throw new CheckpointError(file, "unsupported OPT variant: enable_bias is false");
    }
    if (!bool(j, "layer_norm_elementwise_affine", file, true)) {
      throw new CheckpointError(file, "unsupported OPT variant: layer_norm_elementwise_affine is false");
    }
    return {
      type: "opt",
      hidden,
      heads,
      kvHeads: heads,
      headDim: hidden / heads,
      intermediate: int(j, "ffn_dim", file),
      layers: int(j, "num_hidden_layers", file),
      vocab: int(j, "vocab_size", file),
      normEps: 1e-5, // OPT's LayerNorms use PyTorch's default eps
      ropeTheta: 0,
      tieEmbeddings: bool(j, "tie_word_embeddings", file, true),
      maxPositions: int(j, "max_position_embeddings", file, 2048),
      doLayerNormBefore,
      wordEmbedProjDim,
      activation: activation(j, "activation_function", file, "relu", ["relu"]),
    };
  }
  throw new CheckpointError(
    file,
    `unsupported model_type ${JSON.stringify(type)} (supported: "llama", "opt")`,
  );
}

/** Meta's FeedForward width: int(2·4·dim/3), × ffn_dim_multiplier, rounded up to multiple_of. */
export function metaIntermediate(dim: number, multipleOf: number, ffnDimMultiplier?: number | null): number {
  let hidden = Math.trunc((2 * 4 * dim) / 3);
  if (ffnDimMultiplier != null) hidden = Math.trunc(ffnDimMultiplier * hidden);
  return multipleOf * Math.ceil(hidden / multipleOf);
}

/**
 * Parses Meta's params.json (LLaMA v1; n_kv_heads / ffn_dim_multiplier / rope_theta of later versions
 * are read when present). `tensors` (the checkpoint's names and shapes) supply vocab_size when it is
 * -1, as in the original LLaMA releases.
 */
export function parseMetaParams(
  json: unknown,
  file: string,
  tensors?: { name: string; shape: number[] }[],
): LlmConfig {
  const j = asObject(json, file);
  const hidden = int(j, "dim", file);
  const heads = int(j, "n_heads", file);
  const kvHeads = int(j, "n_kv_heads", file, heads);
  headsCheck(file, heads, kvHeads, "n_kv_heads");
  if (hidden % heads !== 0) {
    throw new CheckpointError(file, `dim ${hidden} is not a multiple of n_heads ${heads}`);
  }
  const find = (name: string) => tensors?.find((t) => t.name === name);
  let vocab: number;
  if (j.vocab_size === -1 || j.vocab_size == null) {
    const emb = find("tok_embeddings.weight");
    if (!emb) {
      throw new CheckpointError(
        file,
        "vocab_size is -1: the vocabulary size comes from the checkpoint's tok_embeddings.weight, " +
          "so pass its tensors (none given, or no tok_embeddings.weight among them)",
      );
    }
    vocab = emb.shape[0];
  } else {
    vocab = int(j, "vocab_size", file);
  }
  const mult = j.ffn_dim_multiplier;
  if (mult != null && (typeof mult !== "number" || !(mult > 0))) {
    throw new CheckpointError(
      file,
      `config "ffn_dim_multiplier" is ${JSON.stringify(mult)}, expected a positive number`,
    );
  }
  // Meta's formula (llama/model.py FeedForward). For the test fixture (dim 64, multiple_of 4) it gives
  // int(512/3) = 170 → 172, which is what the tensors hold. Still, the tensors are the truth the model
  // loads, so when they are given and disagree (a variant that rounds differently), their width wins.
  let intermediate = metaIntermediate(hidden, int(j, "multiple_of", file, 256), mult as number | undefined);
  const w1 = find("layers.0.feed_forward.w1.weight");
  if (w1 && w1.shape.length === 2 && w1.shape[0] !== intermediate) intermediate = w1.shape[0];
  if (!(intermediate <= CONFIG_LIMITS.intermediate)) {
    throw new CheckpointError(
      file,
      `config "dim" / "multiple_of" / "ffn_dim_multiplier" give an MLP width of ${intermediate}, more than ` +
        `${CONFIG_LIMITS.intermediate} (larger than any supported model: corrupt?)`,
    );
  }
  return {
    type: "llama",
    hidden,
    heads,
    kvHeads,
    headDim: hidden / heads,
    intermediate,
    layers: int(j, "n_layers", file),
    vocab,
    normEps: pos(j, "norm_eps", file, 1e-5),
    ropeTheta: pos(j, "rope_theta", file, 10000),
    tieEmbeddings: false,
    maxPositions: int(j, "max_seq_len", file, 2048),
    activation: "silu",
  };
}

async function readJson(path: string): Promise<unknown | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new CheckpointError(path, `cannot read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(path, `not valid JSON (${(e as Error).message})`);
  }
}

/**
 * Reads a checkpoint directory's config: config.json (HF) or else params.json (Meta). For params.json
 * with vocab_size -1 the vocabulary comes from the tensors: pass them (WeightSource.list()), or else
 * the directory's consolidated.00.pth header is read for them (models/pth.ts, tensor data untouched).
 */
export async function readConfig(
  dir: string,
  tensors?: { name: string; shape: number[] }[],
): Promise<LlmConfig> {
  const base = dir.endsWith("/") ? dir : dir + "/";
  const hf = await readJson(base + "config.json");
  if (hf !== undefined) return parseHfConfig(hf, base + "config.json");
  const meta = await readJson(base + "params.json");
  if (meta !== undefined) {
    const v = (meta as Json | null)?.vocab_size;
    if (
      !tensors && (v === -1 || v == null) &&
      (await Deno.stat(base + "consolidated.00.pth").then(() => true, () => false))
    ) {
      const { openMetaCheckpoint } = await import("./pth.ts");
      const pth = await openMetaCheckpoint(dir);
      try {
        tensors = pth.list();
      } finally {
        pth.close();
      }
    }
    return parseMetaParams(meta, base + "params.json", tensors);
  }
  throw new CheckpointError(dir, "no config.json (Hugging Face) or params.json (Meta) in this directory");
}

/** A tensor the config implies, with its shape and where that shape comes from. */
export interface ExpectedTensor {
  name: string;
  shape: number[];
  /** The config values behind the shape, for error messages. */
  why: string;
  /** Absent is acceptable (tied output embeddings). */
  optional?: boolean;
}

/** The HF name prefix in use: "model." (…ForCausalLM) or "" (a bare LlamaModel / OPTModel save). */
export function hfPrefix(cfg: LlmConfig, src: WeightSource): string {
  const probe = cfg.type === "opt" ? "decoder.embed_tokens.weight" : "embed_tokens.weight";
  if (!src.has("model." + probe) && src.has(probe)) return "";
  return "model.";
}

/** Names and shapes of every tensor of the model under the given naming scheme. */
export function expectedTensors(cfg: LlmConfig, naming: "hf" | "meta", prefix = "model."): ExpectedTensor[] {
  const { hidden: h, heads, kvHeads, headDim: d, intermediate: f, vocab: v } = cfg;
  const q = heads * d, kv = kvHeads * d;
  const qWhy = `heads ${heads} × headDim ${d}, hidden ${h}`;
  const kvWhy = `kvHeads ${kvHeads} × headDim ${d}, hidden ${h}`;
  const fWhy = `intermediate ${f}, hidden ${h}`;
  const out: ExpectedTensor[] = [];
  const add = (name: string, shape: number[], why: string, optional = false) =>
    out.push({ name, shape, why, optional });
  if (cfg.type === "opt") {
    if (naming !== "hf") throw new Error(`OPT checkpoints use Hugging Face names, not '${naming}'`);
    const p = prefix + "decoder.";
    add(p + "embed_tokens.weight", [v, h], `vocab ${v}, hidden ${h}`);
    // OPT's learned positions are offset by 2 (OPTLearnedPositionalEmbedding).
    add(
      p + "embed_positions.weight",
      [cfg.maxPositions + 2, h],
      `maxPositions ${cfg.maxPositions} + 2, hidden ${h}`,
    );
    for (let i = 0; i < cfg.layers; i++) {
      const l = `${p}layers.${i}.`;
      for (const m of ["q_proj", "k_proj", "v_proj", "out_proj"]) {
        add(`${l}self_attn.${m}.weight`, [h, h], `hidden ${h}`);
        add(`${l}self_attn.${m}.bias`, [h], `hidden ${h}`);
      }
      for (const n of ["self_attn_layer_norm", "final_layer_norm"]) {
        add(`${l}${n}.weight`, [h], `hidden ${h}`);
        add(`${l}${n}.bias`, [h], `hidden ${h}`);
      }
      add(`${l}fc1.weight`, [f, h], fWhy);
      add(`${l}fc1.bias`, [f], `intermediate ${f}`);
      add(`${l}fc2.weight`, [h, f], fWhy);
      add(`${l}fc2.bias`, [h], `hidden ${h}`);
    }
    add(p + "final_layer_norm.weight", [h], `hidden ${h}`);
    add(p + "final_layer_norm.bias", [h], `hidden ${h}`);
    add("lm_head.weight", [v, h], `vocab ${v}, hidden ${h}`, cfg.tieEmbeddings);
    return out;
  }
  if (naming === "hf") {
    add(prefix + "embed_tokens.weight", [v, h], `vocab ${v}, hidden ${h}`);
    for (let i = 0; i < cfg.layers; i++) {
      const l = `${prefix}layers.${i}.`;
      add(`${l}self_attn.q_proj.weight`, [q, h], qWhy);
      add(`${l}self_attn.k_proj.weight`, [kv, h], kvWhy);
      add(`${l}self_attn.v_proj.weight`, [kv, h], kvWhy);
      add(`${l}self_attn.o_proj.weight`, [h, q], qWhy);
      add(`${l}mlp.gate_proj.weight`, [f, h], fWhy);
      add(`${l}mlp.up_proj.weight`, [f, h], fWhy);
      add(`${l}mlp.down_proj.weight`, [h, f], fWhy);
      add(`${l}input_layernorm.weight`, [h], `hidden ${h}`);
      add(`${l}post_attention_layernorm.weight`, [h], `hidden ${h}`);
    }
    add(prefix + "norm.weight", [h], `hidden ${h}`);
    add("lm_head.weight", [v, h], `vocab ${v}, hidden ${h}`, cfg.tieEmbeddings);
    return out;
  }
  add("tok_embeddings.weight", [v, h], `vocab ${v}, hidden ${h}`);
  for (let i = 0; i < cfg.layers; i++) {
    const l = `layers.${i}.`;
    add(`${l}attention.wq.weight`, [q, h], qWhy);
    add(`${l}attention.wk.weight`, [kv, h], kvWhy);
    add(`${l}attention.wv.weight`, [kv, h], kvWhy);
    add(`${l}attention.wo.weight`, [h, q], qWhy);
    add(`${l}feed_forward.w1.weight`, [f, h], fWhy); // gate
    add(`${l}feed_forward.w3.weight`, [f, h], fWhy); // up
    add(`${l}feed_forward.w2.weight`, [h, f], fWhy); // down
    add(`${l}attention_norm.weight`, [h], `hidden ${h}`);
    add(`${l}ffn_norm.weight`, [h], `hidden ${h}`);
  }
  add("norm.weight", [h], `hidden ${h}`);
  add("output.weight", [v, h], `vocab ${v}, hidden ${h}`, cfg.tieEmbeddings);
  return out;
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Throws a CheckpointError (naming the checkpoint, the tensor, its shape and the config values) unless
 * every tensor the config implies is present with the implied shape, and the checkpoint holds no layer
 * beyond the config's count.
 */
export function checkConfigAgainstTensors(cfg: LlmConfig, src: WeightSource, naming: "hf" | "meta"): void {
  const prefix = naming === "hf" ? hfPrefix(cfg, src) : "";
  for (const e of expectedTensors(cfg, naming, prefix)) {
    if (!src.has(e.name)) {
      if (e.optional) continue;
      throw new CheckpointError(
        src.path,
        `no tensor '${e.name}', which the config implies (${cfg.type}, ${cfg.layers} layers` +
          `${
            naming === "hf" && cfg.type === "llama" && e.name === "lm_head.weight" ? ", untied lm_head" : ""
          })`,
      );
    }
    const shape = src.info(e.name).shape;
    if (!sameShape(shape, e.shape)) {
      throw new CheckpointError(
        src.path,
        `tensor '${e.name}' has shape [${shape.join(", ")}] but the config implies [${
          e.shape.join(", ")
        }] (${e.why})`,
      );
    }
  }
  const layerRe = naming === "meta" ? /^layers\.(\d+)\./ : new RegExp(
    `^${(prefix + (cfg.type === "opt" ? "decoder." : "")).replaceAll(".", "\\.")}layers\\.(\\d+)\\.`,
  );
  for (const t of src.list()) {
    const m = layerRe.exec(t.name);
    if (m && Number(m[1]) >= cfg.layers) {
      throw new CheckpointError(
        src.path,
        `tensor '${t.name}' belongs to layer ${m[1]}, but the config says the model has ${cfg.layers} layers`,
      );
    }
  }
}

/**
 * Parses a layer selection against a model with `layers` layers: "31", "30,31", "last", "last:2" (the
 * last two, in order), "middle" (⌊(layers − 1)/2⌋: LLaMA-7B's 15, the paper's video layer), "all",
 * ranges "0-3", or comma-separated mixes ("0-1,5"). The result is strictly increasing (layers run in
 * model order); duplicates, descending order and out-of-range indices are errors.
 */
export function parseLayerSelection(spec: string, layers: number): number[] {
  const bad = (why: string) => new Error(`bad layer selection '${spec}': ${why}`);
  if (!Number.isInteger(layers) || layers < 1 || layers > CONFIG_LIMITS.layers) {
    throw bad(`the model's layer count ${layers} is not an integer in 1..${CONFIG_LIMITS.layers}`);
  }
  const range = `the model has ${layers} layers (0-${layers - 1})`;
  const index = (s: string): number => {
    if (!/^\d+$/.test(s)) {
      throw bad(`'${s}' is not a layer index, a range A-B, 'last', 'last:N', 'middle' or 'all'`);
    }
    const i = Number(s);
    if (i >= layers) throw bad(`layer ${i} is out of range: ${range}`);
    return i;
  };
  const parts = spec.split(",").map((s) => s.trim());
  if (spec.trim() === "" || parts.some((p) => p === "")) throw bad("empty");
  const out: number[] = [];
  for (const p of parts) {
    if (p === "all") {
      for (let i = 0; i < layers; i++) out.push(i);
    } else if (p === "last") {
      out.push(layers - 1);
    } else if (p === "middle") {
      // the paper's video choice: LLaMA-7B's layer 15 of 0..31
      out.push(Math.floor((layers - 1) / 2));
    } else if (p.startsWith("last:")) {
      const n = p.slice(5);
      if (!/^\d+$/.test(n) || Number(n) < 1) throw bad(`'${p}' needs a count of at least 1`);
      if (Number(n) > layers) throw bad(`'${p}' asks for ${n} layers but ${range}`);
      for (let i = layers - Number(n); i < layers; i++) out.push(i);
    } else if (/^\d+\s*-\s*\d+$/.test(p)) {
      const [a, b] = p.split("-").map((s) => index(s.trim()));
      if (a > b) throw bad(`range '${p}' runs backwards`);
      for (let i = a; i <= b; i++) out.push(i);
    } else {
      out.push(index(p));
    }
  }
  for (let i = 1; i < out.length; i++) {
    if (out[i] === out[i - 1] || out.indexOf(out[i]) < i) throw bad(`layer ${out[i]} is selected twice`);
    if (out[i] < out[i - 1]) throw bad(`layers must be in increasing order (${out[i - 1]} before ${out[i]})`);
  }
  return out;
}
