// Point-BERT's PointTransformer (finetune model) with the paper's frozen LLM layers:
//
//   points [B, N, 3] → FPS centers + kNN groups (relative coordinates) → mini-PointNet per group
//   (first_conv: Conv1d 3→128, BN, ReLU, Conv1d 128→256; max; concat [global, local]; second_conv:
//   Conv1d 512→512, BN, ReLU, Conv1d 512→E; max) → reduce_dim → [cls_token; tokens], pos =
//   [cls_pos; pos_embed(centers)] → blocks, each fed x + pos → [llama_dim_mapper1 → frozen LLM layers
//   → llama_dim_mapper2] → norm → cls_head_finetune([x_cls; max over tokens]).
//
// Parameter names are Point-BERT's state-dict names (Conv1d weights keep their [out, in, 1] shape),
// so its checkpoints load; BatchNorm running statistics are state tensors updated in place.

import type { Graph, Node } from "../compiler/core/ir.ts";
import { add, expand } from "../compiler/ops/elementwise.ts";
import { linear } from "../compiler/ops/matmul.ts";
import { layerNorm } from "../compiler/ops/norm.ts";
import { gelu, relu } from "../compiler/ops/activation.ts";
import { concat, reshape, slice } from "../compiler/ops/layout.ts";
import { max } from "../compiler/ops/reduce.ts";
import { groupPoints } from "../compiler/ops/points.ts";
import { batchNorm, batchNormUpdates, dropout } from "../compiler/ops/batchnorm.ts";
import { constantInit, truncNormal } from "../compiler/core/random.ts";
import { dropPathRates, transformerBlock } from "../nn/block.ts";
import type { ParamGroup } from "../nn/optim.ts";
import { cosineLr } from "../nn/schedule.ts";
import { frozenEncoderStack, type FrozenStack, type LlmCheckpoint } from "./llm.ts";
import { type LlmArm, llmArm } from "./arms.ts";

/** A Point-BERT encoder's shape. Presets: models/presets.ts. */
export interface PointBertConfig {
  /** Points per cloud. */
  points: number;
  /** Groups (tokens) picked by farthest point sampling. */
  groups: number;
  /** kNN points per group. */
  groupSize: number;
  /** Mini-PointNet output width. */
  encoderDim: number;
  /** Transformer width. */
  dim: number;
  /** Transformer blocks. */
  depth: number;
  /** Attention heads per block. */
  heads: number;
  /** Output classes. */
  classes: number;
}

/** A built Point-BERT: its input, logits, BatchNorm state and updates, dropout seed and frozen LLM stack. */
export interface PointBertModel {
  /** Input [B, points, 3]. */
  points: Node;
  /** Output [B, classes]. */
  logits: Node;
  /** In-place updates of the BatchNorm running statistics (training mode); pass to compile's effects. */
  bnUpdates: Node[];
  /** BatchNorm running statistics, by Point-BERT name. */
  buffers: Node[];
  /** The dropout seed input (training mode with dropout): write a fresh u32 each step. */
  dropoutSeed?: Node;
  /** Present when frozen LLM layers are inside. */
  llm?: FrozenStack;
}

/**
 * Builds the model for a batch of `batch` clouds [B, points, 3]: `training` selects BatchNorm's batch
 * statistics (with running-stat updates) and head dropout; with `llm`, the selected frozen layers of
 * that checkpoint sit between the blocks and the norm.
 */
