// A LLaMA-architecture causal language model with every weight trainable (f32), for pretraining from
// scratch. It is built from the same layer code as the frozen path (models/llm.ts llamaLayer in "lm"
// mode: rotary embedding, causal mask, RMSNorm, SwiGLU), so a checkpoint it writes opens with openLlm
// and runs as causalLm or as a frozen encoder layer unchanged. Params carry Hugging Face names.
//
// Init as transformers' LlamaPreTrainedModel._init_weights: every nn.Linear and the nn.Embedding
// ~ N(0, initializer_range²) with initializer_range 0.02 (not truncated), biases none, RMSNorm weights 1.
// Loss: mean next-token cross-entropy over [B, T] windows — ids [B, T] and targets [B, T] (the
// window shifted by one), as HF's LlamaForCausalLM computes it from labels.

import type { Graph, Node } from "../compiler/core/ir.ts";
import { Rng } from "../compiler/core/random.ts";
import { gather } from "../compiler/ops/gather.ts";
import { linear } from "../compiler/ops/matmul.ts";
import { rmsNorm } from "../compiler/ops/norm.ts";
import { reshape } from "../compiler/ops/layout.ts";
import { crossEntropy } from "../compiler/ops/loss.ts";
import type { LlmConfig } from "../io/config.ts";
import { layerTensorNames, llamaLayer } from "./llm.ts";

/** The architecture of a language model to pretrain (HF LlamaConfig's fields that matter here). */
export interface LmConfig {
  /** Hidden size (hidden_size). */
  hidden: number;
  /** Decoder layers (num_hidden_layers). */
  layers: number;
  /** Attention heads (num_attention_heads). */
  heads: number;
  /** Key/value heads (num_key_value_heads; default `heads`). */
  kvHeads?: number;
  /** SwiGLU hidden width (intermediate_size). */
  intermediate: number;
  /** Vocabulary size (vocab_size). */
  vocab: number;
  /** Context length the model is trained for (max_position_embeddings). */
  maxPositions: number;
  /** Rotary base (rope_theta; default 10000). */
  ropeTheta?: number;
  /** RMSNorm epsilon (rms_norm_eps; default 1e-5, LlamaConfig's default). */
  rmsEps?: number;
  /** Beginning-of-sequence id written to config.json (bos_token_id), if any. */
  bosId?: number;
  /** End-of-sequence id written to config.json (eos_token_id), if any. */
  eosId?: number;
}

/** The loader-side LlmConfig of an LmConfig (what config.json describes once written). */
export function lmLlmConfig(c: LmConfig): LlmConfig {
  if (c.hidden % c.heads !== 0) {
    throw new Error(`lm: hidden ${c.hidden} is not a multiple of heads ${c.heads}`);
  }
  const kvHeads = c.kvHeads ?? c.heads;
  if (c.heads % kvHeads !== 0) throw new Error(`lm: kvHeads ${kvHeads} does not divide heads ${c.heads}`);
  if ((c.hidden / c.heads) % 2 !== 0) {
    throw new Error(`lm: head dim ${c.hidden / c.heads} must be even (rotary)`);
  }
  return {
    type: "llama",
    hidden: c.hidden,
    heads: c.heads,
    kvHeads,
    headDim: c.hidden / c.heads,
    intermediate: c.intermediate,
    layers: c.layers,
    vocab: c.vocab,
    normEps: c.rmsEps ?? 1e-5,
    ropeTheta: c.ropeTheta ?? 10000,
    tieEmbeddings: false,
    maxPositions: c.maxPositions,
    activation: "silu",
  };
}

