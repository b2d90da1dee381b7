// Frozen LLM layers (LLaMA, OPT) built from real checkpoints, in two modes:
//   encoder: the paper's use inside a vision model — no rotary embedding, no causal mask, and the
//            stack ends in the model's final norm at unit scale (RMSNorm weight 1 / LayerNorm without
//            weight and bias), as the reference code does;
//   lm:      the language model as published (embeddings, HF-convention rotary embeddings, causal
//            mask, final norm, lm_head) — proves the loaders and Meta's q/k permutation.
// Weights keep their storage dtype on the GPU (bf16/f16 matmul weights are read as f32 by the
// kernels); small vectors (norm weights, biases) are widened to f32 at load.

import type { DType, Graph, Node } from "../compiler/core/ir.ts";
import { add, mul } from "../compiler/ops/elementwise.ts";
import { linear } from "../compiler/ops/matmul.ts";
import { layerNorm, rmsNorm } from "../compiler/ops/norm.ts";
import { attention } from "../compiler/ops/attention.ts";
import { relu, silu } from "../compiler/ops/activation.ts";
import { gather } from "../compiler/ops/gather.ts";
import { rope } from "../compiler/ops/rope.ts";
import { checkConfigAgainstTensors, expectedTensors, type LlmConfig } from "../io/config.ts";
import type { LlmCheckpoint } from "../io/llm.ts";
import { constantInit, truncNormal } from "../compiler/core/random.ts";
import { CheckpointError, type StDtype, toFloat32, toU16, type WeightSource } from "../io/weights.ts";
import type { WeightLoader } from "../compiler/runtime/executable.ts";

// Opening checkpoints is io's job (io/llm.ts); re-exported for the importers that predate the move.
export { type LlmCheckpoint, openLlm } from "../io/llm.ts";

/** How frozen LLM layers run: "encoder" (the paper's use in a vision model) or "lm" (as published). */
export type LlmMode = "encoder" | "lm";

/** A tensor as a frozen param: matrices keep their 16-bit storage; vectors are widened to f32. */
export interface FrozenTensor {
  /** The checkpoint's (HF) tensor name. */
  name: string;
  /** Shape, outermost first. */
  shape: number[];
  /** GPU dtype: the storage dtype for matrices, f32 for vectors. */
  dtype: DType;
  /** f32 values, or raw 16-bit words for f16/bf16 matrices. */
  data: Float32Array | Uint16Array;
}

const GPU_DTYPE: Partial<Record<StDtype, DType>> = { F32: "f32", F16: "f16", BF16: "bf16" };

/** Reads one tensor for use as a frozen param (F32, F16 or BF16 only). */
export async function readFrozen(src: WeightSource, name: string): Promise<FrozenTensor> {
  const info = src.info(name);
  const raw = await src.read(name);
  const dtype = GPU_DTYPE[info.dtype];
  if (!dtype) {
    throw new CheckpointError(
      src.path,
      `tensor '${name}' has dtype ${info.dtype}; expected F32, F16 or BF16`,
    );
  }
  if (info.shape.length >= 2 && dtype !== "f32") return { name, shape: info.shape, dtype, data: toU16(raw) };
  return { name, shape: info.shape, dtype: "f32", data: toFloat32(info, raw) };
}

/** HF tensor names of one layer, in a fixed order (the same for every layer: streaming relies on it). */
export function layerTensorNames(cfg: LlmConfig, i: number): string[] {
  if (cfg.type === "llama") {
    const p = `model.layers.${i}.`;
    return [
      "input_layernorm.weight",
      "self_attn.q_proj.weight",
      "self_attn.k_proj.weight",
      "self_attn.v_proj.weight",
      "self_attn.o_proj.weight",
      "post_attention_layernorm.weight",
      "mlp.gate_proj.weight",
      "mlp.up_proj.weight",
      "mlp.down_proj.weight",
    ].map((n) => p + n);
  }
  const p = `model.decoder.layers.${i}.`;
  const names: string[] = [];
  for (
    const m of [
      "self_attn_layer_norm",
      "self_attn.q_proj",
      "self_attn.k_proj",
      "self_attn.v_proj",
      "self_attn.out_proj",
      "final_layer_norm",
      "fc1",
      "fc2",
    ]
  ) {
    names.push(`${p}${m}.weight`, `${p}${m}.bias`);
  }
  return names;
}

/**
 * Frozen params for one layer. Vectors (norm weights, biases) are read now and become init data;
 * matrices are left to the weights loader (llmLoader) and marked streamable: the attention matrices
 * of the k-th selected layer form stream group 2k and the MLP matrices 2k+1, so the runtime can keep
 * them resident or, over the GPU memory budget, stream them half a layer at a time.
 */