export async function buildPointBert(
  g: Graph,
  cfg: PointBertConfig,
  batch: number,
  opts: {
    training: boolean;
    dropout?: number;
    /** Stochastic depth rate of the last block (timm's linspace rule; training only; default 0). */
    dropPath?: number;
    /** The LLM layers, and the ablation arm they are built as (models/arms.ts; default frozen). */
    llm?: { ck: LlmCheckpoint; layers: number[]; arm?: LlmArm };
    seed?: number;
  },
): Promise<PointBertModel> {
  const { groups: G, groupSize: K, encoderDim: E, dim: D } = cfg;
  let seed = (opts.seed ?? 0) * 1000 + 7;
  const w = (name: string, shape: number[], std = 0.02) =>
    g.param(name, shape, { init: truncNormal(seed++, std) });
  const zeros = (name: string, shape: number[]) => g.param(name, shape, { init: constantInit(0) });
  const ones = (name: string, shape: number[]) => g.param(name, shape, { init: constantInit(1) });
  const buffers: Node[] = [];
  /** Conv1d(in, out, 1) on rows [..., in] — a linear layer whose weight keeps PyTorch's [out, in, 1]. */
  const conv = (x: Node, name: string, cin: number, cout: number) =>
    linear(
      x,
      reshape(w(`${name}.weight`, [cout, cin, 1], 1 / Math.sqrt(cin)), [cout, cin]),
      zeros(`${name}.bias`, [cout]),
    );
  const bn = (x: Node, name: string, c: number) => {
    const runningMean = g.state(`${name}.running_mean`, [c], { init: constantInit(0) });
    const runningVar = g.state(`${name}.running_var`, [c], { init: constantInit(1) });
    buffers.push(runningMean, runningVar);
    return batchNorm(x, ones(`${name}.weight`, [c]), zeros(`${name}.bias`, [c]), {
      training: opts.training,
      runningMean,
      runningVar,
    });
  };

  const points = g.input("points", [batch, cfg.points, 3]);
  const { centers, neighborhoods } = groupPoints(points, G, K);
  // mini-PointNet over every group's points: rows [B·G·K, channels]
  const rows = batch * G * K;
  let f = reshape(neighborhoods, [rows, 3]);
  f = conv(
    relu(bn(conv(f, "encoder.first_conv.0", 3, 128), "encoder.first_conv.1", 128)),
    "encoder.first_conv.3",
    128,
    256,
  );
  const local = reshape(f, [batch * G, K, 256]);
  const global = expand(max(local, 1, true), [batch * G, K, 256]);
  f = reshape(concat([global, local], 2), [rows, 512]);
  f = conv(
    relu(bn(conv(f, "encoder.second_conv.0", 512, 512), "encoder.second_conv.1", 512)),
    "encoder.second_conv.3",
    512,
    E,
  );
  const tokens = reshape(max(reshape(f, [batch * G, K, E]), 1), [batch, G, E]);

  let x = linear(tokens, w("reduce_dim.weight", [D, E]), zeros("reduce_dim.bias", [D]));
  const pos = linear(
    gelu(linear(centers, w("pos_embed.0.weight", [128, 3]), zeros("pos_embed.0.bias", [128]))),
    w("pos_embed.2.weight", [D, 128]),
    zeros("pos_embed.2.bias", [D]),
  );
  x = concat([expand(w("cls_token", [1, 1, D]), [batch, 1, D]), x], 1);
  const p = concat([expand(w("cls_pos", [1, 1, D]), [batch, 1, D]), pos], 1);
  const rates = dropPathRates(opts.training ? opts.dropPath ?? 0 : 0, cfg.depth);
  let dropoutSeed: Node | undefined;
  const seedInput = () => dropoutSeed ??= g.input("dropout_seed", [1], "u32");
  for (let i = 0; i < cfg.depth; i++) {
    x = transformerBlock(g, add(x, p), `blocks.blocks.${i}`, {
      dim: D,
      heads: cfg.heads,
      eps: 1e-5,
      qkvBias: false,
      seed: seed + 100 * i,
      dropPath: rates[i] > 0 ? { rate: rates[i], seed: seedInput() } : undefined,
    });
  }
  seed += 100 * cfg.depth;
  let llm: FrozenStack | undefined;
  if (opts.llm && opts.llm.arm !== "none") {
    const { ck, layers, arm } = opts.llm;
    const H = ck.cfg.hidden;
    x = linear(x, w("llama_dim_mapper1.weight", [H, D]));
    llm = !arm || arm === "frozen"
      ? await frozenEncoderStack(g, x, ck, layers)
      : await llmArm(g, x, { arm, ck, layers, seed: opts.seed });
    x = linear(llm.out, w("llama_dim_mapper2.weight", [D, H]));
  }
  x = layerNorm(x, ones("norm.weight", [D]), zeros("norm.bias", [D]), 1e-5);
  const T = G + 1;
  const feat = concat([reshape(slice(x, 1, 0, 1), [batch, D]), max(slice(x, 1, 1, T), 1)], 1);
  let h = relu(
    linear(feat, w("cls_head_finetune.0.weight", [256, 2 * D]), zeros("cls_head_finetune.0.bias", [256])),
  );
  if (opts.training && (opts.dropout ?? 0.5) > 0) {
    h = dropout(h, opts.dropout ?? 0.5, seedInput());
  }
  const logits = linear(
    h,
    w("cls_head_finetune.3.weight", [cfg.classes, 256]),
    zeros("cls_head_finetune.3.bias", [cfg.classes]),
  );
  return { points, logits, bnUpdates: batchNormUpdates(g), buffers, dropoutSeed, llm };
}

/** Point-BERT's no-decay set: 1-D params, biases, cls_token, cls_pos. */
export function pointNoDecay(p: Node): boolean {
  const n = p.name ?? "";
  return p.rank <= 1 || n.endsWith(".bias") || n === "cls_token" || n === "cls_pos";
}

/**
 * The no-decay rule of the paper's reference (LM4VisualEncoding tools/builder.py add_weight_decay):
 * 1-D params, biases and names containing "token" (cls_pos is decayed there, unlike pointNoDecay).
 */
export function pointBertRecipeNoDecay(p: Node): boolean {
  const n = p.name ?? "";
  return p.rank <= 1 || n.endsWith(".bias") || n.includes("token");
}

/**
 * The reference's three AdamW groups (tools/builder.py): trainable names containing "llama" (the
 * mappers) at 0.5 × lr without weight decay; the no-decay set (pointBertRecipeNoDecay) at 0.1 × lr;
 * the rest at lr with the weight decay. The schedule multiplies every group alike, keeping the ratios.
 */
export function pointBertGroup(p: Node): ParamGroup {
  if ((p.name ?? "").includes("llama")) return { lrScale: 0.5, weightDecay: 0 };
  return pointBertRecipeNoDecay(p) ? { lrScale: 0.1, weightDecay: 0 } : {};
}

/**
 * The reference's schedule (tools/builder.py CosLR + runner_BERT_finetune.py) as the lr of each step:
 * timm's CosineLRScheduler in epochs (t_initial `epochs`, lr_min 1e-6, warmup_t `warmupEpochs` from
 * warmup_lr_init 1e-6), stepped with `scheduler.step(epoch)` after each epoch — so epoch 0 and epoch 1
 * both train at lr(0), and epoch e ≥ 1 at lr(e − 1). Param groups scale it (pointBertGroup).
 */
export function pointBertLr(
  lr: number,
  epochs: number,
  warmupEpochs: number,
  stepsPerEpoch: number,
): (step: number) => number {
  return (step: number): number => {
    const e = Math.floor(step / stepsPerEpoch);
    return cosineLr(Math.max(0, e - 1), {
      lr,
      tInitial: epochs,
      lrMin: 1e-6,
      warmupT: warmupEpochs,
      warmupLrInit: 1e-6,
    });
  };
}