/** Every tensor of the model: HF name and shape, in HF's module order. */
export function lmTensorShapes(c: LmConfig): { name: string; shape: number[] }[] {
  const cfg = lmLlmConfig(c);
  const D = cfg.hidden, F = cfg.intermediate, kv = cfg.kvHeads * cfg.headDim;
  const out = [{ name: "model.embed_tokens.weight", shape: [cfg.vocab, D] }];
  for (let i = 0; i < cfg.layers; i++) {
    const shapes: Record<string, number[]> = {
      "input_layernorm.weight": [D],
      "self_attn.q_proj.weight": [D, D],
      "self_attn.k_proj.weight": [kv, D],
      "self_attn.v_proj.weight": [kv, D],
      "self_attn.o_proj.weight": [D, D],
      "post_attention_layernorm.weight": [D],
      "mlp.gate_proj.weight": [F, D],
      "mlp.up_proj.weight": [F, D],
      "mlp.down_proj.weight": [D, F],
    };
    for (const name of layerTensorNames(cfg, i)) {
      out.push({ name, shape: shapes[name.slice(`model.layers.${i}.`.length)] });
    }
  }
  out.push({ name: "model.norm.weight", shape: [D] }, { name: "lm_head.weight", shape: [cfg.vocab, D] });
  return out;
}

/**
 * Seeded initial weights as LlamaPreTrainedModel._init_weights: matrices (linears and the embedding)
 * ~ N(0, std²), std = initializer_range (default 0.02); RMSNorm weights 1. One generator walks the
 * tensors in HF module order, so a seed gives the same model on every machine.
 */
export function initLmWeights(c: LmConfig, seed: number, std = 0.02): Map<string, Float32Array> {
  const rng = new Rng(seed * 2654435761 + 17);
  const out = new Map<string, Float32Array>();
  for (const { name, shape } of lmTensorShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    if (shape.length === 1) a.fill(1);
    else for (let i = 0; i < n; i++) a[i] = rng.normal() * std;
    out.set(name, a);
  }
  return out;
}

/** The model in a graph: its inputs, logits, loss and params (by HF name, all trainable f32). */
export interface LmModel {
  /** Token ids [B, T] (i32). */
  ids: Node;
  /** Next-token targets [B, T] (i32): the window shifted by one. */
  targets: Node;
  /** Logits [B, T, vocab]. */
  logits: Node;
  /** Mean next-token cross-entropy over all B·T positions, [1]. */
  loss: Node;
  /** Params by HF name, in HF module order. */
  params: Map<string, Node>;
  /** The loader-side config (what config.json says). */
  cfg: LlmConfig;
}

/**
 * Builds the causal LM for windows of `batch` × `context` tokens, initialised from `init` (HF name →
 * f32 values, e.g. initLmWeights); `trainable` false builds a frozen copy for scoring.
 */
export function buildLm(
  g: Graph,
  c: LmConfig,
  batch: number,
  context: number,
  init: ReadonlyMap<string, Float32Array>,
  trainable = true,
): LmModel {
  const cfg = lmLlmConfig(c);
  if (context > cfg.maxPositions) {
    throw new Error(`lm: context ${context} is longer than maxPositions ${cfg.maxPositions}`);
  }
  const params = new Map<string, Node>();
  for (const { name, shape } of lmTensorShapes(c)) {
    const data = init.get(name);
    if (!data) throw new Error(`lm: no initial value for '${name}'`);
    if (data.length !== shape.reduce((a, b) => a * b, 1)) {
      throw new Error(`lm: '${name}' has ${data.length} values, its shape [${shape}] needs more or fewer`);
    }
    params.set(name, g.param(name, shape, { trainable, init: data }));
  }
  const ids = g.input("lm.ids", [batch, context], "i32");
  const targets = g.input("lm.targets", [batch, context], "i32");
  let y = gather(params.get("model.embed_tokens.weight")!, ids);
  for (let i = 0; i < cfg.layers; i++) y = llamaLayer(y, cfg, i, params, { mode: "lm", invFreqDtype: "f32" });
  y = rmsNorm(y, params.get("model.norm.weight")!, cfg.normEps);
  const logits = linear(y, params.get("lm_head.weight")!);
  const loss = crossEntropy(
    reshape(logits, [batch * context, cfg.vocab]),
    reshape(targets, [batch * context]),
  );
  return { ids, targets, logits, loss, params, cfg };
}

/** HF's no-decay convention for LMs: 1-D params (the RMSNorm weights) get no weight decay. */
export function lmNoDecay(p: Node): boolean {
  return p.rank === 1;
}
