// The eval transform of a whole split, in dataset order, as `deno task data` dumps it: every image through
// the worker pipeline (no augmentation), RGB, normalized; corrupt images fail, or with skipBad are left out.

import { Batcher } from "../batcher.ts";
import { type ImageSplit, itemName, openImageDataset } from "./dataset.ts";
import { openImagePipeline } from "./pipeline.ts";

/** What to transform. */
export interface EvalSplitOptions {
  /** Output side. */
  imgSize: number;
  /** Resize the shorter side to int(imgSize / cropPct) before the center crop (default 0.875). */
  cropPct?: number;
  /** Per-channel mean (3 values; default ImageNet's). */
  mean?: readonly number[];
  /** Per-channel std (3 values; default ImageNet's). */
  std?: readonly number[];
  /** Worker threads (0 or absent: one per core). */
  workers?: number;
  /** Leave corrupt images out instead of failing. */
  skipBad?: boolean;
  /** Receives one warning per skipped image. */
  warn?: (message: string) => void;
}

/** A transformed split. */
export interface EvalSplit {
  /** The detected format. */
  format: string;
  /** [n, 3, img, img] floats. */
  images: Float32Array;
  /** [n] class indices. */
  labels: Int32Array;
  /** Class names. */
  classes: string[];
  /** "class/name" per image, dataset order. */
  files: string[];
  /** Corrupt images left out (paths). */
  skipped: string[];
}

/** The eval transform of every image of a split (as `deno task data --dump` writes it). */
export async function evalSplit(dir: string, split: ImageSplit, o: EvalSplitOptions): Promise<EvalSplit> {
  const ds = await openImageDataset(dir, split);
  const spec = { imgSize: o.imgSize, cropPct: o.cropPct, mean: o.mean, std: o.std, chans: 3 as const };
  const pipe = await openImagePipeline(ds, spec, { workers: o.workers, skipBad: o.skipBad, warn: o.warn });
  try {
    const n = pipe.n, S = pipe.sampleSize, all = new Float32Array(n * S);
    const batcher = new Batcher(pipe, { batchSize: 64, seed: 0, augment: false, dropLast: false });
    let at = 0;
    for await (const b of pipe.evalBatches(batcher)) {
      all.set(b.x.subarray(0, b.valid * S), at * S);
      at += b.valid;
    }
    // skipped files are left out (in the batches their slots held a neighbour's pixels)
    const keep = [...ds.names.keys()].filter((i) => !pipe.skipped.has(itemName(ds.items, i, ds.names)));
    let images = all;
    if (keep.length !== n) {
      images = new Float32Array(keep.length * S);
      keep.forEach((i, k) => images.set(all.subarray(i * S, (i + 1) * S), k * S));
    }
    return {
      format: ds.format,
      images,
      labels: Int32Array.from(keep, (i) => ds.labels[i]),
      classes: ds.classes,
      files: keep.map((i) => ds.names[i]),
      skipped: [...pipe.skipped],
    };
  } finally {
    pipe.close();
  }
}
