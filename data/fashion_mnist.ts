// Fashion-MNIST: IDX reading (raw or gzipped, strictly validated), the dataset loader, and a seeded,
// resumable Batcher with the usual augmentation (random crop with zero padding, horizontal flip).
//
// The default data directory is the class-balanced subset committed in the repo
// (data/fashion-mnist-subset, made by data/make_subset.ts); the full set comes from Debian's
// dataset-fashion-mnist package at SYSTEM_DATA_DIR, or any directory holding the four standard files.

import { gunzipSync, gzipSync } from "fflate";
import { Rng, shuffledOrder } from "../compiler/core/random.ts";

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
export const FASHION_MNIST_STD = 0.3530;

export type Split = "train" | "test";

/** The standard file names of a split (the .gz names; an uncompressed file without .gz also works). */
export function splitFiles(split: Split): { images: string; labels: string } {
  const p = split === "train" ? "train" : "t10k";
  return { images: `${p}-images-idx3-ubyte.gz`, labels: `${p}-labels-idx1-ubyte.gz` };
}

const NOT_FOUND_HINT = `pass --data DIR, or install Debian's dataset-fashion-mnist (${SYSTEM_DATA_DIR})`;

// ---------------------------------------------------------------------------------------------------------
// IDX

export interface Idx {
  dims: number[];
  data: Uint8Array;
}

