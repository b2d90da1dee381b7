// The one flag table of the training and evaluation commands: every flag's meaning, default and valid
// range in one place, shared by both tasks. A flag means the same in every command; where a task's
// recipe needs another default, the table says so (and --help shows it). The runner checks its
// options against the same table, so a bad value is refused up front with the flag's name, whether it
// came from a command line or from code.

import { DEFAULT_DATA_DIR } from "../data/fashion_mnist.ts";
import { parseBytes } from "./cli.ts";
import type { RunConfig, RunOptions } from "./config.ts";
import type { TaskName } from "./tasks.ts";

/** A bad option or flag value; the message names the flag. */
export class FlagError extends Error {
  /** "FlagError". */
  override name = "FlagError";
}

/** How a flag's value is read and checked. */
export type FlagKind = "int" | "number" | "string" | "bytes";

/** One training flag. */
export interface TrainFlag {
  /** The flag, without the leading dashes. */
  flag: string;
  /** The RunOptions key it sets (a key of the model config for model-shape flags). */
  key: string;
  /** How its value is parsed and checked. */
  kind: FlagKind;
  /** Smallest valid value (numbers). */
  min?: number;
  /** Values must be below this (numbers; e.g. probabilities < 1). */
  below?: number;
  /** Values must be at most this (numbers). */
  max?: number;
  /** The values a string flag may take. */
  choices?: readonly string[];
  /** Default (as typed on a command line); undefined: none (the preset's value, or unset). */
  default?: string;
  /** A task's recipe default where it differs, with the reason --help shows. */
  taskDefault?: Partial<Record<TaskName, [string, string]>>;
  /** A recipe's default (`--recipe NAME`), where it differs from the task's. */
  recipeDefault?: Record<string, string>;
  /** Only these tasks take the flag (default: all). */
  tasks?: readonly TaskName[];
  /**
   * How it relates to resuming: "hyper" (stored; a resumed run keeps it and refuses another value),
   * "stored" (stored; a resumed run uses it unless the flag is given), "run" (this invocation only).
   */
  resume: "hyper" | "stored" | "run";
  /** May be absent from options made in code (the default applies). */
  optional?: boolean;
  /** A field of the model's config (a model-shape flag) rather than a RunOptions key. */
  shape?: boolean;
  /** One line of --help. */
  help: string;
}

/**
 * Model-shape flags of Point-BERT and the video ViT: each overrides one field of the preset's config
 * (PointBertConfig, VideoConfig): [flag, key, help, tasks].
 */
const SHAPE: [string, string, string, TaskName[]][] = [
  ["points", "points", "points per cloud", ["points"]],
  ["groups", "groups", "FPS groups (tokens)", ["points"]],
  ["group-size", "groupSize", "kNN points per group", ["points"]],
  ["encoder-dim", "encoderDim", "mini-PointNet output dim", ["points"]],
  ["frames", "frames", "frames per clip", ["video"]],
  ["tubelet", "tubelet", "frames per tubelet (the patch embedding's temporal kernel)", ["video"]],
  ["img", "img", "image (frame) side in pixels", ["image", "video"]],
  ["patch", "patch", "patch side in pixels", ["image", "video"]],
  ["chans", "chans", "channels per image or frame (1 or 3)", ["image", "video"]],
  ["classes", "classes", "classes", ["image", "video", "points"]],
  ["dim", "dim", "transformer dim", ["image", "points", "video"]],
  ["depth", "depth", "transformer blocks", ["image", "points", "video"]],
  ["heads", "heads", "attention heads", ["image", "points", "video"]],
];

