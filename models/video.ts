// VideoMAE's fine-tuning ViT (`VisionTransformer` of VideoMAE's modeling_finetune.py) and the paper's
// ViT-LLaMA for video (`ViTLLaMA` of LM4VisualEncoding's video_understanding/modeling_finetune_llama.py):
//
//   patch_embed.proj (Conv3d, kernel = stride = (tubelet, p, p)) → tokens (time, rows, columns) +
//   fixed sinusoid table → blocks (pre-LN, LayerNorm eps 1e-6, qkv without bias + attn.q_bias /
//   attn.v_bias, exact GELU MLP, optional layer scale gamma_1/gamma_2, drop path) →
//   [llama_dim_mapper1 (no bias) → frozen LLM layers → llama_dim_mapper2 (no bias)] →
//   mean over tokens → fc_norm → (fc dropout) → head
//
// As in the reference with use_mean_pooling (its default): there is no CLS token, `norm` is the
// identity (so it has no params) and `fc_norm` normalises the pooled features. The position table
// is not a parameter: it is VideoMAE's get_sinusoid_encoding_table, recomputed for the model's
// token count, so a checkpoint for another frame count or size still fits (io/videomae.ts).

import type { Graph, Node } from "../compiler/core/ir.ts";
import { add, fill, mul } from "../compiler/ops/elementwise.ts";
import { linear } from "../compiler/ops/matmul.ts";
import { layerNorm } from "../compiler/ops/norm.ts";
import { permute, reshape, slice } from "../compiler/ops/layout.ts";
import { mean } from "../compiler/ops/reduce.ts";
import { dropout } from "../compiler/ops/batchnorm.ts";
import { constantInit, truncNormal } from "../compiler/core/random.ts";
import { transformerBlock } from "../nn/block.ts";
import type { FrozenStack, LlmCheckpoint } from "./llm.ts";
import { type LlmArm, llmArm } from "./arms.ts";

/** A video ViT's shape (VideoMAE `VisionTransformer` arguments). */
export interface VideoConfig {
  /** Frames per clip (VideoMAE `all_frames`, `--num_frames`); a multiple of `tubelet`. */
  frames: number;
  /** Frames per tubelet (the Conv3d's temporal kernel and stride; VideoMAE: 2). */
  tubelet: number;
  /** Frame side in pixels (square frames). */
  img: number;
  /** Patch side in pixels; must divide `img`. */
  patch: number;
  /** Channels per frame. */
  chans: number;
  /** Embedding width. */
  dim: number;
  /** Transformer blocks. */
  depth: number;
  /** Attention heads per block. */
  heads: number;
  /** Output classes. */
  classes: number;
  /** MLP hidden width as a multiple of dim (default 4). */
  mlpRatio?: number;
  /** LayerNorm epsilon (default 1e-6, VideoMAE's). */
  eps?: number;
  /** Layer scale init (VideoMAE `init_values`): 0 or absent means no gamma_1/gamma_2. */
  initValues?: number;
}

/** Training-time regularisation of buildVideoVit (all off by default, and always off in evaluation). */
export interface VideoRegularisation {
  /** Stochastic depth rate of the last block (VideoMAE `drop_path_rate`); block i gets rate·i/(depth−1). */
  dropPath?: number;
  /** Dropout before the head (VideoMAE `fc_drop_rate`). */
  fcDropout?: number;
}

/** A built video ViT: its input, its logits, the dropout seed input and the frozen LLM stack (if any). */
export interface VideoModel {
  /** Input [B, chans, frames, img, img] (PyTorch's Conv3d layout). */
  clips: Node;
  /** Output [B, classes]. */
  logits: Node;
  /** u32 [1] seed of drop path and fc dropout; present when either is on: write a fresh one each step. */
  dropoutSeed?: Node;
  /** Present when frozen LLM layers are inside. */
  llm?: FrozenStack;
}

