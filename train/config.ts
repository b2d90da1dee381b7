// The shape of a training run's settings, shared by the runner, the flag table and evaluation (types
// only, so that neither imports the other).

import type {
  ImageSettings,
  MixSettings,
  ModelConfig,
  PointSettings,
  TaskName,
  VideoSettings,
} from "./tasks.ts";
import type { LlmArm, LlmPosition } from "../models/arms.ts";

/** Every hyper-parameter of a run: what state.json stores, and what a resumed run continues with. */
export interface RunConfig extends VideoSettings, PointSettings, ImageSettings, MixSettings {
  /** The kind of run (train/tasks.ts). */
  task: TaskName;
  /** The model's shape. */
  model: ModelConfig;
  /** The preset it came from (models/presets.ts), or "custom". */
  modelName: string;
  /** Frozen LLM: "none", "random" (the default LLM's shape, random weights), "default", or a checkpoint dir. */
  llm: string;
  /** LLM layer selection: 31 | 30,31 | last | last:2 | all. */
  llmLayers: string;
  /** Ablation arm (models/arms.ts; absent: "frozen", or nothing with llm "none"). */
  arm?: LlmArm;
  /** Where the LLM layers sit in a ViT (absent: "tail"). */
  llmPosition?: LlmPosition;
  /** The finetune arm's LLM learning rate as a multiple of lr (absent: 1). */
  llmLrScale?: number;
  /** Epochs (the schedule's length unless `steps` is set). */
  epochs: number;
  /** Steps the schedule spans (0: all epochs). */
  steps: number;
  /** Training batch size. */
  batch: number;
  /** Peak learning rate of the cosine schedule. */
  lr: number;
  /** Learning-rate warmup steps (linear). */
  warmup: number;
  /** AdamW weight decay. */
  weightDecay: number;
  /** Cross-entropy label smoothing. */
  labelSmoothing: number;
  /** Head dropout probability (tasks whose model has one). */
  dropout: number;
  /** Global gradient-norm clip (0: off). */
  clip: number;
  /** Seed of the init, data order, augmentation and dropout. */
  seed: number;
  /** Dataset directory. */
  data: string;
  /** Train on the first N samples (0: all). */
  trainLimit: number;
  /** Evaluate on the first N test samples (0: all). */
  evalLimit: number;
  /** Evaluation batch size. */
  evalBatch: number;
  /** Initial weights: a safetensors file with the model's parameter names (timm names for the ViT). */
  init?: string;
}

/** A run: its configuration, where it writes, and how it reports. */
export interface RunOptions extends RunConfig {
  /** Output directory: metrics.jsonl, chart.svg, checkpoint/. */
  out: string;
  /** A run directory (or its checkpoint/) to continue exactly where it stopped. */
  resume?: string;
  /** Stop (and checkpoint) after this step without changing the schedule (to test resuming). */
  stopAfter?: number;
  /** Read the loss back every N steps. */
  logEvery: number;
  /** GPU memory budget in bytes for frozen LLM weights (0 or absent: unlimited). */
  gpuMemory?: number;
  /** Receives the run's human-readable lines (model summary, init, resume, evaluations); none when absent. */
  log?: (line: string) => void;
  /** Draw a progress bar on stderr. */
  progress?: boolean;
}

/** What a run did. */
export interface RunSummary {
  /** Top-1 accuracy on the (limited) test split at the end. */
  testAccuracy: number;
  /** The EMA model's top-1 accuracy at the end (--model-ema-decay > 0). */
  emaTestAccuracy?: number;
  /** Training time of this invocation in seconds. */
  seconds: number;
  /** The step the run ended at. */
  steps: number;
  /** The GPU adapter. */
  adapter: string;
  /** The frozen LLM, described. */
  llm: string;
  /** The losses read back by this invocation. */
  losses: { step: number; loss: number }[];
  /** The checkpoint directory written, or undefined when no step ran (nothing to save). */
  checkpoint?: string;
}
