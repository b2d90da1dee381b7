// What becomes of one decoded image on its way into a batch, the same in the main thread and in the
// pipeline's workers: the eval transform, or a training transform drawn from the sample's own seed. A
// per-sample seed (not a shared random stream) is what makes the result independent of which worker, and
// how many, did the work.

import { Rng } from "../../compiler/core/random.ts";
import { trainTransform, type TrainTransformOptions } from "./augment.ts";
import { type DecodedImage, ImageDecodeError } from "./decode.ts";
import { IMAGENET_MEAN, IMAGENET_STD, normalizeToChw, resizeCenterCrop } from "./transforms.ts";

/** Training augmentation: DeiT's train transform, the eval transform plus a horizontal flip, or none. */
export type ImageAugment = "deit" | "flip" | "none";

/** The augmentation names `--augment` accepts. */
export const IMAGE_AUGMENTS: readonly ImageAugment[] = ["deit", "flip", "none"];

/** Everything that turns a decoded image into model input (plain data: it is posted to workers). */
export interface ImageTransformSpec {
  /** Output side. */
  imgSize: number;
  /** Eval resize: shorter side to int(imgSize / cropPct), then the center crop (default 0.875). */
  cropPct?: number;
  /** Per-channel mean (as many values as `chans`; default ImageNet's). */
  mean?: readonly number[];
  /** Per-channel std (default ImageNet's). */
  std?: readonly number[];
  /** Output channels: 3 replicates gray images; 1 needs gray images. */
  chans: 1 | 3;
  /** Augmentation of training samples (those given a seed); default "none". */
  augment?: ImageAugment;
  /** DeiT transform options beyond size and normalization (RandAugment spec, reprob, ...). */
  deit?: Omit<TrainTransformOptions, "imgSize" | "mean" | "std">;
}

/** Floats per sample: chans × imgSize². */
export function sampleSizeOf(spec: ImageTransformSpec): number {
  return spec.chans * spec.imgSize * spec.imgSize;
}

/** Mean and std with the defaults, checked against the channel count. */
export function normalizationOf(
  spec: ImageTransformSpec,
): { mean: readonly number[]; std: readonly number[] } {
  const mean = spec.mean ?? (spec.chans === 3 ? IMAGENET_MEAN : [IMAGENET_MEAN[0]]);
  const std = spec.std ?? (spec.chans === 3 ? IMAGENET_STD : [IMAGENET_STD[0]]);
  if (mean.length !== spec.chans || std.length !== spec.chans) {
    throw new Error(`--mean/--std: ${spec.chans} values each for ${spec.chans}-channel input`);
  }
  if (std.some((s) => !(s > 0))) throw new Error(`--std: values must be > 0, got ${std}`);
  return { mean, std };
}

/** A gray image as RGB (R = G = B), as Pillow's convert("RGB") does. */
export function grayToRgb(img: DecodedImage): DecodedImage {
  if (img.channels === 3) return img;
  const n = img.width * img.height, out = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) out[p * 3] = out[p * 3 + 1] = out[p * 3 + 2] = img.data[p];
  return { ...img, channels: 3, data: out };
}

function mirror(img: DecodedImage): DecodedImage {
  const { width: w, height: h, channels: c, data } = img;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let k = 0; k < c; k++) out[(y * w + x) * c + k] = data[(y * w + w - 1 - x) * c + k];
    }
  }
  return { ...img, data: out };
}

/**
 * One sample: [chans, imgSize, imgSize] float32. Without a seed (evaluation), the eval transform;
 * with one, the spec's augmentation drawn from Rng(seed). `name` is for the error of an RGB image fed to
 * a 1-channel model. With `out` (sampleSizeOf(spec) floats, e.g. the sample's slice of a batch), the
 * floats are written there and no sample-sized array is allocated.
 */
export function transformSample(
  img: DecodedImage,
  spec: ImageTransformSpec,
  seed: number | undefined,
  name: string,
  out?: Float32Array,
): Float32Array {
  if (spec.chans === 1 && img.channels === 3) {
    throw new ImageDecodeError(name, "an RGB image, but the model takes 1 channel (--chans 3)");
  }
  const { mean, std } = normalizationOf(spec);
  const augment = seed === undefined ? "none" : spec.augment ?? "none";
  if (augment === "deit") {
    if (spec.chans !== 3) throw new Error("--augment deit needs 3-channel input (--chans 3)");
    return trainTransform(
      grayToRgb(img),
      { ...spec.deit, imgSize: spec.imgSize, mean, std },
      new Rng(seed!),
      out,
    );
  }
  let u8 = resizeCenterCrop(img, spec.imgSize, spec.cropPct ?? 0.875);
  if (augment === "flip" && new Rng(seed!).next() < 0.5) u8 = mirror(u8);
  return normalizeToChw(u8, mean, std, spec.chans, out);
}
