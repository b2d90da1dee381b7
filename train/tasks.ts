// Task descriptions: what the one runner (train/run.ts) needs to know about a kind of training run —
// its data (as Batcher samples), its model (built for a batch, in training or evaluation mode), its
// loss and weight-decay groups. Adding a task (video, ...) means adding one entry here.

import type { Graph, Node } from "../compiler/core/ir.ts";
import { crossEntropy } from "../compiler/ops/loss.ts";
import type { Executable } from "../compiler/runtime/executable.ts";
import type { ParamGroup } from "../nn/optim.ts";
import { layerDecayGroups, lrAtStep } from "../nn/schedule.ts";
import type { Samples } from "../data/batcher.ts";
import {
  CLASSES,
  FASHION_MNIST_MEAN,
  FASHION_MNIST_STD,
  firstSamples,
  imageSamples,
  loadFashionMnist,
  type Split,
} from "../data/fashion_mnist.ts";
import { firstImages, openImageDataset } from "../data/image/dataset.ts";
import { detectImageDataset } from "../data/image/detect.ts";
import { type ImagePipeline, openImagePipeline } from "../data/image/pipeline.ts";
import {
  IMAGE_AUGMENTS,
  type ImageAugment,
  type ImageTransformSpec,
} from "../data/image/sample_transform.ts";
import { fashionPointSource, pointSamples } from "../data/point_data.ts";
import {
  detectPointFiles,
  hasPointFiles,
  loadPointFiles,
  poolPoints,
  resampledPointSamples,
} from "../data/point_files.ts";
import { videoDataKind, videoSplit } from "../data/video/dataset.ts";
import { parseRandAugment } from "../data/image/augment.ts";
import { initFromSafetensors } from "../io/checkpoint.ts";
import type { LlmCheckpoint } from "../io/llm.ts";
import { initFromVideoMae } from "../io/videomae.ts";
import type { FrozenStack } from "../models/llm.ts";
import { POINT_PRESETS, VIDEO_PRESETS, VIT_PRESETS } from "../models/presets.ts";
import {
  buildPointBert,
  type PointBertConfig,
  pointBertGroup,
  pointBertLr,
  pointBertRecipeNoDecay,
  pointNoDecay,
} from "../models/pointbert.ts";
import { initFromPointBert } from "../io/pointbert.ts";
import { buildVideoVit, type VideoConfig, videoNoDecay } from "../models/video.ts";
import { adaptVitInit, buildVit, type VitConfig, vitNoDecay } from "../models/vit.ts";
import { isLlmParam, type LlmArm, llmParamGroup, type LlmPosition } from "../models/arms.ts";

/** The kinds of training run the runner knows. */
export type TaskName = "image" | "points" | "video";

/** The task names, in the order --help lists them. */
export const TASK_NAMES: readonly TaskName[] = ["image", "points", "video"];

/** A model configuration of any task. */
export type ModelConfig = VitConfig | PointBertConfig | VideoConfig;

/** The video task's settings (RunConfig fields only video runs have; see train/flags.ts). */
export interface VideoSettings {
  /** Temporal sampling of list datasets: SSv2's segments or Kinetics' dense windows. */
  sampling?: "segment" | "dense";
  /** Frame stride of dense sampling. */
  stride?: number;
  /** Test-time clips per video (scores averaged). */
  testClips?: number;
  /** Test-time crops per clip (scores averaged). */
  testCrops?: number;
  /** Stochastic depth rate of the last block. */
  dropPath?: number;
  /** Layer-wise learning-rate decay (1: off). */
  layerDecay?: number;
  /** Where the listed videos are (default: the data directory). */
  videoRoot?: string;
  /** RandAugment of listed videos' training clips (timm string, e.g. rand-m7-n4-mstd0.5-inc1), or "none". */
  aa?: string;
}

/** The RunConfig keys of VideoSettings (stored with a video run's state). */
export const VIDEO_SETTING_KEYS: readonly (keyof VideoSettings)[] = [
  "sampling",
  "stride",
  "testClips",
  "testCrops",
  "dropPath",
  "layerDecay",
  "videoRoot",
  "aa",
];

