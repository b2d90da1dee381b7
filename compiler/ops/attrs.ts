// The op vocabulary: every op's name and the type of its attributes, in one interface. The three
// tables keyed by it — op definitions (compiler/ops/table.ts), WGSL kernel lowerings
// (kernels/table.ts) and CPU references (tests/ref/table.ts) — are mapped types over OpName, so an op
// added here without a definition (shape rule; gradient rule or "none"), a kernel or a reference is a
// type error, and every rule, kernel and reference reads its attributes typed, without casts.
// (jax-js's `{ [P in Primitive]: Rule<P> }` tables follow the same pattern.)

import type { OpDef, Shape } from "../core/ir.ts";

/** Attributes of an op that has none. */
export type NoAttrs = Record<string, never>;

/** Which part of a training step a matmul node computes; only used for kernel labels. */
export type MatmulRole = "fwd" | "bwd_a" | "bwd_b";

/** How label smoothing ε is spread over the classes (see crossEntropy). */
export type Smoothing = "uniform" | "others";

/** A reduction over one axis. */
export interface AxisAttrs {
  axis: number;
  keepdims: boolean;
}

/** Attributes of the matmul op (transOut and role are internal: set by gradient rules). */
export interface MatmulAttrs {
  transA: boolean;
  transB: boolean;
  /** Store the result transposed ([..., N, M]); lets dA of a transA product keep b in the b slot. */
  transOut: boolean;
  role: MatmulRole;
}

/** layernorm/rmsnorm: eps, and which of the optional weight and bias inputs are present. */
export interface NormAttrs {
  eps: number;
  weight: boolean;
  bias: boolean;
}

/** Resolved attributes every attention op carries. */
export interface AttnAttrs {
  heads: number;
  kvHeads: number;
  causal: boolean;
  scale: number;
}

/** The constants of an AdamW update (torch.optim.AdamW's). */
export interface AdamWAttrs {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** The attrs of adamw_fused: adamw's, with weightDecay applying to the first `decayed` params only. */
export interface AdamWFusedAttrs extends AdamWAttrs {
  decayed: number;
}

/** Attributes of the rope op (see RopeOpts in compiler/ops/rope.ts). */
export interface RopeAttrs {
  heads: number;
  theta: number;
  positionOffset: number;
  inverse: boolean;
  invFreqDtype: "f32" | "bf16" | "f16";
}

/** Attributes of cross_entropy and its backward op. */
export interface CrossEntropyAttrs {
  /** Label smoothing ε in [0, 1). */
  smoothing: number;
  mode: Smoothing;
}

/** Every op of the library, by name, with the type of its attributes. */
export interface OpAttrs {
  // elementwise (compiler/ops/elementwise.ts)
  add: NoAttrs;
  sub: NoAttrs;
  mul: NoAttrs;
  div: NoAttrs;
  scale: { factor: number; offset: number };
  fill: { shape: Shape; value: number };
  cast: { to: "f32" };
  // broadcasting and its adjoint (compiler/ops/broadcast.ts)
  expand: { shape: Shape };
  sum: AxisAttrs;
  // reductions (compiler/ops/reduce.ts)
  mean: AxisAttrs;
  max: AxisAttrs;
  max_bwd: { axis: number; shape: Shape };
  // layout (compiler/ops/layout.ts)
  reshape: { shape: Shape };
  permute: { perm: readonly number[] };
  slice: { axis: number; start: number; end: number };
  slice_bwd: { axis: number; start: number; end: number; shape: Shape };
  concat: { axis: number };
  // matmul (compiler/ops/matmul.ts)
  matmul: MatmulAttrs;
  // patches (compiler/ops/patch.ts)
  im2col: { patch: number };
  col2im: { patch: number; shape: Shape };
  // activations (compiler/ops/activation.ts)
  gelu: NoAttrs;
  gelu_bwd: NoAttrs;
  silu: NoAttrs;
  silu_bwd: NoAttrs;
  relu: NoAttrs;
  relu_bwd: NoAttrs;
  // normalisation (compiler/ops/norm.ts)
  layernorm: NormAttrs;
  rmsnorm: NormAttrs;
  layernorm_bwd: { weight: boolean };
  rmsnorm_bwd: { weight: boolean };
  norm_wgrad: { rowsPerBlock: number };
  // softmax (compiler/ops/softmax.ts)
  softmax: { axis: number };
  softmax_bwd: NoAttrs;
  // attention (compiler/ops/attention.ts)
  attention: AttnAttrs;
  attention_bwd_d: AttnAttrs;
  attention_bwd_q: AttnAttrs;
  attention_bwd_kv: AttnAttrs;
  // embedding lookup (compiler/ops/gather.ts)
  gather: NoAttrs;
  scatter_add: { rows: number };
  // loss (compiler/ops/loss.ts)
  cross_entropy: CrossEntropyAttrs;
  cross_entropy_bwd: CrossEntropyAttrs;
  soft_cross_entropy: NoAttrs;
  soft_cross_entropy_bwd: { wrt: "logits" | "targets" };
  // optimizer (compiler/ops/optim.ts)
  sumsq: NoAttrs;
  sumsq_span: { count: number };
  clip_coef: { maxNorm: number };
  adamw: AdamWAttrs;
  adamw_fused: AdamWFusedAttrs;
  // finiteness checks of a training step (compiler/ops/finite.ts)
  nonfinite_any: { count: number; span: boolean };
  nonfinite_flag: NoAttrs;
  // rotary position embedding (compiler/ops/rope.ts)
  rope: RopeAttrs;
  // point clouds (compiler/ops/points.ts)
  fps: { groups: number };
  knn: { k: number };
  gather_points: NoAttrs;
  gather_points_bwd: { n: number };
  // batch norm and dropout (compiler/ops/batchnorm.ts)
  batchnorm: { training: boolean; eps: number };
  batchnorm_sums: { eps: number };
  batchnorm_bwd: { eps: number };
  batchnorm_eval_bwd: { eps: number };
  batchnorm_stats_update: { momentum: number; n: number };
  dropout: { p: number };
  // stochastic depth (compiler/ops/droppath.ts)
  drop_path: { p: number; stream: number };
  // model EMA (compiler/ops/ema.ts)
  ema_update: { decay: number; count: number };
}

/** The name of an op of the library. */
export type OpName = keyof OpAttrs;

/** Ops whose output shares its input's storage (OpDef.alias): no kernel, no CPU reference. */
export type AliasOp = "reshape";

/** The definition of op P: an OpDef over P's attributes, whose name is P. */
export type OpDefOf<P extends OpName> = OpDef<OpAttrs[P]> & { readonly name: P };

/** Defines op `name` (an OpName) from its rules; the result goes into its family's table entry. */
export function defineOp<P extends OpName>(name: P, rules: Omit<OpDef<OpAttrs[P]>, "name">): OpDefOf<P> {
  return { name, ...rules };
}