/** Every training flag. */
export const TRAIN_FLAGS: readonly TrainFlag[] = [
  {
    flag: "model",
    key: "modelName",
    kind: "string",
    taskDefault: { image: ["fmnist", ""], points: ["fmnist-points", ""], video: ["mfmnist", ""] },
    resume: "hyper",
    help: "model preset (models/presets.ts)",
  },
  ...SHAPE.map(([flag, key, help, tasks]): TrainFlag => ({
    flag,
    key,
    kind: "int",
    min: 1,
    tasks,
    resume: "hyper",
    shape: true,
    help: `${help} (default: the preset's)`,
  })),
  {
    flag: "init-values",
    key: "initValues",
    kind: "number",
    min: 0,
    tasks: ["video"],
    resume: "hyper",
    shape: true,
    help: "layer scale init (VideoMAE init_values; 0: no gamma_1/gamma_2; default: the preset's)",
  },
  {
    flag: "llm",
    key: "llm",
    kind: "string",
    default: "default",
    resume: "hyper",
    help: "frozen LLM: none | default (bundled lm-default, pretrained on English text) | " +
      "random (bundled llama-tiny, random weights) | CHECKPOINT_DIR",
  },
  {
    flag: "llm-layers",
    key: "llmLayers",
    kind: "string",
    default: "last",
    taskDefault: { video: ["middle", "the reference's choice (LLaMA-7B: 15; llama-tiny: 1)"] },
    resume: "hyper",
    help: "LLM layers: 31 | 30,31 | last | last:2 | middle | all",
  },
  {
    flag: "arm",
    key: "arm",
    kind: "string",
    choices: ["none", "frozen", "mlp", "random-frozen", "random-trained", "finetune"],
    default: "frozen",
    optional: true,
    resume: "hyper",
    help:
      "ablation arm (models/arms.ts): none | frozen (the method) | mlp (a trainable MLP block instead) | " +
      "random-frozen | random-trained (the --llm's shape, random weights) | finetune (the layers trained)",
  },
  {
    flag: "llm-position",
    key: "llmPosition",
    kind: "string",
    choices: ["tail", "middle", "head"],
    default: "tail",
    optional: true,
    tasks: ["image"],
    resume: "hyper",
    help: "where the LLM layers sit: tail (after the last block) | middle (after block depth/2) | " +
      "head (after the patch embedding)",
  },
  {
    flag: "llm-lr-scale",
    key: "llmLrScale",
    kind: "number",
    min: 0,
    default: "1",
    optional: true,
    resume: "hyper",
    help: "--arm finetune: the LLM layers' learning rate as a multiple of --lr",
  },
  {
    flag: "epochs",
    key: "epochs",
    kind: "int",
    min: 1,
    default: "1",
    recipeDefault: { pointbert: "300" },
    resume: "hyper",
    help: "epochs",
  },
  {
    flag: "steps",
    key: "steps",
    kind: "int",
    min: 0,
    default: "0",
    taskDefault: { points: ["60", "keeps a software-GPU run short"] },
    recipeDefault: { pointbert: "0" },
    resume: "hyper",
    help: "steps the schedule spans (0: all epochs)",
  },
  {
    flag: "batch",
    key: "batch",
    kind: "int",
    min: 1,
    default: "64",
    taskDefault: { points: ["16", "keeps a software-GPU run short"] },
    recipeDefault: { pointbert: "32" },
    resume: "hyper",
    help: "training batch size",
  },
  {
    flag: "lr",
    key: "lr",
    kind: "number",
    min: Number.MIN_VALUE,
    default: "1e-3",
    recipeDefault: { pointbert: "5e-4" },
    resume: "hyper",
    help: "peak learning rate (cosine schedule)",
  },
  {
    flag: "lr-base",
    key: "lrBase",
    kind: "number",
    min: 0,
    default: "0",
    recipeDefault: { deit: "5e-4" },
    optional: true,
    tasks: ["image"],
    resume: "hyper",
    help: "DeiT's linear scaling: > 0 sets the peak lr to lr-base × batch / 512 in place of --lr " +
      "(0: off; --recipe deit: 5e-4)",
  },
  {
    flag: "warmup-lr",
    key: "warmupLr",
    kind: "number",
    min: 0,
    default: "0",
    recipeDefault: { deit: "1e-6" },
    optional: true,
    tasks: ["image"],
    resume: "hyper",
    help: "the lr the warmup starts from (timm warmup_lr; --recipe deit: 1e-6); > 0, or --min-lr > 0, " +
      "gives timm's cosine per step in place of the runner's (--recipe deit: per epoch)",
  },
  {
    flag: "min-lr",
    key: "minLr",
    kind: "number",
    min: 0,
    default: "0",
    recipeDefault: { deit: "1e-5" },
    optional: true,
    tasks: ["image"],
    resume: "hyper",
    help: "the floor of the cosine (timm min_lr; --recipe deit: 1e-5)",
  },
  {
    flag: "warmup",
    key: "warmup",
    kind: "int",
    min: 0,
    default: "20",
    recipeDefault: { pointbert: "10", deit: "5" },
    resume: "hyper",
    help: "learning-rate warmup steps (linear; --recipe pointbert / deit: epochs, their timm schedule)",
  },
  {
    flag: "weight-decay",
    key: "weightDecay",
    kind: "number",
    min: 0,
    default: "0.05",
    resume: "hyper",
    help: "AdamW weight decay",
  },
  {
    flag: "label-smoothing",
    key: "labelSmoothing",
    kind: "number",
    min: 0,
    below: 1,
    default: "0.1",
    taskDefault: { points: ["0.2", "Point-BERT's recipe"] },
    resume: "hyper",
    help: "label smoothing",
  },
  {
    flag: "model-ema-decay",
    key: "modelEmaDecay",
    kind: "number",
    min: 0,
    below: 1,
    default: "0",
    recipeDefault: { deit: "0.99996" },
    optional: true,
    tasks: ["image"],
    resume: "hyper",
    help: "model EMA (timm ModelEmaV2): ema ← decay·ema + (1 − decay)·weights after every step, saved with " +
      "checkpoints and evaluated too (0: off; --recipe deit: 0.99996)",
  },
  {
    flag: "mixup",
    key: "mixup",
    kind: "number",
    min: 0,
    default: "0",
    recipeDefault: { deit: "0.8" },
    optional: true,
    tasks: ["image", "video"],
    resume: "hyper",
    help: "Mixup alpha (timm Mixup: λ ~ Beta(α, α) per batch, sample i with B−1−i; 0: off); with --cutmix " +
      "the loss is soft-target cross-entropy on mixed targets, --label-smoothing folded in; clips mix as " +
      "[B, C·T, H, W]",
  },
  {
    flag: "cutmix",
    key: "cutmix",
    kind: "number",
    min: 0,
    default: "0",
    recipeDefault: { deit: "1.0" },
    optional: true,
    tasks: ["image", "video"],
    resume: "hyper",
    help: "CutMix alpha (timm: a box of side ratio sqrt(1 − λ), λ corrected to its area; 0: off)",
  },
  {
    flag: "mixup-prob",
    key: "mixupProb",
    kind: "number",
    min: 0,
    max: 1,
    default: "1",
    optional: true,
    tasks: ["image", "video"],
    resume: "hyper",
    help: "probability that a batch is mixed (timm mixup_prob)",
  },
  {
    flag: "mixup-switch-prob",
    key: "mixupSwitchProb",
    kind: "number",
    min: 0,
    max: 1,
    default: "0.5",
    optional: true,
    tasks: ["image", "video"],
    resume: "hyper",
    help: "probability of CutMix instead of Mixup when both are on (timm mixup_switch_prob)",
  },
  {
    flag: "clip",
    key: "clip",
    kind: "number",
    min: 0,
    default: "1",
    taskDefault: { points: ["10", "Point-BERT's recipe"] },
    resume: "hyper",
    help: "global gradient-norm clip (0: off)",
  },
  {
    flag: "dropout",
    key: "dropout",
    kind: "number",
    min: 0,
    below: 1,
    default: "0.5",
    tasks: ["points"],
    resume: "hyper",
    help: "head dropout probability",
  },
  {
    flag: "drop-path",
    key: "dropPath",
    kind: "number",
    min: 0,
    below: 1,
    default: "0.1",
    tasks: ["video"],
    resume: "hyper",
    help: "stochastic depth rate of the last block (VideoMAE drop_path)",
  },
  {
    // the points and image tasks' entry: its default is 0, and options made in code may leave it out
    flag: "drop-path",
    key: "dropPath",
    kind: "number",
    min: 0,
    below: 1,
    default: "0",
    recipeDefault: { pointbert: "0.1", deit: "0.1" },
    optional: true,
    tasks: ["points", "image"],
    resume: "hyper",
    help:
      "stochastic depth rate of the last block (timm / Point-BERT drop_path_rate, block i: rate·i/(depth − 1); " +
      "--recipe pointbert / deit: 0.1)",
  },
  {
    flag: "recipe",
    key: "recipe",
    kind: "string",
    choices: ["none", "pointbert", "deit"],
    default: "none",
    optional: true,
    tasks: ["points", "image"],
    resume: "hyper",
    help:
      "pointbert (points): the paper's reference (Point-BERT) recipe: AdamW groups (mappers 0.5×lr; 1-D, " +
      "bias, token 0.1×lr; both without decay), timm's epoch cosine, and unless given --lr 5e-4 --batch 32 " +
      "--epochs 300 --steps 0 --warmup 10 (epochs) --drop-path 0.1 --vote 10 --eval-limit 0; deit (image): " +
      "timm's epoch cosine, and unless given --lr-base 5e-4 (lr = lr-base × batch / 512) --warmup 5 " +
      "(epochs) --warmup-lr 1e-6 --min-lr 1e-5 --drop-path 0.1 --mixup 0.8 --cutmix 1.0 --augment deit " +
      "--model-ema-decay 0.99996 " +
      "(weight decay 0.05 and label smoothing 0.1 are the defaults)",
  },
  {
    flag: "vote",
    key: "vote",
    kind: "int",
    min: 1,
    default: "1",
    recipeDefault: { pointbert: "10" },
    optional: true,
    tasks: ["points"],
    resume: "stored",
    help: "test-time votes per cloud: random resamplings + scale-and-translate, logits averaged (files only)",
  },
  {
    flag: "layer-decay",
    key: "layerDecay",
    optional: true,
    kind: "number",
    min: Number.MIN_VALUE,
    max: 1,
    default: "1",
    tasks: ["image", "video"],
    resume: "hyper",
    help:
      "layer-wise lr decay for fine-tuning: block i's lr × decay^(depth − i) (1: off; DeiT/BEiT fine-tuning " +
      "0.65–0.75; VideoMAE's SSv2 ViT-S: 0.7)",
  },
  {
    flag: "sampling",
    key: "sampling",
    kind: "string",
    choices: ["segment", "dense"],
    default: "segment",
    tasks: ["video"],
    resume: "hyper",
    help: "frames of a clip from a video: segment (SSv2) | dense (Kinetics, every --stride frames)",
  },
  {
    flag: "aa",
    key: "aa",
    kind: "string",
    default: "none",
    tasks: ["video"],
    resume: "hyper",
    help:
      "RandAugment of listed videos, one draw per clip (timm string; VideoMAE's SSv2: rand-m7-n4-mstd0.5-inc1)",
  },
  {
    flag: "stride",
    key: "stride",
    kind: "int",
    min: 1,
    default: "4",
    tasks: ["video"],
    resume: "hyper",
    help: "frame stride of dense sampling (VideoMAE sampling_rate)",
  },
  {
    flag: "seed",
    key: "seed",
    kind: "int",
    min: 0,
    default: "0",
    resume: "hyper",
    help: "seed (init, data order, augmentation, dropout)",
  },
  {
    flag: "train-limit",
    key: "trainLimit",
    kind: "int",
    min: 0,
    default: "0",
    resume: "hyper",
    help: "train on the first N samples (0: all)",
  },
  {
    flag: "data",
    key: "data",
    kind: "string",
    default: DEFAULT_DATA_DIR,
    resume: "stored",
    help: "Fashion-MNIST directory of IDX files (Debian: /usr/share/datasets/fashion-mnist); image: also " +
      "an ImageFolder (train/<class>/*, val/<class>/*) or CIFAR-10/100 (folder or .tar.gz); video: it " +
      "makes moving Fashion-MNIST, or a VideoMAE list dir (train.csv, val.csv) or SSv2 labels dir; points: " +
      "also ScanObjectNN (a dir or its training_objectdataset*.h5) or ModelNet40 (h5 or txt release dir)",
  },
  {
    flag: "crop-pct",
    key: "cropPct",
    kind: "number",
    min: Number.MIN_VALUE,
    max: 1,
    optional: true,
    tasks: ["image"],
    resume: "hyper",
    help: "eval resize: shorter side to int(img / crop-pct), then center crop (default 0.875; " +
      "Fashion-MNIST IDX with a 28×28×1 model: no resize)",
  },
  {
    flag: "mean",
    key: "mean",
    kind: "string",
    tasks: ["image"],
    resume: "hyper",
    help: "per-channel mean, a,b,c (default ImageNet's; Fashion-MNIST's on its 28×28×1 IDX path)",
  },
  {
    flag: "std",
    key: "std",
    kind: "string",
    tasks: ["image"],
    resume: "hyper",
    help: "per-channel std, a,b,c (default ImageNet's; Fashion-MNIST's on its 28×28×1 IDX path)",
  },
  {
    flag: "augment",
    key: "augment",
    kind: "string",
    choices: ["auto", "deit", "flip", "none"],
    recipeDefault: { deit: "deit" },
    optional: true,
    tasks: ["image"],
    resume: "hyper",
    help:
      "training augmentation: auto (deit for 3 channels, flip for 1; Fashion-MNIST IDX: pad-crop + flip) " +
      "| deit (RandomResizedCrop, flip, RandAugment, erasing) | flip (eval transform + flip) | none",
  },
  {
    flag: "workers",
    key: "workers",
    kind: "int",
    min: 0,
    default: "0",
    tasks: ["image"],
    resume: "run",
    help: "image decoding threads (0: one per core)",
  },
  {
    flag: "video-root",
    key: "videoRoot",
    kind: "string",
    default: "",
    tasks: ["video"],
    resume: "stored",
    help:
      "where the listed videos are (list paths are relative to it; SSv2: <root>/<id>.webm; default: --data)",
  },
  {
    flag: "test-clips",
    key: "testClips",
    kind: "int",
    min: 1,
    default: "1",
    tasks: ["video"],
    resume: "stored",
    help: "test-time clips per video, scores averaged (VideoMAE's SSv2: 2)",
  },
  {
    flag: "test-crops",
    key: "testCrops",
    kind: "int",
    min: 1,
    default: "1",
    tasks: ["video"],
    resume: "stored",
    help: "test-time crops per clip, scores averaged (VideoMAE's SSv2: 3)",
  },
  {
    flag: "eval-limit",
    key: "evalLimit",
    kind: "int",
    min: 0,
    default: "0",
    taskDefault: { points: ["200", "keeps a software-GPU run short"] },
    recipeDefault: { pointbert: "0" },
    resume: "stored",
    help: "evaluate on the first N test samples (0: all)",
  },
  {
    flag: "eval-batch",
    key: "evalBatch",
    kind: "int",
    min: 1,
    default: "200",
    resume: "stored",
    help: "evaluation batch size",
  },
  {
    flag: "init",
    key: "init",
    kind: "string",
    default: "",
    resume: "run",
    help: "initial weights: a safetensors file with the model's names (timm names for the ViT; a run's " +
      "model.safetensors); video: also a VideoMAE .pth; points: also a Point-BERT .pth (Point-BERT.pth)",
  },
  {
    flag: "out",
    key: "out",
    kind: "string",
    resume: "run",
    help: "output directory (default: out/vit | out/points | out/video; with --resume: the resumed run's)",
  },
  {
    flag: "resume",
    key: "resume",
    kind: "string",
    default: "",
    resume: "run",
    help: "continue a run: its directory (or its checkpoint/); its settings are reused",
  },
  {
    flag: "log-every",
    key: "logEvery",
    kind: "int",
    min: 1,
    default: "10",
    resume: "run",
    help: "read the loss back every N steps",
  },
  {
    flag: "gpu-memory",
    key: "gpuMemory",
    kind: "bytes",
    default: "0",
    resume: "run",
    help: "GPU memory budget for frozen LLM weights, e.g. 600MB, 1.5GiB (0: unlimited)",
  },
];