/** The points task's settings (RunConfig fields only point runs have; see train/flags.ts). */
export interface PointSettings {
  /** Training recipe: "pointbert" (the paper's reference: three AdamW groups, its no-decay rule). */
  recipe?: string;
  /** Test-time votes per cloud (logits averaged; 1: none). */
  vote?: number;
}

/** The image task's data settings (RunConfig fields; see train/flags.ts). */
export interface ImageSettings {
  /** Eval resize: shorter side to int(img / cropPct), then the center crop (absent: 0.875). */
  cropPct?: number;
  /** Per-channel mean, "a,b,c" (absent: ImageNet's; Fashion-MNIST's on its own IDX path). */
  mean?: string;
  /** Per-channel std, "a,b,c". */
  std?: string;
  /** Training augmentation: auto | deit | flip | none (absent: auto). */
  augment?: string;
  /** Decoding threads (0 or absent: one per core). */
  workers?: number;
  /** Skip corrupt images (a warning each) instead of failing. */
  skipBad?: boolean;
  /** DeiT's linear scaling: > 0 sets lr = lrBase · batch / 512 in place of lr (absent or 0: off). */
  lrBase?: number;
  /** timm's warmup_lr_init: the lr the warmup starts from (absent: 0, the runner's own cosine). */
  warmupLr?: number;
  /** timm's lr_min: the floor of the cosine (absent: 0). */
  minLr?: number;
  /** Model EMA decay (timm ModelEmaV2; > 0: the EMA model is kept and evaluated too; absent or 0: off). */
  modelEmaDecay?: number;
}

/** Batch mixing of the image and video tasks (timm Mixup/CutMix; RunConfig fields; see train/flags.ts). */
export interface MixSettings {
  /** Mixup alpha (0 or absent: off). */
  mixup?: number;
  /** CutMix alpha (0 or absent: off). */
  cutmix?: number;
  /** Probability that a batch is mixed (absent: 1). */
  mixupProb?: number;
  /** Probability of CutMix instead of Mixup when both are on (absent: 0.5). */
  mixupSwitchProb?: number;
}

/** The RunConfig keys of MixSettings (stored with a run's state). */
export const MIX_SETTING_KEYS: readonly (keyof MixSettings)[] = [
  "mixup",
  "cutmix",
  "mixupProb",
  "mixupSwitchProb",
];

/** The RunConfig keys of ImageSettings (stored with an image run's state). */
export const IMAGE_SETTING_KEYS: readonly (keyof ImageSettings)[] = [
  "cropPct",
  "mean",
  "std",
  "augment",
  "lrBase",
  "warmupLr",
  "minLr",
  "modelEmaDecay",
];

/** The RunConfig keys of PointSettings (stored with a point run's state). */
export const POINT_SETTING_KEYS: readonly (keyof PointSettings)[] = ["recipe", "vote"];

/** What a task needs from a run's configuration (a subset of RunConfig). */
export interface TaskConfig extends VideoSettings, PointSettings, ImageSettings, MixSettings {
  /** The model's shape. */
  model: ModelConfig;
  /** The preset the shape came from (or "custom"), for messages. */
  modelName: string;
  /** Dataset directory. */
  data: string;
  /** Seed (data generation that depends on it, e.g. point sampling of the training split). */
  seed: number;
  /** Label smoothing of the cross-entropy loss. */
  labelSmoothing: number;
  /** Head dropout probability (tasks whose model has one). */
  dropout: number;
  /** Ablation arm of the LLM layers (models/arms.ts; absent: "frozen"). */
  arm?: LlmArm;
  /** Where the LLM layers sit in a ViT (absent: "tail"). */
  llmPosition?: LlmPosition;
  /** The finetune arm's LLM learning rate as a multiple of lr (absent: 1). */
  llmLrScale?: number;
  /** Receives warnings of data loading (skipped corrupt images). */
  log?: (line: string) => void;
}

/** A model built by a task: its input, logits, state tensors saved with the checkpoint, and updates. */
export interface TaskModel {
  /** The batch input (images, clouds, ...). */
  input: Node;
  /** [B, classes] logits. */
  logits: Node;
  /** State tensors that are saved and restored with the trainable params (BatchNorm running stats). */
  buffers: Node[];
  /** In-place updates to run before the optimizer (BatchNorm running-stat updates in training mode). */
  effects: Node[];
  /** A u32 input that takes a fresh seed every step (dropout), if the model has one. */
  dropoutSeed?: Node;
  /** The frozen LLM stack inside, if any. */
  llm?: FrozenStack;
}

