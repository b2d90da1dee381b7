// The public API is what mod.ts exports, and nothing else: its names (root and each namespace) are
// pinned here, so adding or removing a public name is a deliberate edit of this list; internals must
// not leak into any of them. The README's snippets are written out below against the public API and
// run as far as they go without a GPU (graph, gradients, optimizer, a frozen LLM stack); the GPU part
// (compile) is type-checked only.

import * as api from "../mod.ts";
import { compile, grad, Graph, io, models, nn, type Node, ops } from "../mod.ts";
import { assert, test } from "./testing.ts";

/** Runtime names (types vanish at runtime; `deno check` covers them). */
const ROOT = [
  "Executable",
  "Graph",
  "NoAdapterError",
  "Node",
  "ShapeError",
  "compile",
  "data",
  "getGpu",
  "grad",
  "io",
  "models",
  "nn",
  "ops",
  "train",
];

const NAMESPACES: Record<string, string[]> = {
  ops: [
    "add",
    "argmax",
    "attention",
    "batchNorm",
    "batchNormUpdates",
    "cast",
    "col2im",
    "concat",
    "crossEntropy",
    "div",
    "dropout",
    "expand",
    "fill",
    "fps",
    "gather",
    "gatherPoints",
    "gelu",
    "groupPoints",
    "im2col",
    "knn",
    "layerNorm",
    "linear",
    "matmul",
    "max",
    "mean",
    "mul",
    "patchEmbed",
    "permute",
    "relu",
    "reshape",
    "rmsNorm",
    "rope",
    "scale",
    "scatterAdd",
    "silu",
    "slice",
    "softmax",
    "sub",
    "sum",
    "sumAll",
    "sumTo",
    "transpose",
  ],
  nn: [
    "AdamW",
    "Rng",
    "constantInit",
    "randn",
    "sequenceClassifier",
    "timmNoDecay",
    "transformerBlock",
    "truncNormal",
  ],
  io: [
    "CheckpointError",
    "LLAMA_7B",
    "POINTBERT_MODEL_KEYS",
    "VIDEOMAE_MODEL_KEYS",
    "bytesOf",
    "crc32",
    "encodePng",
    "findCheckpoint",
    "hfLlamaConfig",
    "initFromPointBert",
    "initFromSafetensors",
    "initFromVideoMae",
    "loadCheckpoint",
    "openCheckpointDir",
    "openLlm",
    "openSafetensors",
    "openVideoMae",
    "parseLayerSelection",
    "pointBertName",
    "readCheckpointState",
    "readConfig",
    "readVideoMae",
    "saveCheckpoint",
    "toFloat32",
    "videoMaeName",
    "writeHfLlama",
    "writeRandomLlama",
    "writeSafetensors",
  ],
  data: [
    "Batcher",
    "CLASSES",
    "DEFAULT_DATA_DIR",
    "SYSTEM_DATA_DIR",
    "batchOf",
    "fashionPointSet",
    "fashionPointSource",
    "firstSamples",
    "image",
    "imageSamples",
    "loadFashionMnist",
    "loadModelNet",
    "loadPointH5",
    "pointSamples",
    "detectPointFiles",
    "farthestPoints",
    "loadPointFiles",
    "poolPoints",
    "resampledPointSamples",
    "scaleAndTranslate",
    "syntheticTask",
    "video",
  ],
  models: [
    "DEFAULT_LLM",
    "LLM_ARMS",
    "LLM_POSITIONS",
    "POINT_PRESETS",
    "RANDOM_LLM",
    "VIDEO_PRESETS",
    "VIT_PRESETS",
    "adaptVitInit",
    "buildLm",
    "buildPointBert",
    "buildVideoVit",
    "buildVit",
    "causalLm",
    "frozenEncoderStack",
    "initLmWeights",
    "isLlmParam",
    "llmArm",
    "llmLoader",
    "llmParamGroup",
    "lmLlmConfig",
    "lmNoDecay",
    "lmTensorShapes",
    "pointBertGroup",
    "pointBertLr",
    "pointBertRecipeNoDecay",
    "pointNoDecay",
    "resamplePosEmbed",
    "sinusoidTable",
    "tubeletEmbed",
    "videoNoDecay",
    "videoTokens",
    "vitNoDecay",
  ],
  train: [
    "ANALYSIS_STAGES",
    "FlagError",
    "LmScorer",
    "Metrics",
    "PRETRAIN_FLAGS",
    "Progress",
    "TASKS",
    "THRESHOLDS",
    "TRAIN_FLAGS",
    "Trainer",
    "ablationTable",
    "analysisSummary",
    "analyzeCheckpoint",
    "bytes",
    "cellOf",
    "clsAttention",
    "cosineLr",
    "dftPhase",
    "evalCommand",
    "evaluateCheckpoint",
    "frequencyScores",
    "imageTask",
    "iou",
    "lineChart",
    "lmEvalCommand",
    "magnitudeScores",
    "meanStd",
    "minMax",
    "num",
    "oracleIoU",
    "paramCounts",
    "parseBytes",
    "parseFlags",
    "pointsTask",
    "predictImages",
    "pretrainCommand",
    "pretrainOptionsFromFlags",
    "readCell",
    "readMetrics",
    "runPretrain",
    "runTraining",
    "tokenForeground",
    "tokenizedCorpus",
    "trainCommand",
    "trainFlagSpec",
    "trainOptionsFromFlags",
    "unigramCounts",
    "unigramPerplexity",
    "videoTask",
    "writeCell",
  ],
};