/** The flags a task takes. */
export function flagsOf(task: TaskName): TrainFlag[] {
  return TRAIN_FLAGS.filter((f) => !f.tasks || f.tasks.includes(task));
}

/** A flag's default for a task and recipe (undefined: none). */
export function defaultOf(f: TrainFlag, task: TaskName, recipe?: string): string | undefined {
  return (recipe ? f.recipeDefault?.[recipe] : undefined) ?? f.taskDefault?.[task]?.[0] ?? f.default;
}

/** What a numeric flag expects, for messages: "an integer ≥ 1", "a number in [0, 1)". */
function expectation(f: TrainFlag): string {
  const what = f.kind === "int"
    ? "an integer"
    : f.kind === "bytes"
    ? "a size such as 600MB or 1.5GiB"
    : "a number";
  if (f.kind === "bytes") return what;
  if (f.min !== undefined && f.below !== undefined) return `${what} in [${f.min}, ${f.below})`;
  if (f.min === Number.MIN_VALUE && f.max !== undefined) return `${what} in (0, ${f.max}]`;
  if (f.min === Number.MIN_VALUE) return `${what} > 0`;
  if (f.min !== undefined && f.max !== undefined) return `${what} in [${f.min}, ${f.max}]`;
  if (f.min !== undefined) return `${what} ≥ ${f.min}`;
  return what;
}