/** The frozen LLM layers a model is built with. */
export interface TaskLlm {
  /** The opened checkpoint. */
  ck: LlmCheckpoint;
  /** The selected layer indices. */
  layers: number[];
}

/** A kind of training run, as the runner drives it. */
export interface Task {
  /** Its name (the `task` of a RunConfig). */
  name: TaskName;
  /** What one sample is called in progress lines ("img", "cloud"). */
  unit: string;
  /** The named model shapes it offers; the first is the default. */
  presets: Readonly<Record<string, ModelConfig>>;
  /** A short description for the chart title and messages, e.g. "ViT fmnist on Fashion-MNIST". */
  describe(c: TaskConfig): string;
  /** Number of classes of its data. */
  classes(c: TaskConfig): number;
  /**
   * Loads a split (its first `limit` samples; 0: all) as Batcher samples, and checks that the model
   * fits the data (throws naming the flag to change otherwise).
   */
  samples(c: TaskConfig, split: Split, limit: number): Promise<Samples>;
  /** Builds the model for `batch` samples, in training (dropout, BatchNorm batch statistics) or evaluation mode. */
  build(g: Graph, c: TaskConfig, batch: number, training: boolean, llm?: TaskLlm): Promise<TaskModel>;
  /** Parameters without weight decay. */
  noDecay(p: Node): boolean;
  /** Parameters without weight decay, when the run's recipe changes the rule (default: noDecay). */
  noDecayOf?(c: TaskConfig): ((p: Node) => boolean) | undefined;
  /** The training loss. */
  loss(logits: Node, labels: Node, c: TaskConfig): Node;
  /** The lr of each step, when the run's recipe has its own schedule (default: the runner's cosine). */
  lrSchedule?(
    c: TaskConfig,
    s: { lr: number; warmup: number; total: number; perEpoch: number },
  ): ((step: number) => number) | undefined;
  /** Optimizer param groups (layer-wise lr decay), when the run asks for them. */
  paramGroup?(c: TaskConfig): ((p: Node) => ParamGroup) | undefined;
  /**
   * Initial weights from `file` (`--init`) into `params` of `exe`; default: a safetensors file with
   * the model's names (io/checkpoint.ts initFromSafetensors).
   */
  initFrom?(
    file: string,
    exe: Executable,
    params: readonly Node[],
  ): Promise<{ loaded: string[]; skipped: string[]; kept: string[] }>;
}

/** Seed of the test split's point sampling (fixed, so every run evaluates on the same clouds). */
const TEST_POINTS_SEED = 12345;

/** Whether `dir` holds IDX image files (Fashion-MNIST / MNIST), for descriptions. */
function isIdxDir(dir: string): boolean {
  return ["train", "t10k"].some((s) =>
    ["", ".gz"].some((z) => {
      try {
        return Deno.statSync(`${dir}/${s}-images-idx3-ubyte${z}`).isFile;
      } catch {
        return false;
      }
    })
  );
}

/** Whether a run reads Fashion-MNIST IDX the original way (28×28×1, its normalization and pad-crop-flip). */
async function fashionMnistPath(c: TaskConfig): Promise<boolean> {
  const m = c.model as VitConfig;
  if (m.chans !== 1 || m.img !== 28 || c.cropPct !== undefined || c.mean || c.std) return false;
  if (c.augment && c.augment !== "auto" && c.augment !== "none") return false;
  try {
    return (await detectImageDataset(c.data)).format === "idx";
  } catch {
    return true; // its own error message (where to get the data) is the better one
  }
}

function channelValues(flag: string, text: string | undefined, chans: number): number[] | undefined {
  if (!text) return undefined;
  const v = text.split(",").map((s) => Number(s.trim()));
  if (v.length !== chans || v.some((x) => !Number.isFinite(x))) {
    throw new Error(`--${flag}: expected ${chans} comma-separated numbers (one per channel), got '${text}'`);
  }
  return v;
}