/** Tokens per clip: (frames / tubelet) · (img / patch)². Throws naming the setting that does not divide. */
export function videoTokens(cfg: VideoConfig): number {
  const { frames, tubelet, img, patch } = cfg;
  for (const [what, v] of Object.entries({ frames, tubelet, img, patch })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`video: ${what} must be a positive integer, got ${v}`);
  }
  if (frames % tubelet !== 0) {
    throw new Error(`video: frames ${frames} is not a multiple of the tubelet size ${tubelet}`);
  }
  if (img % patch !== 0) {
    throw new Error(`video: image size ${img} is not a multiple of the patch size ${patch}`);
  }
  return (frames / tubelet) * (img / patch) ** 2;
}

/**
 * VideoMAE's get_sinusoid_encoding_table(n, d) as [n·d] f32: angle(pos, j) = pos / 10000^(2·⌊j/2⌋/d),
 * sin on even j, cos on odd j (computed in f64 like the reference's numpy, then rounded to f32).
 */
export function sinusoidTable(n: number, d: number): Float32Array {
  const out = new Float32Array(n * d);
  for (let pos = 0; pos < n; pos++) {
    for (let j = 0; j < d; j++) {
      const a = pos / Math.pow(10000, (2 * Math.floor(j / 2)) / d);
      out[pos * d + j] = j % 2 === 0 ? Math.sin(a) : Math.cos(a);
    }
  }
  return out;
}

/**
 * Conv3d(C → D, kernel = stride = (tubelet, p, p)) then flatten(2).transpose(1, 2), as VideoMAE's
 * PatchEmbed: clips [B, C, T, H, W], w [D, C, tubelet, p, p], bias [D] → [B, (T/t)·(H/p)·(W/p), D],
 * tokens ordered time, rows, columns. Built from a reshape, one permute that gathers each tubelet's
 * C·t·p·p values in the weight's (c, kt, ky, kx) order, and one matmul.
 */
export function tubeletEmbed(
  clips: Node,
  w: Node,
  bias: Node | undefined,
  tubelet: number,
  patch: number,
): Node {
  if (clips.rank !== 5) throw new Error(`video: clips must be [B, C, T, H, W], got ${clips}`);
  const [B, C, T, H, W] = clips.shape;
  if (T % tubelet !== 0 || H % patch !== 0 || W % patch !== 0) {
    throw new Error(
      `video: clips ${clips} do not split into tubelets of ${tubelet}×${patch}×${patch} (T, H, W must divide)`,
    );
  }
  if (w.shape.join() !== [w.shape[0], C, tubelet, patch, patch].join()) {
    throw new Error(
      `video: patch weight ${w} must be [D, ${C}, ${tubelet}, ${patch}, ${patch}] (Conv3d layout)`,
    );
  }
  const D = w.shape[0], Tt = T / tubelet, Hp = H / patch, Wp = W / patch;
  const split = reshape(clips, [B, C, Tt, tubelet, Hp, patch, Wp, patch]);
  const cols = permute(split, [0, 2, 4, 6, 1, 3, 5, 7]); // [B, Tt, Hp, Wp, C, t, p, p]
  const flat = reshape(cols, [B, Tt * Hp * Wp, C * tubelet * patch * patch]);
  return linear(flat, reshape(w, [D, C * tubelet * patch * patch]), bias);
}

// Independent dropout masks from one seed: each mask takes its own index range of one stream of
// `total` elements, so no two masks share a (seed, index) hash and none are correlated.
class MaskStream {
  private offset = 0;
  constructor(private readonly g: Graph, readonly seed: Node, private readonly total: number) {}

  /** A mask of `shape` whose elements are 0 with probability p and 1/(1−p) otherwise. */
  take(shape: number[], p: number): Node {
    const n = shape.reduce((a, b) => a * b, 1);
    const m = dropout(fill(this.g, [this.total], 1), p, this.seed);
    const out = reshape(slice(m, 0, this.offset, this.offset + n), shape);
    this.offset += n;
    return out;
  }
}

/**
 * Builds the video ViT for a batch of `batch` clips [B, chans, frames, img, img]. With `llm`, the
 * selected layers of that checkpoint, built as its ablation arm (llmArm; default the frozen layers),
 * sit between the blocks and the pooling (the paper uses LLaMA-7B's layer 15). `training` with `reg` turns on drop path and fc dropout.
 */
