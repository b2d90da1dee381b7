// Fashion-MNIST: IDX reading (raw or gzipped, strictly validated), the dataset loader, and its images
// as Batcher samples with the usual augmentation (random crop with zero padding, horizontal flip).
//
// The default data directory is the class-balanced subset committed in the repo
// (data/fashion-mnist-subset, made by data/make_subset.ts); the full set comes from Debian's
// dataset-fashion-mnist package at SYSTEM_DATA_DIR, or any directory holding the four standard files.

import { gzipSync } from "fflate";
import { crc32, inflateCapped, InflateLimitError } from "../io/inflate.ts";
import { exists } from "../io/fs.ts";
import type { Samples } from "./batcher.ts";
import { fileVersion, LruCache } from "./cache.ts";

/** Class names, indexed by label. */
export const CLASSES: readonly string[] = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];

/** The subset committed in this repo (5000 train / 1000 test, class-balanced). */
export const DEFAULT_DATA_DIR: string = decodeURIComponent(
  new URL("../data/fashion-mnist-subset", import.meta.url).pathname,
);
/** Where Debian's dataset-fashion-mnist package installs the full dataset. */
export const SYSTEM_DATA_DIR = "/usr/share/datasets/fashion-mnist";

/** Per-pixel statistics of the Fashion-MNIST training set, on pixels scaled to [0, 1]. */
export const FASHION_MNIST_MEAN = 0.2860;
/** Per-pixel standard deviation of the Fashion-MNIST training set, on pixels scaled to [0, 1]. */
export const FASHION_MNIST_STD = 0.3530;

/** A dataset split. */
export type Split = "train" | "test";

/** The standard file names of a split (the .gz names; an uncompressed file without .gz also works). */
export function splitFiles(split: Split): { images: string; labels: string } {
  const p = split === "train" ? "train" : "t10k";
  return { images: `${p}-images-idx3-ubyte.gz`, labels: `${p}-labels-idx1-ubyte.gz` };
}

const NOT_FOUND_HINT =
  `pass --data DIR, or install Debian's dataset-fashion-mnist (${SYSTEM_DATA_DIR}); the bundled ` +
  "subset (data/fashion-mnist-subset) comes with a clone of the repository, not with the published package";

// ---------------------------------------------------------------------------------------------------------
// IDX

export interface Idx {
  dims: number[];
  data: Uint8Array;
}

/**
 * Largest IDX file read (header + data): the full Fashion-MNIST training images are 47 MB. A bigger
 * claim is refused before (or, when only the inflated header shows it, while) inflating.
 */
export const MAX_IDX_BYTES = 256 * 1024 * 1024;

/**
 * Gunzips a single-member gzip file, checking the trailer's CRC32 and length (fflate does not), so a
 * corrupted file fails here instead of yielding wrong pixels. Inflation streams and stops as soon as
 * the output passes `limit(first bytes of output)` (MAX_IDX_BYTES by default; readIdx passes what the
 * IDX header's dims need), so a decompression bomb costs its cap, not its claim.
 */
export function gunzipChecked(
  bytes: Uint8Array,
  name: string,
  limit: (head: Uint8Array) => number = () => MAX_IDX_BYTES,
): Uint8Array {
  if (bytes.length < 18 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) {
    throw new Error(`${name}: not a gzip file (no 1f 8b magic)${bytes.length < 18 ? " or too short" : ""}`);
  }
  const t = new DataView(bytes.buffer, bytes.byteOffset + bytes.length - 8, 8);
  const crc = t.getUint32(0, true), size = t.getUint32(4, true);
  if (size > limit(new Uint8Array(0))) {
    throw new Error(
      `${name}: corrupt gzip data (the trailer claims ${size} inflated bytes, more than the ${
        limit(new Uint8Array(0))
      } allowed; truncated, or not this kind of file)`,
    );
  }
  let out: Uint8Array;
  try {
    out = inflateCapped(bytes, "gzip", limit);
  } catch (e) {
    if (e instanceof InflateLimitError) throw new Error(`${name}: gzip data ${e.message}: refusing it`);
    throw new Error(`${name}: corrupt gzip data (${(e as Error).message})`);
  }
  if (size !== out.length >>> 0 || crc !== crc32(out)) {
    throw new Error(
      `${name}: corrupt gzip data (CRC32/length in the trailer do not match the ${out.length} inflated ` +
        `bytes; multi-member gzip files are not supported)`,
    );
  }
  return out;
}

/** IDX magic for unsigned-byte data of `ndims` dimensions (0x00000801 labels, 0x00000803 images). */
function idxMagic(ndims: number): number {
  return 0x0800 | ndims;
}
const hex = (v: number) => "0x" + (v >>> 0).toString(16).padStart(8, "0");

/**
 * Parses an uncompressed IDX file (big-endian header: 0, 0, type, ndims, then ndims uint32 sizes, then
 * the data). Only unsigned bytes (type 0x08) are supported. `expectNdims` checks the magic number.
 */
