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
import { dropPathRates, transformerBlock } from "../nn/block.ts";
import type { FrozenStack, LlmCheckpoint } from "./llm.ts";
import { type LlmArm, llmArm, type LlmPosition } from "./arms.ts";

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
  /** u32 [1] seed of drop path (present when `dropPath` > 0): write a fresh one every step. */
  dropPathSeed?: Node;
  /** Intermediate nodes for the information-filtering analysis (train/analysis.ts). */
  taps: VitTaps;
}

/**
 * A ViT's intermediate tokens [B, 1 + L, ·] (CLS first). Without LLM layers only `vit` and
 * `lastBlockIn` exist. With several LLM layers, llm_attn/llm_ffn are the last layer's.
 */
export interface VitTaps {
  /** The encoder tokens that enter llama_dim_mapper1 (tail: the last block's output; none: the same place). */
  vit: Node;
  /** llama_dim_mapper1's output [B, T, hidden]. */
  mapper1?: Node;
  /** The LLM layer's attention output after its residual [B, T, hidden]. */
  llm_attn?: Node;
  /** The LLM layer's output (its FFN after the residual) [B, T, hidden]. */
  llm_ffn?: Node;
  /** llama_dim_mapper2's output [B, T, dim]. */
  mapper2?: Node;
  /** The input of the last encoder block (its CLS attention is recomputed from it on the host). */
  lastBlockIn: Node;
}

/** The LLM layers of a ViT-LLM: which, how (the ablation arm) and where. */
export interface VitLlm {
  /** The checkpoint (weights, or only the shape for the random and mlp arms). */
  ck: LlmCheckpoint;
  /** The selected layer indices. */
  layers: number[];
  /** The arm (default "frozen"; "none" builds no mappers and no layers). */
  arm?: LlmArm;
  /** tail: after the last block (default); middle: after block depth/2; head: after the patch embedding. */
  position?: LlmPosition;
}

/**
 * Builds the model for a batch of `batch` images [B, chans, img, img]. With `llm`, the selected
 * frozen layers of that checkpoint sit between the blocks and the norm (the paper's ViT-LLM).
 * `dropPath` > 0 turns on stochastic depth (timm drop_path_rate: block i drops with rate·i/(depth − 1),
 * per sample, masks from the `dropPathSeed` input); leave it out for evaluation.
 */
export async function buildVit(
  g: Graph,
  cfg: VitConfig,
  batch: number,
  opts: { llm?: VitLlm; seed?: number; dropPath?: number } = {},
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
  const pathRates = dropPathRates(opts.dropPath ?? 0, cfg.depth);
  const dropPathSeed = pathRates.some((r) => r > 0) ? g.input("drop_path_seed", [1], "u32") : undefined;
  const tokens = patchEmbed(
    images,
    w("patch_embed.proj.weight", [D, chans, patch, patch]),
    zeros("patch_embed.proj.bias", [D]),
    patch,
  );
  const cls = expand(w("cls_token", [1, 1, D]), [batch, 1, D]);
  let x = add(concat([cls, tokens], 1), w("pos_embed", [1, L + 1, D]));
  const want = opts.llm && (opts.llm.arm ?? "frozen") !== "none" ? opts.llm : undefined;
  const position = want?.position ?? "tail";
  const at = position === "head" ? 0 : position === "middle" ? Math.floor(cfg.depth / 2) : cfg.depth;
  let llm: FrozenStack | undefined;
  const taps: Partial<VitTaps> = {};
  // the LLM layers between the blocks: [llama_dim_mapper1 → layers → llama_dim_mapper2]
  const insert = async (ll: VitLlm) => {
    taps.vit = x;
    const H = ll.ck.cfg.hidden;
    const m1 = linear(x, w("llama_dim_mapper1.weight", [H, D]));
    llm = await llmArm(g, m1, { arm: ll.arm ?? "frozen", ck: ll.ck, layers: ll.layers, seed: opts.seed });
    x = linear(llm.out, w("llama_dim_mapper2.weight", [D, H]));
    Object.assign(taps, {
      mapper1: m1,
      llm_attn: llm.taps.at(-1)!.attn,
      llm_ffn: llm.taps.at(-1)!.out,
      mapper2: x,
    });
  };
  for (let i = 0; i < cfg.depth; i++) {
    if (want && i === at) await insert(want);
    if (i === cfg.depth - 1) taps.lastBlockIn = x;
    x = transformerBlock(g, x, `blocks.${i}`, {
      dim: D,
      heads: cfg.heads,
      mlpRatio: cfg.mlpRatio ?? 4,
      eps: cfg.eps ?? 1e-6,
      seed: 1000 + 100 * i + seed,
      dropPath: dropPathSeed && pathRates[i] > 0 ? { rate: pathRates[i], seed: dropPathSeed } : undefined,
    });
  }
  if (want && at === cfg.depth) await insert(want);
  taps.vit ??= x;
  taps.lastBlockIn ??= x;
  x = layerNorm(x, ones("norm.weight", [D]), zeros("norm.bias", [D]), cfg.eps ?? 1e-6);
  const clsOut = reshape(slice(x, 1, 0, 1), [batch, D]);
  const logits = linear(clsOut, w("head.weight", [cfg.classes, D]), zeros("head.bias", [cfg.classes]));
  return { images, logits, llm, dropPathSeed, taps: taps as VitTaps };
}