/** Images of any format (data/image: ImageFolder, CIFAR, IDX) through the worker pipeline. */
async function pipelineSamples(c: TaskConfig, split: Split, limit: number): Promise<ImagePipeline> {
  const m = c.model as VitConfig;
  if (m.chans !== 1 && m.chans !== 3) throw new Error(`--chans: images have 1 or 3 channels, got ${m.chans}`);
  const ds = firstImages(await openImageDataset(c.data, split === "test" ? "val" : "train"), limit);
  if (ds.classes.length !== m.classes) {
    throw new Error(
      `data: ${c.data} has ${ds.classes.length} classes, model '${c.modelName}' has ${m.classes} ` +
        `(--classes ${ds.classes.length})`,
    );
  }
  return await openImagePipeline(ds, imageSpecOf(c), { workers: c.workers, skipBad: c.skipBad, warn: c.log });
}

/** The pipeline's transform of a run's images (eval, and the training augmentation `--augment`). */
function imageSpecOf(c: TaskConfig): ImageTransformSpec {
  const m = c.model as VitConfig;
  const augment = !c.augment || c.augment === "auto" ? (m.chans === 3 ? "deit" : "flip") : c.augment;
  if (!IMAGE_AUGMENTS.includes(augment as ImageAugment)) {
    throw new Error(`--augment: expected auto, ${IMAGE_AUGMENTS.join(", ")}, got '${c.augment}'`);
  }
  return {
    imgSize: m.img,
    chans: m.chans as 1 | 3,
    cropPct: c.cropPct,
    mean: channelValues("mean", c.mean, m.chans),
    std: channelValues("std", c.std, m.chans),
    augment: augment as ImageAugment,
  };
}

/**
 * How an image run turns one image file into model input at evaluation (for predict): the pipeline's
 * eval transform, or on the Fashion-MNIST IDX path its own normalization without resizing.
 */
export async function imageEvalSpec(c: TaskConfig): Promise<ImageTransformSpec> {
  if (await fashionMnistPath(c)) {
    return { imgSize: 28, chans: 1, cropPct: 1, mean: [FASHION_MNIST_MEAN], std: [FASHION_MNIST_STD] };
  }
  return { ...imageSpecOf(c), augment: "none" };
}

/** Class names of an image run's data (Fashion-MNIST's for IDX). */
export async function imageClassNames(c: TaskConfig): Promise<string[]> {
  if (await fashionMnistPath(c)) return [...CLASSES];
  return (await openImageDataset(c.data, "val").catch(() => openImageDataset(c.data, "train"))).classes;
}

/**
 * ViT(-LLM) on images: Fashion-MNIST IDX as before (28×28×1 models), or any format data/image reads
 * (ImageFolder, CIFAR-10/100, IDX at another size or channel count) through the worker pipeline with
 * timm's eval transform and DeiT's train transform (`--augment`).
 */
export const imageTask: Task = {
  name: "image",
  unit: "img",
  presets: VIT_PRESETS,
  describe: (c) => `ViT ${c.modelName} on ${isIdxDir(c.data) ? "Fashion-MNIST" : c.data}`,
  classes: (c) => (c.model as VitConfig).classes,
  async samples(c, split, limit) {
    if (!(await fashionMnistPath(c))) return await pipelineSamples(c, split, limit);
    const d = await loadFashionMnist(c.data, split);
    const m = c.model as VitConfig;
    if (m.classes !== 10) {
      throw new Error(
        `data: Fashion-MNIST has 10 classes, model '${c.modelName}' has ${m.classes} (--model)`,
      );
    }
    const s = imageSamples(firstSamples(d, limit));
    // --augment none: the batcher's random stream is not drawn from
    return c.augment === "none" ? { ...s, write: (i, out, o) => s.write(i, out, o) } : s;
  },
  async build(g, c, batch, training, llm) {
    const m = await buildVit(g, c.model as VitConfig, batch, {
      llm: llm && { ...llm, arm: c.arm, position: c.llmPosition },
      seed: c.seed,
      dropPath: training ? c.dropPath : undefined,
    });
    return {
      input: m.images,
      logits: m.logits,
      buffers: [],
      effects: [],
      dropoutSeed: m.dropPathSeed,
      llm: m.llm,
    };
  },
  // --recipe deit: timm's cosine in epochs (DeiT steps its scheduler per epoch), --warmup in epochs from
  // --warmup-lr, down to --min-lr; otherwise --warmup-lr / --min-lr give timm's cosine per step
  lrSchedule: (c, s) => {
    const deit = c.recipe === "deit";
    if (!deit && !c.warmupLr && !c.minLr) return undefined;
    const r = {
      lr: s.lr,
      epochs: deit ? s.total / s.perEpoch : s.total,
      stepsPerEpoch: deit ? s.perEpoch : 1,
      warmup: s.warmup,
      warmupLr: c.warmupLr ?? 0,
      minLr: c.minLr ?? 0,
    };
    return (step) => lrAtStep(step, r);
  },
  noDecay: vitNoDecay,
  paramGroup: (c) => llmAndLayerDecayGroups(c, (c.model as VitConfig).depth),
  // timm/DeiT weights for another image or patch grid: pos_embed resampled as timm does
  initFrom: (file, exe, params) => initFromSafetensors(file, exe, params, adaptVitInit),
  loss: (logits, labels, c) => crossEntropy(logits, labels, { labelSmoothing: c.labelSmoothing }),
};

