// The named model shapes the runner and the CLIs offer, in one place, and the default frozen LLM.

import type { VitConfig } from "./vit.ts";
import type { PointBertConfig } from "./pointbert.ts";
import type { VideoConfig } from "./video.ts";

/**
 * ViT presets: models for 28×28×1 images (`fmnist`, the small default; `tiny-28`, ViT-tiny's width and
 * depth on 28×28) and timm's presets (224×224×3, patch 16, 1000 classes).
 */
export const VIT_PRESETS: Readonly<Record<string, VitConfig>> = {
  fmnist: { img: 28, patch: 7, chans: 1, dim: 32, depth: 2, heads: 2, classes: 10 },
  "tiny-28": { img: 28, patch: 7, chans: 1, dim: 192, depth: 12, heads: 3, classes: 10 },
  tiny: { img: 224, patch: 16, chans: 3, dim: 192, depth: 12, heads: 3, classes: 1000 },
  small: { img: 224, patch: 16, chans: 3, dim: 384, depth: 12, heads: 6, classes: 1000 },
  base: { img: 224, patch: 16, chans: 3, dim: 768, depth: 12, heads: 12, classes: 1000 },
};

/** Point-BERT presets: `fmnist-points`, a small encoder for 64-point Fashion-MNIST clouds (sized for a software GPU). */
export const POINT_PRESETS: Readonly<Record<string, PointBertConfig>> = {
  "fmnist-points": {
    points: 64,
    groups: 8,
    groupSize: 8,
    encoderDim: 64,
    dim: 64,
    depth: 2,
    heads: 4,
    classes: 10,
  },
};

/**
 * Video ViT presets: `mfmnist`, a small model for moving Fashion-MNIST clips (8 frames of 28×28×1, 8
 * motion classes; sized for a software GPU), and VideoMAE's SSv2 fine-tuning shapes (16 frames of
 * 224×224×3, patch 16, tubelet 2, 174 classes): `small-ssv2` (ViT-S, the paper's) and `base-ssv2` (ViT-B).
 */
export const VIDEO_PRESETS: Readonly<Record<string, VideoConfig>> = {
  mfmnist: {
    frames: 8,
    tubelet: 2,
    img: 28,
    patch: 7,
    chans: 1,
    dim: 64,
    depth: 2,
    heads: 4,
    classes: 8,
    initValues: 0,
  },
  "small-ssv2": {
    frames: 16,
    tubelet: 2,
    img: 224,
    patch: 16,
    chans: 3,
    dim: 384,
    depth: 12,
    heads: 6,
    classes: 174,
    initValues: 0,
  },
  "base-ssv2": {
    frames: 16,
    tubelet: 2,
    img: 224,
    patch: 16,
    chans: 3,
    dim: 768,
    depth: 12,
    heads: 12,
    classes: 174,
    initValues: 0,
  },
};

/**
 * The default frozen LLM (`--llm default`): models/lm-default, a LLaMA-architecture language model
 * pretrained on English text by `deno task pretrain` (hidden 256, 6 layers; an HF LlamaForCausalLM
 * checkpoint with tokenizer.json). Present in a clone of the repository.
 */
export const DEFAULT_LLM: string = decodeURIComponent(new URL("./lm-default", import.meta.url).pathname);

/**
 * The random-weight fixture (`--llm random`): models/llama-tiny, a tiny LLaMA checkpoint (hidden 64,
 * 3 layers) whose weights are random, not text-pretrained: the cheap layer of tests and of the paper's
 * "random layer" control. Present in a clone of the repository.
 */
export const RANDOM_LLM: string = decodeURIComponent(new URL("./llama-tiny", import.meta.url).pathname);