export async function layerParams(
  g: Graph,
  src: WeightSource,
  names: readonly string[],
  k: number,
): Promise<Map<string, Node>> {
  const out = new Map<string, Node>();
  for (const name of names) {
    const info = src.info(name);
    const dtype = GPU_DTYPE[info.dtype];
    if (!dtype) {
      throw new CheckpointError(
        src.path,
        `tensor '${name}' has dtype ${info.dtype}; expected F32, F16 or BF16`,
      );
    }
    if (info.shape.length >= 2) {
      const mlp = /\.(mlp|fc1|fc2)\b/.test(name);
      out.set(
        name,
        g.param(name, info.shape, { trainable: false, dtype, streamGroup: 2 * k + (mlp ? 1 : 0) }),
      );
    } else {
      out.set(
        name,
        g.param(name, info.shape, { trainable: false, init: (await readFrozen(src, name)).data }),
      );
    }
  }
  return out;
}

/** The weights loader for streamable LLM params (their names are the checkpoint's HF names). */
export function llmLoader(src: WeightSource): WeightLoader {
  return async (_group, nodes) => {
    const m = new Map<Node, Float32Array | Uint16Array>();
    for (const n of nodes) m.set(n, (await readFrozen(src, n.name!)).data);
    return m;
  };
}

/** Frozen params holding their data as init (no loader needed); used for embeddings in LM mode. */
export function frozenParams(g: Graph, tensors: readonly FrozenTensor[]): Map<string, Node> {
  const out = new Map<string, Node>();
  for (const t of tensors) {
    out.set(t.name, g.param(t.name, t.shape, { trainable: false, dtype: t.dtype, init: t.data }));
  }
  return out;
}

/** How a decoder layer is built. */
export interface LayerOpts {
  /** Encoder semantics (no rotary, no mask) or the published language model. */
  mode: LlmMode;
  /** LM mode: precision of the rotary frequencies (see RopeOpts.invFreqDtype). */
  invFreqDtype?: "f32" | "bf16" | "f16";
}

/** A decoder layer's output and its attention half's output (after its residual): the analysis taps. */
export interface LayerOut {
  /** x + attention(norm(x)): the attention sublayer's output after the residual. */
  attn: Node;
  /** The layer's output: attn + ffn(norm(attn)). */
  out: Node;
}

/** One LLaMA decoder layer: pre-RMSNorm attention (no biases) + SwiGLU MLP. */
export function llamaLayer(x: Node, cfg: LlmConfig, i: number, w: Map<string, Node>, opts: LayerOpts): Node {
  return llamaLayerOut(x, cfg, i, w, opts).out;
}

/** llamaLayer, with the attention half's output as well. */
export function llamaLayerOut(
  x: Node,
  cfg: LlmConfig,
  i: number,
  w: Map<string, Node>,
  opts: LayerOpts,
): LayerOut {
  const p = (n: string) => need(w, `model.layers.${i}.${n}`);
  const lm = opts.mode === "lm";
  const h0 = rmsNorm(x, p("input_layernorm.weight"), cfg.normEps);
  let q = linear(h0, p("self_attn.q_proj.weight"));
  let k = linear(h0, p("self_attn.k_proj.weight"));
  const v = linear(h0, p("self_attn.v_proj.weight"));
  if (lm) {
    q = rope(q, { heads: cfg.heads, theta: cfg.ropeTheta, invFreqDtype: opts.invFreqDtype });
    k = rope(k, { heads: cfg.kvHeads, theta: cfg.ropeTheta, invFreqDtype: opts.invFreqDtype });
  }
  const a = attention(q, k, v, { heads: cfg.heads, kvHeads: cfg.kvHeads, causal: lm });
  const h = add(x, linear(a, p("self_attn.o_proj.weight")));
  const f = rmsNorm(h, p("post_attention_layernorm.weight"), cfg.normEps);
  const gated = mul(silu(linear(f, p("mlp.gate_proj.weight"))), linear(f, p("mlp.up_proj.weight")));
  return { attn: h, out: add(h, linear(gated, p("mlp.down_proj.weight"))) };
}

/** One OPT decoder layer: pre-LayerNorm attention with biases (q scaled by Dh^-0.5) + ReLU MLP. */
export function optLayer(x: Node, cfg: LlmConfig, i: number, w: Map<string, Node>, opts: LayerOpts): Node {
  return optLayerOut(x, cfg, i, w, opts).out;
}

