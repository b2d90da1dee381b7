/**
 * Model builders: the ViT (timm semantics), the Point-BERT-style point-cloud classifier and the
 * VideoMAE-style video ViT, each optionally with frozen LLM layers inside (the paper's ViT-LLM /
 * PointBERT-LLM / video ViT-LLaMA), and the frozen LLM layers themselves — as an encoder stack or as
 * the published causal language model.
 *
 * @module
 */

export {
  adaptVitInit,
  buildVit,
  resamplePosEmbed,
  type VitConfig,
  type VitLlm,
  type VitModel,
  vitNoDecay,
  type VitTaps,
} from "./vit.ts";
export {
  type ArmOpts,
  type ArmStack,
  isLlmParam,
  LLM_ARMS,
  LLM_POSITIONS,
  type LlmArm,
  llmArm,
  llmParamGroup,
  type LlmPosition,
} from "./arms.ts";
export {
  buildPointBert,
  type PointBertConfig,
  pointBertGroup,
  pointBertLr,
  type PointBertModel,
  pointBertRecipeNoDecay,
  pointNoDecay,
} from "./pointbert.ts";
export {
  buildVideoVit,
  sinusoidTable,
  tubeletEmbed,
  type VideoConfig,
  type VideoModel,
  videoNoDecay,
  type VideoRegularisation,
  videoTokens,
} from "./video.ts";
export { DEFAULT_LLM, POINT_PRESETS, RANDOM_LLM, VIDEO_PRESETS, VIT_PRESETS } from "./presets.ts";
export {
  causalLm,
  frozenEncoderStack,
  type FrozenStack,
  type LayerOut,
  llmLoader,
  type StackOpts,
} from "./llm.ts";
export {
  buildLm,
  initLmWeights,
  type LmConfig,
  lmLlmConfig,
  type LmModel,
  lmNoDecay,
  lmTensorShapes,
} from "./lm.ts";
