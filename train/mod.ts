/**
 * Training: the Trainer (one compiled step: forward, pruned backward, AdamW), the learning-rate
 * schedule, the one runner (a task description — image, points or video — drives data, model, loop, metrics,
 * chart and checkpoints), checkpoint evaluation, and the command-line pieces the examples use.
 *
 * ```ts
 * import { models, train } from "./mod.ts";
 *
 * const summary = await train.runTraining({
 *   task: "image", model: models.VIT_PRESETS.fmnist, modelName: "fmnist", llm: "default", llmLayers: "last",
 *   epochs: 1, steps: 0, batch: 64, lr: 1e-3, warmup: 20, weightDecay: 0.05, labelSmoothing: 0.1,
 *   dropout: 0, clip: 1, seed: 0, data: "data/fashion-mnist-subset", trainLimit: 0, evalLimit: 0,
 *   evalBatch: 200, out: "out/vit", logEvery: 10, log: console.error,
 * });
 * ```
 *
 * @module
 */

export { cosineLr, Trainer, type TrainerOptions } from "./trainer.ts";
export { type RunConfig, type RunOptions, type RunSummary, runTraining } from "./run.ts";
export {
  type ImageSettings,
  imageTask,
  type MixSettings,
  type ModelConfig,
  type PointSettings,
  pointsTask,
  type Task,
  type TaskConfig,
  type TaskLlm,
  type TaskModel,
  type TaskName,
  TASKS,
  type VideoSettings,
  videoTask,
} from "./tasks.ts";
export { type EvalOptions, type EvalResult, evaluateCheckpoint } from "./evaluate.ts";
export { predictImages, type Prediction } from "./predict.ts";
export { type AnalysisResult, analysisSummary, analyzeCheckpoint, type AnalyzeOptions } from "./analyze.ts";
export {
  type AblationCell,
  ablationTable,
  cellOf,
  meanStd,
  paramCounts,
  readCell,
  writeCell,
} from "./ablation.ts";
export {
  ANALYSIS_STAGES,
  type AnalysisStage,
  type AttnParams,
  clsAttention,
  dftPhase,
  frequencyScores,
  iou,
  magnitudeScores,
  minMax,
  oracleIoU,
  THRESHOLDS,
  tokenForeground,
} from "./analysis.ts";
export { FlagError, type FlagKind, TRAIN_FLAGS, type TrainFlag } from "./flags.ts";
export { evalCommand, trainCommand, trainFlagSpec, trainOptionsFromFlags } from "./commands.ts";
export { bytes, type FlagSpec, num, parseBytes, parseFlags } from "./cli.ts";
export { Metrics, type MetricsRecord, Progress, readMetrics } from "./progress.ts";
export { lineChart, type Panel, type Series } from "./chart.ts";
export {
  type PretrainControls,
  type PretrainOptions,
  type PretrainSummary,
  runPretrain,
  tokenizedCorpus,
} from "./pretrain.ts";
export { PRETRAIN_FLAGS, pretrainCommand, pretrainOptionsFromFlags } from "./pretrain_cli.ts";
export { LmScorer, type Perplexity, unigramCounts, unigramPerplexity } from "./lm_score.ts";
export { lmEvalCommand } from "./lm_eval_cli.ts";
