// A pre-LayerNorm transformer block with timm's parameter names, and a tiny sequence classifier
// around it. The engine's end-to-end test and the first example train this; the ViT (issue 4) reuses
// `transformerBlock` for its blocks.
//
//   h = x + proj(attn(norm1(x)))          attn: fused qkv linear (with bias), split q|k|v, heads contiguous
//   y = h + fc2(act(fc1(norm2(h))))

import type { DType, Graph, Node } from "../compiler/core/ir.ts";
import { add, mul } from "../compiler/ops/elementwise.ts";
import { linear } from "../compiler/ops/matmul.ts";
import { layerNorm } from "../compiler/ops/norm.ts";
import { attention } from "../compiler/ops/attention.ts";
import { gelu, relu } from "../compiler/ops/activation.ts";
import { concat, slice } from "../compiler/ops/layout.ts";
import { mean } from "../compiler/ops/reduce.ts";
import { constantInit, truncNormal } from "../compiler/core/random.ts";
import { fromBf16, toBf16 } from "../compiler/core/dtype.ts";
import { dropPath } from "../compiler/ops/droppath.ts";

/** Shape and freezing of one pre-LN transformer block. */
export interface BlockConfig {
  /** Model width (the last dim of the block's input and output). */
  dim: number;
  /** Attention heads; `dim` must be divisible by it. */
  heads: number;
  /** MLP hidden width as a multiple of `dim` (default 4). */
  mlpRatio?: number;
  /** Causal attention mask (default false). */
  causal?: boolean;
  /** MLP activation (default "gelu"). */
  act?: "gelu" | "relu";
  /** LayerNorm epsilon (default 1e-6, timm's). */
  eps?: number;
  /** Which sub-layer is frozen (no weight gradients, no optimizer state). */
  frozen?: "none" | "attn" | "mlp" | "all";
  /** Storage dtype of frozen weights (bf16 halves their memory; kernels read it as f32). */
  frozenDtype?: DType;
  /**
   * Bias on the fused qkv linear: true (timm, `attn.qkv.bias`), false (Point-BERT), or "qv" (BEiT /
   * VideoMAE: separate `attn.q_bias` and `attn.v_bias`, the key gets none).
   */
  qkvBias?: boolean | "qv";
  /** Layer scale (BEiT / VideoMAE `init_values`): `gamma_1`, `gamma_2` [dim] start at this value. Off if absent or 0. */
  layerScale?: number;
  /** First seed of the weights' truncated-normal init; each weight takes the next one (default 1). */
  seed?: number;
  /**
   * Drop path (stochastic depth): per-sample scales [B, 1, 1] (0 or 1/keep) for the attention and MLP
   * branches, multiplied in after the layer scale. Training only.
   */
  dropPath?: { attn: Node; mlp: Node } | DropPathRate;
}

/**
 * Drop path as an IR op (compiler/ops/droppath.ts): both residual branches of the block are dropped
 * per sample with probability `rate`, masks drawn from `seed` (a u32/i32 input [1] written every step).
 */
export interface DropPathRate {
  /** Drop probability in [0, 1) of this block (see dropPathRates). */
  rate: number;
  /** The per-step seed. */
  seed: Node;
}

/**
 * timm's stochastic-depth rule: block i of `depth` drops with rate·i/(depth − 1), i.e.
 * `torch.linspace(0, drop_path_rate, depth)` (one block: [0], as linspace gives).
 */
export function dropPathRates(rate: number, depth: number): number[] {
  if (!(rate >= 0 && rate < 1)) throw new Error(`dropPathRates: rate must be in [0, 1), got ${rate}`);
  return Array.from({ length: depth }, (_, i) => depth > 1 ? (rate * i) / (depth - 1) : 0);
}

/** Rounds init values to what a 16-bit storage dtype holds, so a bf16 weight means the same everywhere. */
function initFor(dtype: DType, init: (n: number) => Float32Array): (n: number) => Float32Array {
  if (dtype !== "bf16") return init;
  return (n) => init(n).map((v) => fromBf16(toBf16(v)));
}

/**
 * Adds one pre-LN transformer block to `g`: `x` [B, T, dim] → [B, T, dim]. Params are named
 * `<prefix>.norm1.weight`, `<prefix>.attn.qkv.weight`, ... as in timm, so checkpoints map one to one.
 */