export async function buildVideoVit(
  g: Graph,
  cfg: VideoConfig,
  batch: number,
  opts: {
    /** The LLM layers and the ablation arm they are built as (models/arms.ts; default frozen; none: no stack). */
    llm?: { ck: LlmCheckpoint; layers: number[]; arm?: LlmArm };
    seed?: number;
    training?: boolean;
    reg?: VideoRegularisation;
  } = {},
): Promise<VideoModel> {
  const L = videoTokens(cfg), { chans, dim: D, depth } = cfg, eps = cfg.eps ?? 1e-6;
  let seed = opts.seed ?? 0;
  const w = (name: string, shape: number[]) =>
    g.param(name, shape, { init: truncNormal(seed++ * 7919 + 17, 0.02) });
  const zeros = (name: string, shape: number[]) => g.param(name, shape, { init: constantInit(0) });
  const ones = (name: string, shape: number[]) => g.param(name, shape, { init: constantInit(1) });

  const dropPath = opts.training ? opts.reg?.dropPath ?? 0 : 0;
  const fcDrop = opts.training ? opts.reg?.fcDropout ?? 0 : 0;
  for (const [what, p] of [["drop path", dropPath], ["fc dropout", fcDrop]] as const) {
    if (!(p >= 0 && p < 1)) throw new Error(`video: ${what} rate must be in [0, 1), got ${p}`);
  }
  let masks: MaskStream | undefined;
  if (dropPath > 0 || fcDrop > 0) {
    masks = new MaskStream(g, g.input("dropout_seed", [1], "u32"), 2 * depth * batch + batch * D);
  }

  const clips = g.input("clips", [batch, chans, cfg.frames, cfg.img, cfg.img]);
  const tokens = tubeletEmbed(
    clips,
    w("patch_embed.proj.weight", [D, chans, cfg.tubelet, cfg.patch, cfg.patch]),
    zeros("patch_embed.proj.bias", [D]),
    cfg.tubelet,
    cfg.patch,
  );
  let x = add(tokens, g.constant(sinusoidTable(L, D), [1, L, D]));
  for (let i = 0; i < depth; i++) {
    // stochastic depth rule of the reference: linspace(0, rate, depth)
    const rate = depth > 1 ? (dropPath * i) / (depth - 1) : dropPath;
    const path = masks && rate > 0
      ? { attn: masks.take([batch, 1, 1], rate), mlp: masks.take([batch, 1, 1], rate) }
      : undefined;
    x = transformerBlock(g, x, `blocks.${i}`, {
      dim: D,
      heads: cfg.heads,
      mlpRatio: cfg.mlpRatio ?? 4,
      eps,
      qkvBias: "qv",
      layerScale: cfg.initValues,
      dropPath: path,
      seed: 1000 + 100 * i + seed,
    });
  }
  let llm: FrozenStack | undefined;
  if (opts.llm && opts.llm.arm !== "none") {
    const { ck, layers, arm } = opts.llm;
    const H = ck.cfg.hidden;
    x = linear(x, w("llama_dim_mapper1.weight", [H, D]));
    llm = await llmArm(g, x, { arm: arm ?? "frozen", ck, layers, seed: opts.seed });
    x = linear(llm.out, w("llama_dim_mapper2.weight", [D, H]));
  }
  let pooled = layerNorm(mean(x, 1), ones("fc_norm.weight", [D]), zeros("fc_norm.bias", [D]), eps);
  if (masks && fcDrop > 0) pooled = mul(pooled, masks.take([batch, D], fcDrop));
  const logits = linear(pooled, w("head.weight", [cfg.classes, D]), zeros("head.bias", [cfg.classes]));
  return { clips, logits, dropoutSeed: masks?.seed, llm };
}

/**
 * VideoMAE's weight-decay groups (optim_factory): no decay on 1-D tensors (norms, biases, q_bias,
 * v_bias, gamma_*) and `*.bias`; the position table is not a parameter.
 */
export function videoNoDecay(p: Node): boolean {
  return p.rank <= 1 || (p.name ?? "").endsWith(".bias");
}