let crcTable: Uint32Array | undefined;
function crc32(b: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = crcTable[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * Gunzips a single-member gzip file, checking the trailer's CRC32 and length (fflate does not), so a
 * corrupted file fails here instead of yielding wrong pixels.
 */
export function gunzipChecked(bytes: Uint8Array, name: string): Uint8Array {
  if (bytes.length < 18 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) {
    throw new Error(`${name}: not a gzip file (no 1f 8b magic)${bytes.length < 18 ? " or too short" : ""}`);
  }
  let out: Uint8Array;
  try {
    out = gunzipSync(bytes);
  } catch (e) {
    throw new Error(`${name}: corrupt gzip data (${(e as Error).message})`);
  }
  const t = new DataView(bytes.buffer, bytes.byteOffset + bytes.length - 8, 8);
  const crc = t.getUint32(0, true), size = t.getUint32(4, true);
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
 * Reads an IDX file, gzipped (detected by the 1f 8b magic, or required by a .gz name) or raw.
 * Every failure is one Error naming the file.
 */
export async function readIdx(path: string, expectNdims?: number): Promise<Idx> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${path}: not found; ${NOT_FOUND_HINT}`);
    throw new Error(`${path}: cannot read (${(e as Error).message})`);
  }
  const isGz = bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
  if (isGz || path.endsWith(".gz")) bytes = gunzipChecked(bytes, path);
  return parseIdx(bytes, path, expectNdims);
}

// ---------------------------------------------------------------------------------------------------------
// Dataset

export interface FashionMnist {
  /** [n, rows, cols] pixels, 0..255. */
  images: Uint8Array;
  /** [n] class indices 0..9. */
  labels: Uint8Array;
  n: number;
  rows: number;
  cols: number;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
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
// Batcher

export interface BatcherOptions {
  batchSize: number;
  seed: number;
  /** Random crop (zero padding `pad`) and horizontal flip (probability 0.5) on training batches. */
  augment: boolean;
  /** Normalisation of pixels scaled to [0, 1]: (x - mean) / std. Defaults: Fashion-MNIST's. */
  mean?: number;
  std?: number;
  /** Drop the last partial training batch of each epoch (default true); else it is returned short. */
  dropLast?: boolean;
  /** Crop padding in pixels (default 4). */
  pad?: number;
  /** Horizontal flip probability (default 0.5). */
  flipProb?: number;
}

export interface Batch {
  /** [B, 1, rows, cols], normalised. */
  images: Float32Array;
  /** [B]. */
  labels: Int32Array;
  /** Samples in the batch (B; the final batch of a non-dropLast epoch may be shorter). */
  size: number;
  /** Epoch this batch belongs to. */
  epoch: number;
}

export interface EvalBatch extends Batch {
  /** How many leading samples are real; the rest repeat samples from the start of the split. */
  valid: number;
}

/** Everything needed to continue exactly where a Batcher was (with the same data, seed and options). */
export interface BatcherState {
  epoch: number;
  /** Position in the epoch's shuffled order. */
  cursor: number;
  /** State of the augmentation random stream. */
  rng: number;
}

/** A well-mixed 32-bit seed from (seed, epoch), so each epoch's order is independent of the others. */
function epochSeed(seed: number, epoch: number): number {
  let h = (seed >>> 0) ^ Math.imul(epoch + 1, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Training and evaluation batches from one split. Training batches (`next()`) come in a fresh
 * Fisher-Yates shuffle each epoch (drawn from a seeded Rng keyed on seed and epoch), with optional
 * augmentation drawn from a second seeded stream; `state()`/`restore()` resume exactly.
 * `evalBatches()` walks the split in order, unshuffled and unaugmented, padding the final batch.
 */
export class Batcher {
  readonly data: FashionMnist;
  readonly batchSize: number;
  readonly seed: number;
  readonly augment: boolean;
  readonly mean: number;
  readonly std: number;
  readonly dropLast: boolean;
  readonly pad: number;
  readonly flipProb: number;
  private epoch = 0;
  private cursor = 0;
  private rng: Rng;
  private order: Uint32Array | undefined;
  private orderEpoch = -1;
  /** Normalised value of each pixel byte (and of the zero padding, lut[0]). */
  private lut: Float32Array;

  constructor(data: FashionMnist, opts: BatcherOptions) {
    const { batchSize, seed } = opts;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`Batcher: bad batchSize ${batchSize}`);
    if (data.n < 1) throw new Error("Batcher: the split is empty");
    if (data.images.length !== data.n * data.rows * data.cols || data.labels.length !== data.n) {
      throw new Error(
        `Batcher: data sizes disagree (n=${data.n}, ${data.rows}×${data.cols}, ` +
          `${data.images.length} pixels, ${data.labels.length} labels)`,
      );
    }
    this.dropLast = opts.dropLast ?? true;
    if (this.dropLast && batchSize > data.n) {
      throw new Error(`Batcher: batchSize ${batchSize} exceeds the ${data.n} samples and dropLast is set`);
    }
    this.data = data;
    this.batchSize = batchSize;
    this.seed = seed >>> 0;
    this.augment = opts.augment;
    this.mean = opts.mean ?? FASHION_MNIST_MEAN;
    this.std = opts.std ?? FASHION_MNIST_STD;
    if (!(this.std > 0)) throw new Error(`Batcher: std must be > 0, got ${this.std}`);
    this.pad = opts.pad ?? 4;
    this.flipProb = opts.flipProb ?? 0.5;
    this.rng = new Rng(epochSeed(this.seed, -1));
    this.lut = new Float32Array(256);
    for (let v = 0; v < 256; v++) this.lut[v] = (v / 255 - this.mean) / this.std;
  }

  /** Training batches per epoch. */
  get batchesPerEpoch(): number {
    const { n } = this.data;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** Normalised value of a pixel byte. */
  normalise(v: number): number {
    return this.lut[v];
  }

  /** The shuffled sample order of an epoch. */
  epochOrder(epoch: number): Uint32Array {
    if (this.orderEpoch !== epoch || !this.order) {
      this.order = shuffledOrder(this.data.n, epochSeed(this.seed, epoch));
      this.orderEpoch = epoch;
    }
    return this.order;
  }

  /** The next training batch (shuffled; augmented when `augment`). */
  next(): Batch {
    const n = this.data.n;
    const left = n - this.cursor;
    if (left <= 0 || (this.dropLast && left < this.batchSize)) {
      this.epoch++;
      this.cursor = 0;
    }
    const order = this.epochOrder(this.epoch);
    const size = Math.min(this.batchSize, n - this.cursor);
    const idx = order.subarray(this.cursor, this.cursor + size);
    this.cursor += size;
    return { ...this.gather(idx, this.augment), size, epoch: this.epoch };
  }

  /**
   * Evaluation batches over the whole split in order, no augmentation. Every batch has batchSize
   * samples; the final one is filled up by repeating samples from the start, and `valid` says how many
   * are real. Does not touch the training state.
   */
  *evalBatches(): Generator<EvalBatch> {
    const n = this.data.n, B = this.batchSize;
    for (let start = 0; start < n; start += B) {
      const valid = Math.min(B, n - start);
      const idx = new Uint32Array(B);
      for (let i = 0; i < B; i++) idx[i] = (start + i) % n;
      yield { ...this.gather(idx, false), size: B, valid, epoch: this.epoch };
    }
  }

  /** The training position: pass it to restore() on a Batcher made with the same data and options. */
  state(): BatcherState {
    return { epoch: this.epoch, cursor: this.cursor, rng: this.rng.state };
  }

  restore(s: BatcherState): void {
    const ok = (v: unknown, max: number) =>
      typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= max;
    if (!s || !ok(s.epoch, 2 ** 31) || !ok(s.cursor, this.data.n) || !ok(s.rng, 0xffffffff)) {
      throw new Error(
        `Batcher.restore: bad state ${JSON.stringify(s)} (for a split of ${this.data.n} samples)`,
      );
    }
    this.epoch = s.epoch;
    this.cursor = s.cursor;
    this.rng.state = s.rng;
  }

  /** Builds [B,1,rows,cols] normalised images and labels for the given sample indices. */
  private gather(idx: Uint32Array, augment: boolean): { images: Float32Array; labels: Int32Array } {
    const { rows, cols, images: src, labels: lab } = this.data;
    const hw = rows * cols, lut = this.lut, pad = this.pad;
    const images = new Float32Array(idx.length * hw);
    const labels = new Int32Array(idx.length);
    for (let b = 0; b < idx.length; b++) {
      const s = idx[b];
      labels[b] = lab[s];
      const so = s * hw, o = b * hw;
      if (!augment) {
        for (let p = 0; p < hw; p++) images[o + p] = lut[src[so + p]];
        continue;
      }
      // crop offset in [-pad, pad] of the zero-padded image, then flip
      const dy = this.rng.int(2 * pad + 1) - pad;
      const dx = this.rng.int(2 * pad + 1) - pad;
      const flip = this.rng.next() < this.flipProb;
      for (let y = 0; y < rows; y++) {
        const sy = y + dy;
        for (let x = 0; x < cols; x++) {
          const xx = flip ? cols - 1 - x : x;
          const sx = xx + dx;
          const v = sy >= 0 && sy < rows && sx >= 0 && sx < cols ? src[so + sy * cols + sx] : 0;
          images[o + y * cols + x] = lut[v];
        }
      }
    }
    return { images, labels };
  }
}
