/**
 * Op builders: each adds one node to the graph of its inputs, checks shapes at once (a ShapeError
 * names the op, what it got and what it expected), and carries its gradient rule (used by `grad`).
 * Optimizer updates and other internal ops are not exported here (nn.AdamW builds them).
 *
 * @module
 */

// elementwise with NumPy broadcasting, casts, constants
export { add, cast, div, expand, fill, mul, scale, sub, sumTo } from "./elementwise.ts";
// reductions over one axis
export { argmax, max, mean, sum, sumAll } from "./reduce.ts";
// layout: reshape (no copy), permute/transpose, slice, concat
export { concat, permute, reshape, slice, transpose } from "./layout.ts";
// matrix products
export { linear, matmul, type MatmulOpts } from "./matmul.ts";
// ViT patch embedding
export { col2im, im2col, patchEmbed } from "./patch.ts";
// activations
export { type Activation, gelu, relu, silu } from "./activation.ts";
// normalisation
export { layerNorm, rmsNorm } from "./norm.ts";
export { batchNorm, type BatchNormOptions, batchNormUpdates, dropout } from "./batchnorm.ts";
// attention and rotary position embedding
export { softmax } from "./softmax.ts";
export { attention, type AttentionOpts } from "./attention.ts";
export { rope, type RopeOpts } from "./rope.ts";
// embedding lookup and its adjoint
export { gather, scatterAdd } from "./gather.ts";
// loss
export { crossEntropy, type CrossEntropyOptions, type Smoothing } from "./loss.ts";
// point-cloud grouping (Point-BERT)
export { fps, gatherPoints, groupPoints, knn } from "./points.ts";