/** optLayer, with the attention half's output as well. */
export function optLayerOut(
  x: Node,
  cfg: LlmConfig,
  i: number,
  w: Map<string, Node>,
  opts: LayerOpts,
): LayerOut {
  const p = (n: string) => need(w, `model.decoder.layers.${i}.${n}`);
  const ln = (y: Node, m: string) => layerNorm(y, p(`${m}.weight`), p(`${m}.bias`), cfg.normEps);
  const lin = (y: Node, m: string) => linear(y, p(`${m}.weight`), p(`${m}.bias`));
  const h0 = ln(x, "self_attn_layer_norm");
  const a = attention(lin(h0, "self_attn.q_proj"), lin(h0, "self_attn.k_proj"), lin(h0, "self_attn.v_proj"), {
    heads: cfg.heads,
    causal: opts.mode === "lm",
  });
  const h = add(x, lin(a, "self_attn.out_proj"));
  return { attn: h, out: add(h, lin(relu(lin(ln(h, "final_layer_norm"), "fc1")), "fc2")) };
}

function need(w: Map<string, Node>, name: string): Node {
  const n = w.get(name);
  if (!n) throw new Error(`llm: layer tensor '${name}' was not loaded`);
  return n;
}

/** One decoder layer of the config's architecture (LLaMA or OPT), weights from `w` by HF name. */
export function decoderLayer(
  x: Node,
  cfg: LlmConfig,
  i: number,
  w: Map<string, Node>,
  opts: LayerOpts,
): Node {
  return decoderLayerOut(x, cfg, i, w, opts).out;
}

/** decoderLayer, with the attention half's output as well. */
export function decoderLayerOut(
  x: Node,
  cfg: LlmConfig,
  i: number,
  w: Map<string, Node>,
  opts: LayerOpts,
): LayerOut {
  return cfg.type === "llama" ? llamaLayerOut(x, cfg, i, w, opts) : optLayerOut(x, cfg, i, w, opts);
}

/** The paper's final norm at unit scale: RMSNorm with weight 1 (LLaMA) or LayerNorm without affine (OPT). */
export function unitFinalNorm(x: Node, cfg: LlmConfig): Node {
  return cfg.type === "llama"
    ? rmsNorm(x, undefined, cfg.normEps)
    : layerNorm(x, undefined, undefined, cfg.normEps);
}

/** The frozen encoder stack added to a graph, and what compile() needs for its weights. */
export interface FrozenStack {
  /** The stack's output, the same shape as its input. */
  out: Node;
  /** Params per selected layer, in order (frozen unless the stack was built trainable). */
  layerParams: Map<string, Node>[];
  /** The selected layer indices, in order. */
  layers: number[];
  /** Pass to compile({ weights }) — resident or streamed is decided there by the memory budget. */
  loader: WeightLoader;
  /** Per selected layer: its attention half's output (after the residual) and its output (analysis taps). */
  taps: LayerOut[];
}

/** How frozenEncoderStack makes the layers' params. */
export interface StackOpts {
  /**
   * Train the layers (default false: frozen). Pretrained 16-bit matrices are widened to f32 at load —
   * the f32 master copy the optimizer updates — so nothing is streamed.
   */
  trainable?: boolean;
  /**
   * Random weights of the checkpoint's shape instead of its values (the paper's random-layer arms):
   * matrices ~ truncated N(0, 0.02²) (LLaMA's initializer_range), norm weights 1, biases 0; f32.
   */
  random?: boolean;
  /** Seed of the random weights (default 0). */
  seed?: number;
}

/**
 * The paper's frozen encoder stack: the selected layers (no rotary embedding, no causal mask), then
 * the final norm at unit scale. x is [B, T, hidden]. `opts` makes the layers trainable and/or random
 * (the ablation arms; models/arms.ts).
 */
export async function frozenEncoderStack(
  g: Graph,
  x: Node,
  ck: LlmCheckpoint,
  layers: readonly number[],
  opts: StackOpts = {},
): Promise<FrozenStack> {
  const { cfg } = ck;
  if (x.shape[x.rank - 1] !== cfg.hidden) {
    throw new Error(`llm: input ${x} must have last dim ${cfg.hidden} (the LLM's hidden size)`);
  }
  let y = x;
  const params: Map<string, Node>[] = [];
  const taps: LayerOut[] = [];
  checkLayers(ck, layers);
  for (const [k, i] of layers.entries()) {
    const names = layerTensorNames(cfg, i);
    const w = opts.random
      ? randomLayerParams(g, ck.src, names, opts.trainable ?? false, (opts.seed ?? 0) * 7919 + 1000 * k)
      : opts.trainable
      ? await trainableLayerParams(g, ck.src, names)
      : await layerParams(g, ck.src, names, k);
    params.push(w);
    const t = decoderLayerOut(y, cfg, i, w, { mode: "encoder" });
    taps.push(t);
    y = t.out;
  }
  return {
    out: unitFinalNorm(y, cfg),
    layerParams: params,
    layers: [...layers],
    loader: llmLoader(ck.src),
    taps,
  };
}