export function parseIdx(bytes: Uint8Array, name: string, expectNdims?: number): Idx {
  if (bytes.length < 4) throw new Error(`${name}: truncated IDX file (${bytes.length} bytes, no header)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(0, false);
  const type = bytes[2], ndims = bytes[3];
  const want = expectNdims === undefined ? "" : ` (expected ${hex(idxMagic(expectNdims))})`;
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new Error(`${name}: bad IDX magic number ${hex(magic)}${want}; not an IDX file`);
  }
  if (type !== 0x08) {
    throw new Error(
      `${name}: bad IDX magic number ${hex(magic)}${want}: data type 0x${
        type.toString(16).padStart(2, "0")
      } ` +
        `is not unsigned byte (0x08)`,
    );
  }
  if (ndims === 0 || (expectNdims !== undefined && ndims !== expectNdims)) {
    throw new Error(`${name}: bad IDX magic number ${hex(magic)}${want}: ${ndims} dimensions`);
  }
  const headerLen = 4 + 4 * ndims;
  if (bytes.length < headerLen) {
    throw new Error(
      `${name}: truncated IDX header (${bytes.length} bytes, need ${headerLen} for ${ndims} dims)`,
    );
  }
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < ndims; i++) {
    const d = dv.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  const have = bytes.length - headerLen;
  if (have < count) {
    throw new Error(
      `${name}: truncated IDX data: dims [${dims.join(", ")}] need ${count} bytes, the file has ${have}`,
    );
  }
  if (have > count) {
    throw new Error(
      `${name}: ${have - count} bytes of trailing garbage after the IDX data (dims [${dims.join(", ")}] ` +
        `need ${count} bytes)`,
    );
  }
  return { dims, data: bytes.subarray(headerLen) };
}

/** Trailing bytes inflated past the IDX data before stopping (enough for parseIdx to count them). */
const IDX_SLACK = 1 << 20;

/**
 * Most bytes an IDX file can have given its first bytes: header + product of dims (+ slack so a little
 * trailing garbage is still reported exactly by parseIdx), at most MAX_IDX_BYTES.
 */
function idxLimit(head: Uint8Array): number {
  if (head.length < 4 || head.length < 4 + 4 * head[3]) return MAX_IDX_BYTES;
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  let count = 1;
  for (let i = 0; i < head[3]; i++) count *= dv.getUint32(4 + 4 * i, false);
  return Math.min(MAX_IDX_BYTES, 4 + 4 * head[3] + count + IDX_SLACK);
}

/** Encodes an unsigned-byte IDX file (uncompressed). */
export function encodeIdx(dims: number[], data: Uint8Array): Uint8Array {
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    throw new Error(`encodeIdx: dims [${dims}] need ${count} bytes, got ${data.length}`);
  }
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, idxMagic(dims.length), false);
  dims.forEach((d, i) => dv.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

/** Encodes and gzips an IDX file deterministically (no timestamp, level 9). */
export function encodeIdxGz(dims: number[], data: Uint8Array): Uint8Array {
  return gzipSync(encodeIdx(dims, data), { level: 9, mtime: 0 });
}

/**
 * Inflated IDX files by file version (data/cache.ts): a process that trains, evaluates and resumes on a
 * split reads it several times, and inflating is nearly all of a read. Bounded to 128 MiB (the full
 * Fashion-MNIST train images are 47 MB); readers get a copy, so a kept file never changes.
 */
export const idxCache: LruCache<Uint8Array> = new LruCache<Uint8Array>(128 * 2 ** 20, (b) => b.byteLength, 8);

/**
 * Reads an IDX file, gzipped (detected by the 1f 8b magic, or required by a .gz name) or raw.
 * Every failure is one Error naming the file.
 */
export async function readIdx(path: string, expectNdims?: number): Promise<Idx> {
  const version = async () => {
    try {
      return fileVersion(path, await Deno.stat(path));
    } catch {
      return undefined; // readFile below says why
    }
  };
  const before = await version();
  const kept = before === undefined ? undefined : idxCache.get(before);
  if (kept) return parseIdx(kept.slice(), path, expectNdims);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${path}: not found; ${NOT_FOUND_HINT}`);
    throw new Error(`${path}: cannot read (${(e as Error).message})`);
  }
  const isGz = bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
  if (!isGz && !path.endsWith(".gz")) return parseIdx(bytes, path, expectNdims);
  bytes = gunzipChecked(bytes, path, idxLimit);
  const idx = parseIdx(bytes, path, expectNdims);
  // kept only when the file did not change while it was read (the key must describe these bytes)
  if (before !== undefined && before === await version()) idxCache.set(before, bytes.slice());
  return idx;
}

// ---------------------------------------------------------------------------------------------------------
// Dataset

/** One split of Fashion-MNIST in memory. */
export interface FashionMnist {
  /** [n, rows, cols] pixels, 0..255. */
  images: Uint8Array;
  /** [n] class indices 0..9. */
  labels: Uint8Array;
  /** Number of images. */
  n: number;
  /** Image height (28). */
  rows: number;
  /** Image width (28). */
  cols: number;
}

