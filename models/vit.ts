// ViT with timm `VisionTransformer` semantics, and the paper's ViT-LLM: the same ViT with frozen LLM
// layers between the blocks and the final norm:
//
//   patch_embed.proj (strided conv) → [cls_token; patches] + pos_embed → blocks (pre-LN, fused qkv with
//   bias, exact GELU MLP, LayerNorm eps 1e-6) → [llama_dim_mapper1 (no bias) → frozen LLM layers →
//   llama_dim_mapper2 (no bias)] → norm → head(cls token)
//
// Parameter names are timm's, plus llama_dim_mapper1/2.weight, so timm/DeiT checkpoints import and
// ours export under the same names.

import type { Graph, Node } from "../compiler/core/ir.ts";
import { add, expand } from "../compiler/ops/elementwise.ts";
import { linear } from "../compiler/ops/matmul.ts";
import { layerNorm } from "../compiler/ops/norm.ts";
import { patchEmbed } from "../compiler/ops/patch.ts";
import { concat, reshape, slice } from "../compiler/ops/layout.ts";
import { constantInit, truncNormal } from "../compiler/core/random.ts";
import { transformerBlock } from "../nn/block.ts";
import { frozenEncoderStack, type FrozenStack, type LlmCheckpoint } from "./llm.ts";

/** A ViT's shape (timm `VisionTransformer` arguments). Presets: models/presets.ts. */
export interface VitConfig {
  /** Image side in pixels (square images). */
  img: number;
  /** Patch side in pixels; must divide `img`. */
  patch: number;
  /** Image channels. */
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
  /** LayerNorm epsilon (default 1e-6, timm's). */
  eps?: number;
}

/** A built ViT: its input, its logits and the frozen LLM stack inside (if any). */
export interface VitModel {
  /** Input [B, chans, img, img]. */
  images: Node;
  /** Output [B, classes]. */
  logits: Node;
  /** Present when frozen LLM layers are inside. */
  llm?: FrozenStack;
}

/**
 * Builds the model for a batch of `batch` images [B, chans, img, img]. With `llm`, the selected
 * frozen layers of that checkpoint sit between the blocks and the norm (the paper's ViT-LLM).
 */
export async function buildVit(
  g: Graph,
  cfg: VitConfig,
  batch: number,
  opts: { llm?: { ck: LlmCheckpoint; layers: number[] }; seed?: number } = {},
): Promise<VitModel> {
  const { img, patch, chans, dim: D } = cfg;
  if (img % patch !== 0) {
    throw new Error(`vit: image size ${img} is not a multiple of the patch size ${patch}`);
  }
  const L = (img / patch) ** 2;
  let seed = opts.seed ?? 0;
  const w = (name: string, shape: number[]) =>
    g.param(name, shape, { init: truncNormal(seed++ * 7919 + 17, 0.02) });
  const zeros = (name: string, shape: number[]) => g.param(name, shape, { init: constantInit(0) });
  const ones = (name: string, shape: number[]) => g.param(name, shape, { init: constantInit(1) });

  const images = g.input("images", [batch, chans, img, img]);
  const tokens = patchEmbed(
    images,
    w("patch_embed.proj.weight", [D, chans, patch, patch]),
    zeros("patch_embed.proj.bias", [D]),
    patch,
  );
  const cls = expand(w("cls_token", [1, 1, D]), [batch, 1, D]);
  let x = add(concat([cls, tokens], 1), w("pos_embed", [1, L + 1, D]));
  for (let i = 0; i < cfg.depth; i++) {
    x = transformerBlock(g, x, `blocks.${i}`, {
      dim: D,
      heads: cfg.heads,
      mlpRatio: cfg.mlpRatio ?? 4,
      eps: cfg.eps ?? 1e-6,
      seed: 1000 + 100 * i + seed,
    });
  }
  let llm: FrozenStack | undefined;
  if (opts.llm) {
    const H = opts.llm.ck.cfg.hidden;
    x = linear(x, w("llama_dim_mapper1.weight", [H, D]));
    llm = await frozenEncoderStack(g, x, opts.llm.ck, opts.llm.layers);
    x = linear(llm.out, w("llama_dim_mapper2.weight", [D, H]));
  }
  x = layerNorm(x, ones("norm.weight", [D]), zeros("norm.bias", [D]), cfg.eps ?? 1e-6);
  const clsOut = reshape(slice(x, 1, 0, 1), [batch, D]);
  const logits = linear(clsOut, w("head.weight", [cfg.classes, D]), zeros("head.bias", [cfg.classes]));
  return { images, logits, llm };
}

/** timm's weight-decay groups: no decay on 1-D tensors (norms, biases), pos_embed and cls_token. */
export function vitNoDecay(p: Node): boolean {
  const n = p.name ?? "";
  return p.rank <= 1 || n.endsWith(".bias") || n === "pos_embed" || n === "cls_token";
}
