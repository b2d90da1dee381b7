// Random-weight LLM checkpoints with the real on-disk layout (HF config.json + sharded safetensors,
// one shard per layer), for the paper's "random frozen layer" ablation and for measuring real-size
// layers (no LLaMA-7B weights exist on our machines). Weights ~ N(0, 0.02²), norms 1, bf16 storage.

import { Rng } from "../compiler/core/random.ts";
import { toBf16 } from "../compiler/core/dtype.ts";
import { type TensorToWrite, writeSafetensors } from "./safetensors.ts";

/** Sizes of a LLaMA-architecture model to fill with random weights. */
export interface RandomLlamaShape {
  /** Hidden size. */
  hidden: number;
  /** Attention heads. */
  heads: number;
  /** Key/value heads (default: `heads`). */
  kvHeads?: number;
  /** MLP hidden width. */
  intermediate: number;
  /** Decoder layers. */
  layers: number;
  /** Vocabulary size (default 32000). */
  vocab?: number;
}

/** LLaMA-7B's layer shape. */
export const LLAMA_7B: RandomLlamaShape = {
  hidden: 4096,
  heads: 32,
  intermediate: 11008,
  layers: 32,
  vocab: 32000,
};

function randomBf16(rng: Rng, n: number, std: number): Uint8Array {
  const words = new Uint16Array(n);
  for (let i = 0; i < n; i++) words[i] = toBf16(rng.normal() * std);
  return new Uint8Array(words.buffer);
}

function onesBf16(n: number): Uint8Array {
  return new Uint8Array(new Uint16Array(n).fill(toBf16(1)).buffer);
}

/**
 * Writes `dir/config.json`, one `model-0000k-of-0000n.safetensors` per layer (only `layers` of them
 * when `only` lists a subset, which keeps a 32-layer model's last layer cheap to make) and the index.
 */
export async function writeRandomLlama(
  dir: string,
  shape: RandomLlamaShape,
  opts: { seed?: number; only?: number[] } = {},
): Promise<void> {
  const { hidden: D, heads: H, intermediate: F, layers: L } = shape;
  const kv = shape.kvHeads ?? H, Dh = D / H;
  await Deno.mkdir(dir, { recursive: true });
  const rng = new Rng(opts.seed ?? 1);
  const layers = opts.only ?? [...Array(L).keys()];
  const weightMap: Record<string, string> = {};
  const n = layers.length;
  for (const [k, i] of layers.entries()) {
    const file = `model-${String(k + 1).padStart(5, "0")}-of-${String(n).padStart(5, "0")}.safetensors`;
    const p = `model.layers.${i}.`;
    const t = (name: string, shp: number[], data: Uint8Array): TensorToWrite => ({
      name: p + name,
      dtype: "BF16",
      shape: shp,
      data,
    });
    const m = (name: string, rows: number, cols: number) =>
      t(name, [rows, cols], randomBf16(rng, rows * cols, 0.02));
    const tensors = [
      t("input_layernorm.weight", [D], onesBf16(D)),
      m("self_attn.q_proj.weight", H * Dh, D),
      m("self_attn.k_proj.weight", kv * Dh, D),
      m("self_attn.v_proj.weight", kv * Dh, D),
      m("self_attn.o_proj.weight", D, H * Dh),
      t("post_attention_layernorm.weight", [D], onesBf16(D)),
      m("mlp.gate_proj.weight", F, D),
      m("mlp.up_proj.weight", F, D),
      m("mlp.down_proj.weight", D, F),
    ];
    await writeSafetensors(`${dir}/${file}`, tensors, { format: "pt" });
    for (const x of tensors) weightMap[x.name] = file;
  }
  const index = { metadata: { note: "random weights, real layout" }, weight_map: weightMap };
  await Deno.writeTextFile(`${dir}/model.safetensors.index.json`, JSON.stringify(index, null, 1));
  const config = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: D,
    num_attention_heads: H,
    num_key_value_heads: kv,
    intermediate_size: F,
    num_hidden_layers: L,
    vocab_size: shape.vocab ?? 32000,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    max_position_embeddings: 2048,
    tie_word_embeddings: false,
    dtype: "bfloat16",
  };
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config, null, 1));
}
