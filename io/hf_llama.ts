// Writing a LLaMA language model as a standard Hugging Face checkpoint directory — what
// `transformers.LlamaForCausalLM.from_pretrained(dir)` and `AutoTokenizer.from_pretrained(dir)` read,
// and what openLlm (io/llm.ts) opens:
//   config.json        architectures ["LlamaForCausalLM"], model_type "llama", the LlamaConfig keys
//   model.safetensors  every tensor under its HF name, bf16 (default, round to nearest even) or f32,
//                      with metadata {"format": "pt"} as transformers' save_pretrained writes it
//   tokenizer.json     the `tokenizers` JSON, copied (optional), with tokenizer_config.json naming the fast
//                      tokenizer class and the special token (no BOS added: the model is trained without one)

import { toBf16 } from "../compiler/core/dtype.ts";
import type { LlmConfig } from "./config.ts";
import { bytesOf, type TensorToWrite, writeSafetensors } from "./safetensors.ts";

/** How writeHfLlama stores the model. */
export interface HfLlamaOptions {
  /** Storage dtype of every tensor (default "bf16"). */
  dtype?: "bf16" | "f32";
  /** bos_token_id / eos_token_id of config.json (omitted when undefined). */
  bosId?: number;
  /** See bosId. */
  eosId?: number;
  /** A tokenizer.json to copy into the directory. */
  tokenizerJson?: string;
  /** The end-of-text token's text for tokenizer_config.json (default "<|endoftext|>"). */
  eosToken?: string;
  /** Extra string metadata for the safetensors header (next to "format": "pt"). */
  metadata?: Record<string, string>;
}

/** HF config.json of a LLaMA model (the keys transformers' LlamaConfig writes that describe it). */
export function hfLlamaConfig(cfg: LlmConfig, opts: HfLlamaOptions = {}): Record<string, unknown> {
  const dtype = opts.dtype ?? "bf16";
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: cfg.hidden,
    intermediate_size: cfg.intermediate,
    num_hidden_layers: cfg.layers,
    num_attention_heads: cfg.heads,
    num_key_value_heads: cfg.kvHeads,
    head_dim: cfg.headDim,
    hidden_act: "silu",
    max_position_embeddings: cfg.maxPositions,
    vocab_size: cfg.vocab,
    rms_norm_eps: cfg.normEps,
    rope_theta: cfg.ropeTheta,
    rope_scaling: null,
    attention_bias: false,
    attention_dropout: 0.0,
    mlp_bias: false,
    initializer_range: 0.02,
    pretraining_tp: 1,
    use_cache: true,
    tie_word_embeddings: false,
    ...(opts.bosId !== undefined ? { bos_token_id: opts.bosId } : {}),
    ...(opts.eosId !== undefined ? { eos_token_id: opts.eosId } : {}),
    torch_dtype: dtype === "bf16" ? "bfloat16" : "float32",
  };
}

/** Tensor bytes in the chosen storage dtype. */
function encodeTensor(data: Float32Array, dtype: "bf16" | "f32"): Uint8Array {
  if (dtype === "f32") return bytesOf(data);
  const w = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) w[i] = toBf16(data[i]);
  return bytesOf(w);
}

/**
 * Writes `dir` as an HF LLaMA checkpoint: config.json, model.safetensors (the tensors, HF names, in
 * the given order), and tokenizer.json when given. Every tensor the config implies must be present.
 */
export async function writeHfLlama(
  dir: string,
  cfg: LlmConfig,
  tensors: ReadonlyMap<string, { shape: number[]; data: Float32Array }>,
  opts: HfLlamaOptions = {},
): Promise<void> {
  if (cfg.type !== "llama") throw new Error(`writeHfLlama: a LLaMA config is needed, not ${cfg.type}`);
  const dtype = opts.dtype ?? "bf16";
  for (const n of ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"]) {
    if (!tensors.has(n)) throw new Error(`writeHfLlama: no tensor '${n}'`);
  }
  await Deno.mkdir(dir, { recursive: true });
  const out: TensorToWrite[] = [...tensors].map(([name, t]) => ({
    name,
    dtype: dtype === "bf16" ? "BF16" : "F32",
    shape: t.shape,
    data: encodeTensor(t.data, dtype),
  }));
  await writeSafetensors(`${dir}/model.safetensors`, out, { format: "pt", ...opts.metadata });
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(hfLlamaConfig(cfg, opts), null, 2) + "\n");
  if (opts.tokenizerJson) {
    await Deno.copyFile(opts.tokenizerJson, `${dir}/tokenizer.json`);
    const eos = opts.eosToken ?? "<|endoftext|>";
    const tc = {
      tokenizer_class: "PreTrainedTokenizerFast",
      bos_token: eos,
      eos_token: eos,
      unk_token: null,
      add_bos_token: false,
      add_eos_token: false,
      clean_up_tokenization_spaces: false,
      model_max_length: cfg.maxPositions,
    };
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify(tc, null, 2) + "\n");
  }
}