/** Checks a value against a numeric flag's kind and range; returns the error message, or undefined. */
function badValue(f: TrainFlag, v: unknown): string | undefined {
  if (f.kind === "string") {
    if (typeof v !== "string") return `--${f.flag}: expected a string, got ${v}`;
    return !f.choices || f.choices.includes(v)
      ? undefined
      : `--${f.flag}: expected one of ${f.choices.join(", ")}, got '${v}'`;
  }
  const ok = typeof v === "number" && Number.isFinite(v) && (f.kind !== "int" || Number.isInteger(v)) &&
    (f.min === undefined || v >= f.min) && (f.below === undefined || v < f.below) &&
    (f.max === undefined || v <= f.max) &&
    (f.kind !== "bytes" || v >= 0);
  return ok
    ? undefined
    : `--${f.flag}: expected ${expectation(f)}, got ${typeof v === "string" ? `'${v}'` : v}`;
}

/** Parses one flag's command-line text; throws an Error naming the flag when it is not valid. */
export function parseFlagValue(f: TrainFlag, text: string): string | number {
  if (f.kind === "string") {
    const err = badValue(f, text);
    if (err) throw new FlagError(err);
    return text;
  }
  const v = f.kind === "bytes" ? parseBytes(text) : text.trim() === "" ? NaN : Number(text);
  const err = badValue(f, v ?? text);
  if (err) throw new FlagError(err.replace(/got .*$/, `got '${text}'`));
  return v!;
}