/**
 * Point-BERT(-LLM) on point clouds: ScanObjectNN / ModelNet40 files (data/point_files.ts, resampled
 * as the reference does, with test-time voting), or clouds sampled from Fashion-MNIST images.
 * `--recipe pointbert`: the reference's AdamW groups and no-decay rule; `--init` also takes
 * Point-BERT .pth checkpoints.
 */
export const pointsTask: Task = {
  name: "points",
  unit: "cloud",
  presets: POINT_PRESETS,
  describe: (c) =>
    `Point-BERT ${c.modelName} on ${hasPointFiles(c.data) ? c.data : "Fashion-MNIST point clouds"}`,
  classes: (c) => (c.model as PointBertConfig).classes,
  async samples(c, split, limit) {
    const m = c.model as PointBertConfig;
    const files = await detectPointFiles(c.data);
    if (files) {
      if (m.classes !== files.classes) {
        throw new Error(
          `data: ${files.what} has ${files.classes} classes, the model has ${m.classes} (--classes)`,
        );
      }
      let set = await loadPointFiles(files, split, poolPoints(m.points));
      if (limit > 0 && limit < set.n) {
        set = {
          ...set,
          n: limit,
          clouds: set.clouds.subarray(0, limit * set.P * 3),
          labels: set.labels.subarray(0, limit),
        };
      }
      return resampledPointSamples(set, {
        points: m.points,
        train: split === "train",
        votes: split === "test" ? c.vote : 1,
        seed: c.seed,
      });
    }
    if (m.classes !== 10) {
      throw new Error(
        `data: Fashion-MNIST point clouds have 10 classes, the model has ${m.classes} (--model)`,
      );
    }
    const d = firstSamples(await loadFashionMnist(c.data, split), limit);
    return pointSamples(fashionPointSource(d, m.points, split === "train" ? c.seed : TEST_POINTS_SEED));
  },
  async build(g, c, batch, training, llm) {
    const m = await buildPointBert(g, c.model as PointBertConfig, batch, {
      training,
      dropout: training ? c.dropout : undefined,
      dropPath: training ? c.dropPath : undefined,
      llm: llm && { ...llm, arm: c.arm },
      seed: c.seed,
    });
    return {
      input: m.points,
      logits: m.logits,
      buffers: m.buffers,
      effects: training ? m.bnUpdates : [],
      dropoutSeed: m.dropoutSeed,
      llm: m.llm,
    };
  },
  noDecay: pointNoDecay,
  noDecayOf: (c) => c.recipe === "pointbert" ? pointBertRecipeNoDecay : undefined,
  paramGroup: (c) => {
    // the finetune arm's LLM lr scale (--llm-lr-scale) applies to the LLM's params under either rule
    const llmGroup = llmParamGroup(c.arm, c.llmLrScale);
    if (c.recipe !== "pointbert") return llmGroup;
    return (p) => llmGroup && isLlmParam(p) ? llmGroup(p) : pointBertGroup(p);
  },
  lrSchedule: (c, s) =>
    c.recipe === "pointbert" ? pointBertLr(s.lr, s.total / s.perEpoch, s.warmup, s.perEpoch) : undefined,
  loss: (logits, labels, c) =>
    crossEntropy(logits, labels, { labelSmoothing: c.labelSmoothing, smoothing: "others" }),
  initFrom: (file, exe, params) =>
    /\.(pth|pt|bin)$/.test(file)
      ? initFromPointBert(file, exe, params)
      : initFromSafetensors(file, exe, params),
};

