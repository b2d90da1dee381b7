// One view of every image dataset format behind `--data DIR`: ImageFolder (files decoded on demand),
// CIFAR-10/100 and Fashion-MNIST/MNIST IDX (pixels in memory). Each sample is read and turned into a
// DecodedImage the same way in the main thread and in the pipeline's workers, so both give the same bytes.

import { join } from "node:path";
import { CLASSES, loadFashionMnist } from "../fashion_mnist.ts";
import { cifarImage, readCifarFolder, readCifarTarGz } from "./cifar.ts";
import { type DecodedImage, decodeImageSync, ImageDecodeError } from "./decode.ts";
import { detectImageDataset } from "./detect.ts";
import { listImageFolder } from "./image_folder.ts";

/** Where a dataset's images come from: files decoded on demand, or same-sized raw pixels in memory. */
export type ImageItems =
  | {
    /** Encoded JPEG/PNG files under `root`. */
    kind: "files";
    /** The split folder. */
    root: string;
    /** Paths relative to root, in dataset order. */
    files: string[];
  }
  | {
    /** Interleaved 8-bit pixels, `width`×`height`×`channels` per image, back to back. */
    kind: "pixels";
    /** Image width. */
    width: number;
    /** Image height. */
    height: number;
    /** 1 (gray) or 3 (RGB). */
    channels: 1 | 3;
    /** All images. */
    pixels: Uint8Array;
  };

/** The split names of `--split`: `val` is ImageFolder's val/, CIFAR's test batch, IDX's t10k files. */
export type ImageSplit = "train" | "val";

/** One split of an image dataset in a common form. */
export interface ImageDataset {
  /** The detected format: imagefolder | cifar10 | cifar100 | idx. */
  format: string;
  /** Class names; label k is classes[k]. */
  classes: string[];
  /** Class index of each sample. */
  labels: Int32Array;
  /** A name per sample, "class/name" (file path relative to the split, or "file#index" for CIFAR/IDX). */
  names: string[];
  /** The images. */
  items: ImageItems;
}

/** Number of samples of a dataset. */
export function datasetSize(d: ImageDataset): number {
  return d.labels.length;
}

/** Opens a split of any supported format (detected from the contents of `dir`). */
export async function openImageDataset(dir: string, split: ImageSplit): Promise<ImageDataset> {
  if (split !== "train" && split !== "val") throw new Error(`--split: expected train or val, got '${split}'`);
  const found = await detectImageDataset(dir);
  if (found.format === "imagefolder") {
    const s = await listImageFolder(found.dir, split);
    const names = s.files;
    return {
      format: "imagefolder",
      classes: s.classes,
      labels: s.labels,
      names,
      items: { kind: "files", root: s.root, files: s.files },
    };
  }
  if (found.format === "idx") {
    const file = split === "train" ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte";
    const d = await loadFashionMnist(found.dir, split === "train" ? "train" : "test");
    const labels = Int32Array.from(d.labels);
    return {
      format: "idx",
      classes: [...CLASSES],
      labels,
      names: Array.from(labels, (l, i) => `${CLASSES[l]}/${file}#${i}`),
      items: { kind: "pixels", width: d.cols, height: d.rows, channels: 1, pixels: d.images },
    };
  }
  const c = "archive" in found
    ? await readCifarTarGz(found.format, found.archive, split)
    : await readCifarFolder(found.format, found.dir, split);
  const first = cifarImage(c, 0);
  return {
    format: found.format,
    classes: c.classes,
    labels: c.labels,
    names: Array.from(c.labels, (l, i) => `${c.classes[l]}/${c.sourceOf(i)}`),
    items: { kind: "pixels", width: first.width, height: first.height, channels: 3, pixels: c.pixels },
  };
}

/** The first `n` samples (all when n is 0 or larger than the split). */
export function firstImages(d: ImageDataset, n: number): ImageDataset {
  if (!n || n >= d.labels.length) return d;
  const items: ImageItems = d.items.kind === "files" ? { ...d.items, files: d.items.files.slice(0, n) } : {
    ...d.items,
    pixels: d.items.pixels.subarray(0, n * d.items.width * d.items.height * d.items.channels),
  };
  return { ...d, labels: d.labels.subarray(0, n), names: d.names.slice(0, n), items };
}

/** The path (files) or name (pixels) that identifies sample i in messages. */
export function itemName(items: ImageItems, i: number, names?: string[]): string {
  return items.kind === "files" ? join(items.root, items.files[i]) : names?.[i] ?? `#${i}`;
}

/**
 * Sample i as a DecodedImage (decoders initialised). Errors are ImageDecodeError naming the file.
 * `pixels` datasets return a view, so callers must not write into it.
 */
export function readItem(items: ImageItems, i: number): DecodedImage {
  if (items.kind === "pixels") {
    const n = items.width * items.height * items.channels;
    return {
      width: items.width,
      height: items.height,
      channels: items.channels,
      data: items.pixels.subarray(i * n, (i + 1) * n),
    };
  }
  const path = join(items.root, items.files[i]);
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch (e) {
    throw new ImageDecodeError(path, `cannot read (${(e as Error).message})`);
  }
  return decodeImageSync(bytes, path);
}