/** A layer's pretrained params as trainable f32 params (the data is read now and becomes their init). */
export async function trainableLayerParams(
  g: Graph,
  src: WeightSource,
  names: readonly string[],
): Promise<Map<string, Node>> {
  const out = new Map<string, Node>();
  for (const name of names) {
    const info = src.info(name);
    if (!GPU_DTYPE[info.dtype]) {
      throw new CheckpointError(
        src.path,
        `tensor '${name}' has dtype ${info.dtype}; expected F32, F16 or BF16`,
      );
    }
    out.set(
      name,
      g.param(name, info.shape, { trainable: true, init: toFloat32(info, await src.read(name)) }),
    );
  }
  return out;
}

/** A layer's params with the checkpoint's names and shapes but random f32 values (see StackOpts.random). */
export function randomLayerParams(
  g: Graph,
  src: WeightSource,
  names: readonly string[],
  trainable: boolean,
  seed: number,
): Map<string, Node> {
  const out = new Map<string, Node>();
  for (const [j, name] of names.entries()) {
    const { shape } = src.info(name);
    const init = shape.length >= 2
      ? truncNormal(seed + 31 * j + 1, 0.02)
      : constantInit(name.endsWith(".bias") ? 0 : 1);
    out.set(name, g.param(name, shape, { trainable, init }));
  }
  return out;
}

/**
 * The selected layers exist and every tensor of theirs is present with the shape the config implies
 * (a partial checkpoint, e.g. only the last layer of a 32-layer model, is fine).
 */
export function checkLayers(ck: LlmCheckpoint, layers: readonly number[]): void {
  const { cfg, src } = ck;
  for (const i of layers) {
    if (!Number.isInteger(i) || i < 0 || i >= cfg.layers) {
      throw new CheckpointError(
        ck.dir,
        `layer ${i} is out of range: the model has ${cfg.layers} layers (0..${cfg.layers - 1})`,
      );
    }
  }
  const wanted = new Set(layers.flatMap((i) => layerTensorNames(cfg, i)));
  for (const e of expectedTensors(cfg, "hf", "model.")) {
    if (!wanted.has(e.name)) continue;
    if (!src.has(e.name)) {
      throw new CheckpointError(
        src.path,
        `no tensor '${e.name}' for the selected layer(s) ${layers.join(",")}`,
      );
    }
    const shape = src.info(e.name).shape;
    if (shape.join() !== e.shape.join()) {
      throw new CheckpointError(
        src.path,
        `tensor '${e.name}' has shape [${shape.join(", ")}] but the config implies [${
          e.shape.join(", ")
        }] (${e.why})`,
      );
    }
  }
}

/**
 * The language model as published: ids [B, T] (i32) → logits [B, T, vocab]. LLaMA only for now.
 * Compile with { weights: llmLoader(ck.src) }.
 */
export async function causalLm(
  g: Graph,
  ids: Node,
  ck: LlmCheckpoint,
  opts: { invFreqDtype?: "f32" | "bf16" | "f16" } = {},
): Promise<Node> {
  const { cfg, src } = ck;
  checkConfigAgainstTensors(cfg, src, "hf"); // the whole model is used: every tensor must be there
  // like HF with dtype="auto": the rotary inv_freq buffer takes the checkpoint's dtype
  const stored = src.info("model.layers.0.self_attn.q_proj.weight").dtype;
  const invFreqDtype = opts.invFreqDtype ?? (stored === "BF16" ? "bf16" : stored === "F16" ? "f16" : "f32");
  if (cfg.type !== "llama") {
    throw new Error(`llm: language-model mode is implemented for LLaMA, not ${cfg.type}`);
  }
  const one = async (n: string) => frozenParams(g, [await readFrozen(src, n)]).get(n)!;
  let y = gather(await one("model.embed_tokens.weight"), ids);
  for (let i = 0; i < cfg.layers; i++) {
    y = llamaLayer(y, cfg, i, await layerParams(g, src, layerTensorNames(cfg, i), i), {
      mode: "lm",
      invFreqDtype,
    });
  }
  y = rmsNorm(y, await one("model.norm.weight"), cfg.normEps);
  const head = cfg.tieEmbeddings ? g.byName("model.embed_tokens.weight") : await one("lm_head.weight");
  return linear(y, head);
}
