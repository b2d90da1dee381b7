/**
 * Op builders: each adds one node to the graph of its inputs, checks shapes at once, and carries its
 * gradient rule (used by `grad`). Optimizer ops and other internals are not exported here.
 *
 * @module
 */

export { add, cast, div, expand, fill, mul, scale, sub, sumTo } from "./elementwise.ts";
export { argmax, max, mean, sum, sumAll } from "./reduce.ts";
export { concat, permute, reshape, slice, transpose } from "./layout.ts";
export { linear, matmul, type MatmulOpts } from "./matmul.ts";
export { col2im, im2col, patchEmbed } from "./patch.ts";
export { type Activation, gelu, relu, silu } from "./activation.ts";
export { layerNorm, rmsNorm } from "./norm.ts";
export { softmax } from "./softmax.ts";
export { attention, type AttentionOpts } from "./attention.ts";
export { gather, scatterAdd } from "./gather.ts";
export { crossEntropy, type CrossEntropyOptions, type Smoothing } from "./loss.ts";
export { rope, type RopeOpts } from "./rope.ts";
export { fps, gatherPoints, groupPoints, knn } from "./points.ts";
export { batchNorm, type BatchNormOptions, batchNormUpdates, dropout } from "./batchnorm.ts";
