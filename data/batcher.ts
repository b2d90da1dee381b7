// One batcher for every dataset: seeded Fisher-Yates order per epoch, optional per-sample
// augmentation from a second seeded stream, exact resume through state()/restore(), and evaluation
// batches that walk a split in order with the final batch padded. A dataset plugs in as `Samples`:
// how many there are, their labels, and how to write sample i (augmented or not) into a batch.

import { Rng, shuffledOrder } from "../compiler/core/random.ts";

/** A labelled dataset as the Batcher sees it: n samples of `sampleSize` floats each. */
export interface Samples {
  /** Number of samples. */
  n: number;
  /** [n] class indices. */
  labels: ArrayLike<number>;
  /** Floats per sample in a batch (e.g. 1·28·28 for an image, P·3 for a point cloud). */
  sampleSize: number;
  /**
   * Writes sample i into `out` at `offset` (sampleSize floats). With `rng`, augments it, drawing
   * from rng in a fixed order per sample (so batches are reproducible and resumable).
   */
  write(i: number, out: Float32Array, offset: number, rng?: Rng): void;
}

/** Options of a Batcher. */
export interface BatcherOptions {
  /** Samples per batch (an integer ≥ 1). */
  batchSize: number;
  /** Seed of the shuffle and of the augmentation stream. */
  seed: number;
  /** Augment training batches (the Samples' own augmentation). */
  augment: boolean;
  /** Drop the last partial training batch of each epoch (default true); else it is returned short. */
  dropLast?: boolean;
  /** What the samples are, for error messages (e.g. "the train split of data/fashion-mnist-subset"). */
  name?: string;
}

/** A batch: the samples' floats back to back, and their labels. */
export interface Batch {
  /** [B, ...sample] floats. */
  x: Float32Array;
  /** [B] labels. */
  labels: Int32Array;
  /** Samples in the batch (B; the final batch of a non-dropLast epoch may be shorter). */
  size: number;
  /** Epoch this batch belongs to. */
  epoch: number;
}

/** An evaluation batch: always batchSize samples, of which the first `valid` are real. */
export interface EvalBatch extends Batch {
  /** How many leading samples are real; the rest repeat samples from the start of the split. */
  valid: number;
}

/** Everything needed to continue exactly where a Batcher was (with the same data, seed and options). */
export interface BatcherState {
  /** Current epoch. */
  epoch: number;
  /** Position in the epoch's shuffled order. */
  cursor: number;
  /** State of the augmentation random stream. */
  rng: number;
}

/** A well-mixed 32-bit seed from (seed, k): independent streams per epoch (k = -1: augmentation). */
export function mixSeed(seed: number, k: number): number {
  let h = (seed >>> 0) ^ Math.imul(k + 1, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Training and evaluation batches from one split. Training batches (`next()`) come in a fresh
 * Fisher-Yates shuffle each epoch (seeded from seed and epoch), augmented when asked from a second
 * seeded stream; `state()`/`restore()` resume exactly. `evalBatches()` walks the split in order,
 * unshuffled and unaugmented, padding the final batch.
 */
export class Batcher {
  /** The dataset. */
  readonly data: Samples;
  /** Samples per batch. */
  readonly batchSize: number;
  /** The seed (as a u32). */
  readonly seed: number;
  /** Whether training batches are augmented. */
  readonly augment: boolean;
  /** Whether each epoch's last partial batch is dropped. */
  readonly dropLast: boolean;
  private epoch = 0;
  private cursor = 0;
  private rng: Rng;
  private order: Uint32Array | undefined;
  private orderEpoch = -1;

  /** Checks the options against the data; throws naming the data (opts.name) and what is wrong. */
  constructor(data: Samples, opts: BatcherOptions) {
    const { batchSize, seed } = opts;
    const { n, sampleSize } = data;
    const what = `Batcher${opts.name ? ` over ${opts.name}` : ""}`;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`${what}: bad batchSize ${batchSize}`);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${what}: the split is empty (n=${n})`);
    if (!Number.isInteger(sampleSize) || sampleSize < 1) {
      throw new Error(`${what}: bad sampleSize ${sampleSize}`);
    }
    if (data.labels.length !== n) {
      throw new Error(`${what}: data sizes disagree (n=${n}, ${data.labels.length} labels)`);
    }
    this.dropLast = opts.dropLast ?? true;
    if (this.dropLast && batchSize > n) {
      throw new Error(`${what}: batchSize ${batchSize} exceeds the ${n} samples and dropLast is set`);
    }
    this.data = data;
    this.batchSize = batchSize;
    this.seed = seed >>> 0;
    this.augment = opts.augment;
    this.rng = new Rng(mixSeed(this.seed, -1));
  }

  /** Training batches per epoch. */
  get batchesPerEpoch(): number {
    const { n } = this.data;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** The shuffled sample order of an epoch. */
  epochOrder(epoch: number): Uint32Array {
    if (this.orderEpoch !== epoch || !this.order) {
      this.order = shuffledOrder(this.data.n, mixSeed(this.seed, epoch));
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

  /** Continues from a saved state(); throws on a state that cannot belong to this split. */
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

  /** Builds a batch of the given sample indices (augmented with the training stream when asked). */
  private gather(idx: Uint32Array, augment: boolean): { x: Float32Array; labels: Int32Array } {
    const d = this.data, S = d.sampleSize;
    const x = new Float32Array(idx.length * S);
    const labels = new Int32Array(idx.length);
    for (let b = 0; b < idx.length; b++) {
      labels[b] = d.labels[idx[b]];
      d.write(idx[b], x, b * S, augment ? this.rng : undefined);
    }
    return { x, labels };
  }
}
