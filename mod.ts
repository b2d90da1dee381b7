// Public API. Build a graph, differentiate it, compile it once, replay it every step.
//
//   const g = new Graph();
//   const x = g.input("x", [8, 16]);
//   const w = g.param("w", [16, 4], { init: truncNormal(1, 0.02) });
//   const loss = mean(...)
//   const grads = grad(loss);               // only trainable params, pruned
//   const exe = await compile([loss, ...grads.values()]);

import "./compiler/ops/index.ts";
import "./kernels/index.ts";

export * from "./compiler/core/ir.ts";
export { grad, needsGradSet } from "./compiler/grad.ts";
export { kernelLabels, lower, type Plan } from "./compiler/lower/plan.ts";
export { compile, type CompileOptions, Executable, type HostArray } from "./compiler/runtime/executable.ts";
export { getGpu, type Gpu, NoAdapterError } from "./compiler/runtime/device.ts";
export { constantInit, randn, Rng, truncNormal } from "./compiler/core/random.ts";
export * from "./compiler/ops/elementwise.ts";
export * from "./compiler/ops/reduce.ts";
export * from "./compiler/ops/layout.ts";
export * from "./compiler/ops/matmul.ts";
export * from "./compiler/ops/patch.ts";
export * from "./compiler/ops/gather.ts";
export * from "./compiler/ops/attention.ts";
export * from "./compiler/ops/loss.ts";
export * from "./compiler/ops/optim.ts";
export * from "./nn/optim.ts";
export * from "./compiler/ops/activation.ts";
export * from "./compiler/ops/norm.ts";
export * from "./compiler/ops/softmax.ts";
export * from "./compiler/ops/rope.ts";
export * from "./compiler/ops/points.ts";
export * from "./compiler/ops/batchnorm.ts";