/** timm's weight-decay groups: no decay on 1-D tensors (norms, biases), pos_embed and cls_token. */
export function vitNoDecay(p: Node): boolean {
  const n = p.name ?? "";
  return p.rank <= 1 || n.endsWith(".bias") || n === "pos_embed" || n === "cls_token";
}

/** PyTorch's bicubic weights (A = -0.75) of the 4 taps around a source position with fraction t. */
function cubicWeights(t: number): [number, number, number, number] {
  const A = -0.75;
  const near = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1;
  const far = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return [far(t + 1), near(t), near(1 - t), far(2 - t)];
}

/** One axis of F.interpolate(mode="bicubic", align_corners=False): for each output, 4 (index, weight) taps. */
function bicubicTaps(inSize: number, outSize: number): { idx: Int32Array; w: Float64Array } {
  const idx = new Int32Array(outSize * 4), w = new Float64Array(outSize * 4), scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const src = scale * (o + 0.5) - 0.5, i0 = Math.floor(src);
    const ws = cubicWeights(src - i0);
    for (let k = 0; k < 4; k++) {
      idx[o * 4 + k] = Math.min(Math.max(i0 - 1 + k, 0), inSize - 1);
      w[o * 4 + k] = ws[k];
    }
  }
  return { idx, w };
}

/**
 * timm's `resample_abs_pos_embed` with antialias off: a [1, prefix + H·W, dim] position embedding
 * resampled to another patch grid, the grid part with F.interpolate(mode="bicubic", align_corners=False)
 * and the `prefix` tokens (cls) kept as they are. Grids are [rows, cols].
 */
export function resamplePosEmbed(
  pos: Float32Array,
  dim: number,
  from: [number, number],
  to: [number, number],
  prefix = 1,
): Float32Array {
  const [h0, w0] = from, [h1, w1] = to;
  if (pos.length !== (prefix + h0 * w0) * dim) {
    throw new Error(`resamplePosEmbed: ${pos.length} values is not (${prefix} + ${h0}·${w0})·${dim}`);
  }
  const out = new Float32Array((prefix + h1 * w1) * dim);
  out.set(pos.subarray(0, prefix * dim));
  const ty = bicubicTaps(h0, h1), tx = bicubicTaps(w0, w1);
  const acc = new Float64Array(dim);
  for (let y = 0; y < h1; y++) {
    for (let x = 0; x < w1; x++) {
      acc.fill(0);
      for (let a = 0; a < 4; a++) {
        for (let b = 0; b < 4; b++) {
          const wgt = ty.w[y * 4 + a] * tx.w[x * 4 + b];
          const base = (prefix + ty.idx[y * 4 + a] * w0 + tx.idx[x * 4 + b]) * dim;
          for (let d = 0; d < dim; d++) acc[d] += wgt * pos[base + d];
        }
      }
      out.set(acc, (prefix + y * w1 + x) * dim);
    }
  }
  return out;
}

/**
 * For `--init` of timm/DeiT weights into a ViT of another image or patch grid: resamples `pos_embed`
 * [1, 1 + n², D] to the model's [1, 1 + m², D] (square grids, cls token kept); other tensors: undefined.
 */
export function adaptVitInit(
  name: string,
  data: Float32Array,
  from: readonly number[],
  to: readonly number[],
): Float32Array | undefined {
  if (name !== "pos_embed" || from.length !== 3 || to.length !== 3 || from[2] !== to[2]) return undefined;
  const g0 = Math.round(Math.sqrt(from[1] - 1)), g1 = Math.round(Math.sqrt(to[1] - 1));
  if (g0 * g0 !== from[1] - 1 || g1 * g1 !== to[1] - 1) return undefined;
  return resamplePosEmbed(data, from[2], [g0, g0], [g1, g1], 1);
}
