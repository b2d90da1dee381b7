/**
 * frozen-llm-vision: train vision models with frozen transformer layers taken from language models,
 * on the GPU through WebGPU. Build a static graph, differentiate it, compile it once, replay it every
 * step.
 *
 * ```ts
 * import { compile, grad, Graph, nn, ops } from "./mod.ts";
 *
 * const g = new Graph();
 * const x = g.input("x", [32, 64]);
 * const labels = g.input("labels", [32], "i32");
 * const w = g.param("fc.weight", [10, 64], { init: nn.truncNormal(1, 0.02) });
 * const loss = ops.crossEntropy(ops.linear(x, w), labels);
 * const opt = new nn.AdamW(g, grad(loss), { lr: 1e-3 });
 * const exe = await compile([loss], { effects: opt.effects }); // the plan is built once
 * // every step: exe.write(x, ...); exe.write(labels, ...); opt.prepareStep(exe); await exe.run([loss]);
 * ```
 *
 * Namespaces: `ops` (op builders), `nn` (transformer block, AdamW, init), `io` (safetensors, LLM and
 * training checkpoints), `data` (datasets, batcher), `models` (ViT, Point-BERT, frozen LLM stacks),
 * `train` (Trainer, runner, CLI helpers).
 *
 * @module
 */

export {
  type Attrs,
  type DType,
  type GradRule,
  Graph,
  type Init,
  Node,
  type NodeKind,
  type OpDef,
  type OpNode,
  type OutSpec,
  type Shape,
  ShapeError,
  type TensorSpec,
} from "./compiler/core/ir.ts";
export { grad } from "./compiler/grad.ts";
export {
  compile,
  type CompileOptions,
  Executable,
  type HostArray,
  type UploadPath,
  type WeightLoader,
} from "./compiler/runtime/executable.ts";
export { getGpu, type Gpu, type GpuOptions, NoAdapterError } from "./compiler/runtime/device.ts";

export * as ops from "./compiler/ops/mod.ts";
export * as nn from "./nn/mod.ts";
export * as io from "./io/mod.ts";
export * as data from "./data/mod.ts";
export * as models from "./models/mod.ts";
export * as train from "./train/mod.ts";