export function transformerBlock(g: Graph, x: Node, prefix: string, cfg: BlockConfig): Node {
  const D = cfg.dim, hidden = Math.round(D * (cfg.mlpRatio ?? 4)), eps = cfg.eps ?? 1e-6;
  let seed = cfg.seed ?? 1;
  const p = (name: string, shape: number[], frozen: boolean, kind: "w" | "b" | "one") => {
    const dtype: DType = frozen && kind === "w" ? cfg.frozenDtype ?? "f32" : "f32";
    const init = kind === "w" ? truncNormal(seed++, 0.02) : constantInit(kind === "one" ? 1 : 0);
    return g.param(`${prefix}.${name}`, shape, { trainable: !frozen, dtype, init: initFor(dtype, init) });
  };
  const fa = cfg.frozen === "attn" || cfg.frozen === "all", fm = cfg.frozen === "mlp" || cfg.frozen === "all";

  const n1 = layerNorm(x, p("norm1.weight", [D], fa, "one"), p("norm1.bias", [D], fa, "b"), eps);
  const qkvBias = cfg.qkvBias === "qv"
    ? concat([
      p("attn.q_bias", [D], fa, "b"),
      x.graph.constant(new Float32Array(D), [D]),
      p("attn.v_bias", [D], fa, "b"),
    ], 0)
    : (cfg.qkvBias ?? true)
    ? p("attn.qkv.bias", [3 * D], fa, "b")
    : undefined;
  const qkv = linear(n1, p("attn.qkv.weight", [3 * D, D], fa, "w"), qkvBias);
  const q = slice(qkv, -1, 0, D), k = slice(qkv, -1, D, 2 * D), v = slice(qkv, -1, 2 * D, 3 * D);
  const a = attention(q, k, v, { heads: cfg.heads, causal: cfg.causal ?? false });
  // layer scale: the branch times a learned per-channel gamma before the residual add (then drop path)
  const scaled = (y: Node, name: string, frozen: boolean) => {
    const s = cfg.layerScale
      ? mul(y, g.param(`${prefix}.${name}`, [D], { trainable: !frozen, init: constantInit(cfg.layerScale) }))
      : y;
    const dp = cfg.dropPath;
    if (!dp) return s;
    if ("rate" in dp) return dropPath(s, dp.rate, dp.seed); // stream: the branch node's id
    return mul(s, dp[name === "gamma_1" ? "attn" : "mlp"]);
  };
  const h = add(
    x,
    scaled(
      linear(a, p("attn.proj.weight", [D, D], fa, "w"), p("attn.proj.bias", [D], fa, "b")),
      "gamma_1",
      fa,
    ),
  );

  const n2 = layerNorm(h, p("norm2.weight", [D], fm, "one"), p("norm2.bias", [D], fm, "b"), eps);
  const f1 = linear(n2, p("mlp.fc1.weight", [hidden, D], fm, "w"), p("mlp.fc1.bias", [hidden], fm, "b"));
  const act = (cfg.act ?? "gelu") === "gelu" ? gelu(f1) : relu(f1);
  return add(
    h,
    scaled(
      linear(act, p("mlp.fc2.weight", [D, hidden], fm, "w"), p("mlp.fc2.bias", [D], fm, "b")),
      "gamma_2",
      fm,
    ),
  );
}

/** A block plus the sizes of `sequenceClassifier`'s input and output. */
export interface ClassifierConfig extends BlockConfig {
  /** Sequences per batch. */
  batch: number;
  /** Tokens per sequence. */
  seq: number;
  /** Features per input token (embedded to `dim`). */
  inDim: number;
  /** Number of output classes. */
  classes: number;
}

/** tokens [B, T, inDim] → embed → block → norm → mean over T → head → logits [B, classes]. */
export function sequenceClassifier(g: Graph, cfg: ClassifierConfig): { x: Node; logits: Node } {
  const x = g.input("x", [cfg.batch, cfg.seq, cfg.inDim]);
  const D = cfg.dim;
  const e = linear(
    x,
    g.param("embed.weight", [D, cfg.inDim], { init: truncNormal(101, 0.2) }),
    g.param("embed.bias", [D], { init: constantInit(0) }),
  );
  const y = transformerBlock(g, e, "blocks.0", cfg);
  const n = layerNorm(
    y,
    g.param("norm.weight", [D], { init: constantInit(1) }),
    g.param("norm.bias", [D], { init: constantInit(0) }),
    cfg.eps ?? 1e-6,
  );
  const pooled = mean(n, 1);
  const logits = linear(
    pooled,
    g.param("head.weight", [cfg.classes, D], { init: truncNormal(102, 0.02) }),
    g.param("head.bias", [cfg.classes], { init: constantInit(0) }),
  );
  return { x, logits };
}