/** `f()`, its error prefixed with the flag it came from. */
function flagged<T>(flag: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new Error(`--${flag}: ${(e as Error).message}`);
  }
}

/** The data a video run reads, for messages. */
function videoData(c: TaskConfig): string {
  const kind = videoDataKind(c.data);
  return kind === "moving-fmnist" ? "moving Fashion-MNIST" : kind === "ssv2" ? "SSv2" : `${c.data}`;
}

/**
 * A video ViT(-LLM) (VideoMAE's fine-tuning model, the paper's ViT-LLaMA for video) on moving
 * Fashion-MNIST clips generated from the Fashion-MNIST directory, or on a VideoMAE list / SSv2
 * labels directory of videos (data/video/dataset.ts). VideoMAE's recipe: no weight decay on 1-D
 * params and biases, layer-wise lr decay, drop path, multi-clip × multi-crop testing; `--init` takes
 * VideoMAE .pth checkpoints.
 */
export const videoTask: Task = {
  name: "video",
  unit: "clip",
  presets: VIDEO_PRESETS,
  describe: (c) => `video ViT ${c.modelName} on ${videoData(c)}`,
  classes: (c) => (c.model as VideoConfig).classes,
  samples(c, split, limit) {
    const m = c.model as VideoConfig;
    if (m.chans !== 1 && m.chans !== 3) {
      throw new Error(`--chans: video clips have 1 or 3 channels, got ${m.chans}`);
    }
    return videoSplit(c.data, split, limit, {
      frames: m.frames,
      size: m.img,
      chans: m.chans,
      classes: m.classes,
      sampling: c.sampling ?? "segment",
      stride: c.stride,
      seed: c.seed,
      root: c.videoRoot || undefined,
      testClips: c.testClips,
      testCrops: c.testCrops,
      randAugment: c.aa && c.aa !== "none" ? flagged("aa", () => parseRandAugment(c.aa!)) : undefined,
    });
  },
  async build(g, c, batch, training, llm) {
    const m = await buildVideoVit(g, c.model as VideoConfig, batch, {
      llm: llm && { ...llm, arm: c.arm },
      seed: c.seed,
      training,
      reg: { dropPath: c.dropPath ?? 0 },
    });
    return {
      input: m.clips,
      logits: m.logits,
      buffers: [],
      effects: [],
      dropoutSeed: m.dropoutSeed,
      llm: m.llm,
    };
  },
  noDecay: videoNoDecay,
  loss: (logits, labels, c) => crossEntropy(logits, labels, { labelSmoothing: c.labelSmoothing }),
  paramGroup: (c) => llmAndLayerDecayGroups(c, (c.model as VideoConfig).depth),
  initFrom: (file, exe, params) =>
    /\.(pth|pt|bin)$/.test(file)
      ? initFromVideoMae(file, exe, params)
      : initFromSafetensors(file, exe, params),
};

/**
 * AdamW groups of a transformer task: the finetune arm's LLM lr scale (--llm-lr-scale) for the LLM's params,
 * layer-wise lr decay (--layer-decay, timm/BEiT layer ids of `blocks.i.*` names) for the rest.
 */
function llmAndLayerDecayGroups(c: TaskConfig, depth: number): ((p: Node) => ParamGroup) | undefined {
  const llmGroup = llmParamGroup(c.arm, c.llmLrScale);
  if (c.layerDecay === undefined || c.layerDecay === 1) return llmGroup;
  const decay = layerDecayGroups(depth, c.layerDecay);
  return (p) => llmGroup && isLlmParam(p) ? llmGroup(p) : decay(p);
}

/** Every task by name. */
export const TASKS: Readonly<Record<TaskName, Task>> = {
  image: imageTask,
  points: pointsTask,
  video: videoTask,
};