/** Internals that once were (or could easily become) public; none may appear anywhere in the API. */
const INTERNAL = [
  "lower",
  "kernelLabels",
  "aliasRoot",
  "spanLayout",
  "adamw",
  "adamwFused",
  "adamwFusedParts",
  "ADAMW_HYPER",
  "sumsq",
  "sumsqSpan",
  "clipCoef",
  "DROPOUT_HASH",
  "dropThreshold",
  "shapeFail",
  "normAxis",
  "broadcastShapes",
  "needsGradSet",
  "openGpu",
  "encode",
  "decode",
  "attnDims",
  "matmulDims",
  "ropeDims",
  "ropeInvFreq",
  "getOp",
  "registerOp",
  "toBf16",
  "fromBf16",
  "MetaAsHf",
  "readFrozen",
  "layerParams",
];

// Public types: one that disappears from mod.ts fails type-checking of this file.
export type PublicTypes = [
  api.DType,
  api.Shape,
  api.Init,
  api.OpDef,
  api.CompileOptions,
  api.HostArray,
  api.WeightLoader,
  api.Gpu,
  api.GpuOptions,
  api.ops.CrossEntropyOptions,
  api.nn.AdamWOptions,
  api.nn.BlockConfig,
  api.io.LlmConfig,
  api.io.LlmCheckpoint,
  api.io.WeightSource,
  api.models.VitConfig,
  api.models.VideoConfig,
  api.io.VideoMaeWeights,
  api.data.video.ClipOptions,
  api.data.video.VideoEntry,
  api.train.VideoSettings,
  api.train.MixSettings,
  api.train.PointSettings,
  api.models.FrozenStack,
];
// Internal types stay internal: exporting one makes these directives unused, which is an error.
// @ts-expect-error: the lowered plan is internal
export type NoPlan = api.Plan;
// @ts-expect-error: lowering options are internal
export type NoLowerOptions = api.LowerOptions;

test("api: mod.ts exports exactly the public names", () => {
  assert.deepEqual(Object.keys(api).sort(), [...ROOT].sort());
  const namespaces = api as unknown as Record<string, Record<string, unknown>>;
  for (const [ns, names] of Object.entries(NAMESPACES)) {
    assert.deepEqual(Object.keys(namespaces[ns]).sort(), [...names].sort(), `namespace ${ns}`);
    for (const name of names) assert.ok(namespaces[ns][name] !== undefined, `${ns}.${name} is undefined`);
  }
});

test("api: no internal name is reachable from mod.ts", () => {
  const reachable = new Set(Object.keys(api));
  const namespaces = api as unknown as Record<string, Record<string, unknown>>;
  for (const ns of Object.keys(NAMESPACES)) for (const k of Object.keys(namespaces[ns])) reachable.add(k);
  const leaked = INTERNAL.filter((n) => reachable.has(n));
  assert.deepEqual(leaked, [], `internal names exported: ${leaked.join(", ")}`);
});

test("api: README 'Using it' builds through the public API (no GPU)", () => {
  const g = new Graph();
  const x = g.input("x", [32, 64]);
  const labels = g.input("labels", [32], "i32");
  const w1 = g.param("fc1.weight", [128, 64], { init: nn.truncNormal(1, 0.02) });
  const w2 = g.param("fc2.weight", [10, 128], {
    trainable: false,
    dtype: "bf16",
    init: nn.truncNormal(2, 0.02),
  });
  const loss = ops.crossEntropy(ops.linear(ops.relu(ops.linear(x, w1)), w2), labels, { labelSmoothing: 0.1 });
  const grads = grad(loss); // only fc1.weight; d/dx flows through the frozen fc2
  assert.deepEqual([...grads.keys()].map((p) => p.name), ["fc1.weight"]);
  const opt = new nn.AdamW(g, grads, { lr: 1e-3, weightDecay: 0.05 });
  assert.ok(opt.effects.length > 0);
  // the GPU half of the snippet, type-checked only
  const _onGpu = async () => {
    const exe = await compile([loss], { effects: opt.effects });
    exe.write(x, new Float32Array(x.size));
    exe.write(labels, new Int32Array(labels.size));
    opt.prepareStep(exe, 1e-3);
    const [l] = await exe.run([loss]);
    return l[0];
  };
});

test("api: README 'Frozen LLM layers' builds a stack from the bundled checkpoint (no GPU)", async () => {
  const ck = await io.openLlm(models.DEFAULT_LLM);
  try {
    const layers = io.parseLayerSelection("last", ck.cfg.layers);
    assert.deepEqual(layers, [ck.cfg.layers - 1]);
    const g = new Graph();
    const x: Node = g.input("x", [2, 5, ck.cfg.hidden]);
    const stack = await models.frozenEncoderStack(g, x, ck, layers);
    assert.deepEqual([...stack.out.shape], [2, 5, ck.cfg.hidden]);
    const loss = ops.sumAll(stack.out);
    const _onGpu = () => compile([loss], { weights: stack.loader, gpuMemoryBudget: 600e6 });
  } finally {
    ck.src.close();
  }
});