/** The .gz file if present, else the uncompressed one if present, else the .gz name (to fail on). */
async function pickFile(dir: string, gzName: string): Promise<string> {
  const gz = `${dir}/${gzName}`, raw = gz.slice(0, -3);
  if (!(await exists(gz)) && (await exists(raw))) return raw;
  return gz;
}

/** Loads one split of Fashion-MNIST from `dir` (the four standard files, gzipped or not). */
export async function loadFashionMnist(dir: string, split: Split): Promise<FashionMnist> {
  if (split !== "train" && split !== "test") throw new Error(`unknown split '${split}' (train or test)`);
  const dirNorm = dir.replace(/\/+$/, "") || "/";
  if (!(await exists(dirNorm))) throw new Error(`${dirNorm}: data directory not found; ${NOT_FOUND_HINT}`);
  const names = splitFiles(split);
  const imgPath = await pickFile(dirNorm, names.images), lblPath = await pickFile(dirNorm, names.labels);
  const img = await readIdx(imgPath, 3);
  const lbl = await readIdx(lblPath, 1);
  const [n, rows, cols] = img.dims;
  if (rows !== 28 || cols !== 28) {
    throw new Error(`${imgPath}: images are ${rows}×${cols} (dims [${img.dims.join(", ")}]), expected 28×28`);
  }
  if (lbl.dims[0] !== n) {
    throw new Error(
      `${split} split in ${dirNorm}: ${n} images but ${lbl.dims[0]} labels (${imgPath}, ${lblPath})`,
    );
  }
  for (let i = 0; i < n; i++) {
    if (lbl.data[i] >= CLASSES.length) {
      throw new Error(
        `${lblPath}: label ${lbl.data[i]} at index ${i} is out of range (0..${CLASSES.length - 1})`,
      );
    }
  }
  return { images: img.data, labels: lbl.data, n, rows, cols };
}

// ---------------------------------------------------------------------------------------------------------
// Samples for the Batcher

/** Normalisation and augmentation of image samples. */
export interface ImageSampleOptions {
  /** Normalisation of pixels scaled to [0, 1]: (x - mean) / std. Defaults: Fashion-MNIST's. */
  mean?: number;
  /** See `mean`; must be > 0. */
  std?: number;
  /** Crop padding in pixels for augmentation (default 4). */
  pad?: number;
  /** Horizontal flip probability for augmentation (default 0.5). */
  flipProb?: number;
}

/** Fashion-MNIST images as Batcher samples ([1, rows, cols] floats each), with their normalisation. */
export interface ImageSamples extends Samples {
  /** The images. */
  data: FashionMnist;
  /** Normalised value of a pixel byte. */
  normalise(v: number): number;
}

/**
 * Images as Batcher samples: normalised with (mean, std), and augmented (when the Batcher asks) with
 * the usual random crop of the zero-padded image (offsets in [-pad, pad]) and a horizontal flip; per
 * sample the augmentation draws dy, dx, then the flip.
 */
export function imageSamples(data: FashionMnist, opts: ImageSampleOptions = {}): ImageSamples {
  if (data.images.length !== data.n * data.rows * data.cols || data.labels.length !== data.n) {
    throw new Error(
      `imageSamples: data sizes disagree (n=${data.n}, ${data.rows}×${data.cols}, ` +
        `${data.images.length} pixels, ${data.labels.length} labels)`,
    );
  }
  const mean = opts.mean ?? FASHION_MNIST_MEAN, std = opts.std ?? FASHION_MNIST_STD;
  if (!(std > 0)) throw new Error(`imageSamples: std must be > 0, got ${std}`);
  const pad = opts.pad ?? 4, flipProb = opts.flipProb ?? 0.5;
  const { rows, cols, images: src } = data, hw = rows * cols;
  /** Normalised value of each pixel byte (and of the zero padding, lut[0]). */
  const lut = new Float32Array(256);
  for (let v = 0; v < 256; v++) lut[v] = (v / 255 - mean) / std;
  return {
    data,
    n: data.n,
    labels: data.labels,
    sampleSize: hw,
    normalise: (v) => lut[v],
    write(s, out, o, rng) {
      const so = s * hw;
      if (!rng) {
        for (let p = 0; p < hw; p++) out[o + p] = lut[src[so + p]];
        return;
      }
      // crop offset in [-pad, pad] of the zero-padded image, then flip
      const dy = rng.int(2 * pad + 1) - pad;
      const dx = rng.int(2 * pad + 1) - pad;
      const flip = rng.next() < flipProb;
      for (let y = 0; y < rows; y++) {
        const sy = y + dy;
        for (let x = 0; x < cols; x++) {
          const sx = (flip ? cols - 1 - x : x) + dx;
          const v = sy >= 0 && sy < rows && sx >= 0 && sx < cols ? src[so + sy * cols + sx] : 0;
          out[o + y * cols + x] = lut[v];
        }
      }
    },
  };
}

/** The first `n` samples of a split (all of it when n is 0, undefined or larger). */
export function firstSamples(d: FashionMnist, n?: number): FashionMnist {
  if (!n || n >= d.n) return d;
  const hw = d.rows * d.cols;
  return { ...d, n, images: d.images.subarray(0, n * hw), labels: d.labels.subarray(0, n) };
}
