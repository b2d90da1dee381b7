/**
 * Model builders: the ViT (timm semantics), the Point-BERT-style point-cloud classifier and the
 * VideoMAE-style video ViT, each optionally with frozen LLM layers inside (the paper's ViT-LLM /
 * PointBERT-LLM / video ViT-LLaMA), and the frozen LLM layers themselves — as an encoder stack or as
 * the published causal language model.
 *
 * @module
 */

export { buildVit, type VitConfig, type VitModel, vitNoDecay } from "./vit.ts";
export { buildPointBert, type PointBertConfig, type PointBertModel, pointNoDecay } from "./pointbert.ts";
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
export { DEFAULT_LLM, POINT_PRESETS, VIDEO_PRESETS, VIT_PRESETS } from "./presets.ts";
export { causalLm, frozenEncoderStack, type FrozenStack, llmLoader } from "./llm.ts";