/** A model-shape flag's value in a config, or a RunOptions value. */
function valueOf(f: TrainFlag, o: RunConfig | RunOptions): unknown {
  if (f.shape) return (o.model as unknown as Record<string, unknown>)[f.key];
  return (o as unknown as Record<string, unknown>)[f.key];
}

/** valueOf, with an optional flag's default when absent (runs stored before the flag existed). */
function valueOrDefault(f: TrainFlag, o: RunConfig | RunOptions): unknown {
  const v = valueOf(f, o);
  return v === undefined && f.optional && f.default !== undefined ? parseFlagValue(f, f.default) : v;
}

/** Checks every option the table covers; throws an Error naming the first bad flag. */
export function checkRunOptions(o: RunOptions): void {
  for (const f of flagsOf(o.task)) {
    const v = valueOf(f, o);
    if (v === undefined && (f.resume === "run" || f.kind === "string" || f.optional)) continue;
    const err = badValue(f, v);
    if (err) throw new FlagError(err);
  }
  if (o.stopAfter !== undefined && !(Number.isInteger(o.stopAfter) && o.stopAfter >= 0)) {
    throw new FlagError(`stopAfter: expected an integer ≥ 0, got ${o.stopAfter}`);
  }
  const recipeTask = { pointbert: "points", deit: "image" }[o.recipe ?? ""];
  if (recipeTask && recipeTask !== o.task) {
    throw new FlagError(`--recipe ${o.recipe}: a recipe of the ${recipeTask} task, not of ${o.task}`);
  }
  if (((o.mixup ?? 0) > 0 || (o.cutmix ?? 0) > 0) && o.batch % 2 !== 0) {
    throw new FlagError(
      `--batch: Mixup/CutMix pair sample i with B−1−i, so the batch must be even, got ${o.batch}`,
    );
  }
  if (o.llm === "none" && o.arm !== undefined && o.arm !== "none" && o.arm !== "frozen") {
    throw new FlagError(`--arm ${o.arm}: the arm takes its shape from --llm; give one (not none)`);
  }
  if (!o.out) throw new FlagError("--out: an output directory is needed");
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The first hyper-parameter of `o` that differs from the stored configuration of the run being
 * resumed, as a message naming the flag; undefined when they agree.
 */
export function conflictingOption(o: RunConfig, stored: RunConfig): string | undefined {
  if (o.task !== stored.task) return `--resume: that run is a ${stored.task} run, not ${o.task}`;
  for (const f of flagsOf(o.task)) {
    if (f.resume !== "hyper") continue;
    const a = valueOrDefault(f, o), b = valueOrDefault(f, stored);
    if (!same(a, b)) return conflictMessage(f, a, b);
  }
  if (!same(o.model, stored.model)) {
    return `--model: the run was trained with ${JSON.stringify(stored.model)}, not ${
      JSON.stringify(o.model)
    }`;
  }
  return undefined;
}

function conflictMessage(f: TrainFlag, given: unknown, stored: unknown): string {
  return `--${f.flag}: the run being resumed was trained with ${JSON.stringify(stored)}, not ${
    JSON.stringify(given)
  }; a resumed run keeps its settings (leave --${f.flag} out)`;
}

/**
 * Options for resuming the run in `path` from the flags of a command line: every stored setting
 * (state.json's `run`) is reused; a flag given on the command line (`given`) that contradicts a stored
 * hyper-parameter is refused with an Error naming it; `--out` defaults to the resumed run's directory.
 */
export function resumedOptions(
  opts: RunOptions,
  given: ReadonlySet<string>,
  stored: RunConfig,
  runDir: string,
): RunOptions {
  if (stored.task !== opts.task) {
    throw new FlagError(
      `--resume: ${runDir} is a ${stored.task} run; continue it with the ${
        ({ image: "train", points: "train-points", video: "train-video" } as Record<string, string>)[
          stored.task
        ]
      } task`,
    );
  }
  if (given.has("init")) throw new FlagError("--init: a resumed run takes its weights from the checkpoint");
  const out: RunOptions = { ...opts, ...stored, init: undefined, out: given.has("out") ? opts.out : runDir };
  for (const f of flagsOf(opts.task)) {
    if (!given.has(f.flag) || f.resume === "run") continue;
    const a = valueOf(f, opts), b = valueOf(f, stored);
    if (f.resume === "hyper" && !same(a, b)) throw new FlagError(conflictMessage(f, a, b));
    if (f.resume === "stored") (out as unknown as Record<string, unknown>)[f.key] = a;
  }
  return out;
}
