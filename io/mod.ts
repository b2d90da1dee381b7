/**
 * Reading and writing tensors on disk: safetensors files (single or sharded), LLM checkpoints in
 * Hugging Face or Meta layout with their configs, random-weight LLaMA checkpoints of a real model's
 * shape, training checkpoints (weights + optimizer state + run state), and VideoMAE / Point-BERT `.pth`
 * checkpoints as initial weights of the video ViT and Point-BERT.
 *
 * @module
 */

export {
  bytesOf,
  openCheckpointDir,
  type OpenOptions,
  openSafetensors,
  type SafetensorsSource,
  type TensorToWrite,
  writeSafetensors,
} from "./safetensors.ts";
export { CheckpointError, type StDtype, type TensorInfo, toFloat32, type WeightSource } from "./weights.ts";
export { type LlmConfig, parseLayerSelection, readConfig } from "./config.ts";
export { type LlmCheckpoint, openLlm } from "./llm.ts";
export { hfLlamaConfig, type HfLlamaOptions, writeHfLlama } from "./hf_llama.ts";
export { LLAMA_7B, type RandomLlamaShape, writeRandomLlama } from "./random_llm.ts";
export { encodePng } from "./png.ts";
export { crc32 } from "./inflate.ts";
export {
  type CheckpointLocation,
  type CheckpointState,
  findCheckpoint,
  type InitAdapter,
  initFromSafetensors,
  loadCheckpoint,
  readCheckpointState,
  saveCheckpoint,
} from "./checkpoint.ts";
export {
  initFromVideoMae,
  openVideoMae,
  type ParamSpec,
  readVideoMae,
  VIDEOMAE_MODEL_KEYS,
  videoMaeName,
  type VideoMaeWeights,
} from "./videomae.ts";
export { initFromPointBert, POINTBERT_MODEL_KEYS, pointBertName } from "./pointbert.ts";
