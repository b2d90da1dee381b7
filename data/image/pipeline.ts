// The parallel input pipeline: decoding and transforms in a pool of Web Workers, batches prefetched a few
// ahead of the training step. It plugs into the one Batcher without changing it: the pipeline's Samples
// record which samples a batch wants (and draw one seed per sample from the Batcher's augmentation
// stream) instead of writing them; the loader sends them to the workers and fills the batch. Each
// sample's result depends only on its index and seed, so batches are the same bytes for any number of
// workers, in the main thread too (write() without a loader), and a resumed Batcher state continues them.
//
// A corrupt image stops the run with an error naming the file; with skipBad its slot takes the next good
// sample of the same batch (pixels and label), it is reported once through `warn`, and counted.

import type { Rng } from "../../compiler/core/random.ts";
import type { Batch, Batcher, BatcherState, EvalBatch, Samples } from "../batcher.ts";
import { initImageDecoders } from "./decode.ts";
import { datasetSize, type ImageDataset, type ImageItems, itemName, readItem } from "./dataset.ts";
import {
  type ImageTransformSpec,
  normalizationOf,
  sampleSizeOf,
  transformSample,
} from "./sample_transform.ts";

/** A job for one worker: samples (dataset indices) with their seeds (NaN: evaluation). */
export interface WorkerJob {
  /** Job id. */
  id: number;
  /** Dataset indices. */
  indices: Int32Array;
  /** Seed per sample; NaN for the eval transform. */
  seeds: Float64Array;
  /** Name per sample for error messages. */
  names: string[];
  /** In-memory datasets send the images along (per bytes each). */
  pixels?: { shape: { width: number; height: number; channels: 1 | 3 }; per: number; data: Uint8Array };
  /** A reply buffer coming back for reuse (transferred): the worker writes into it when it is big enough. */
  buffer?: ArrayBuffer;
}

/** A worker's answer: the samples' floats back to back, and [position, message] of failed samples. */
export interface WorkerReply {
  /** Job id. */
  id: number;
  /** Floats of the job's samples. */
  out: Float32Array;
  /** Failed samples. */
  errors: [number, string][];
}

/** Options of the pipeline. */
export interface ImagePipelineOptions {
  /** Worker threads (default: the number of cores). */
  workers?: number;
  /** Batches in flight ahead of the consumer (default 2). */
  prefetch?: number;
  /** Skip corrupt images (replaced within their batch) instead of failing. */
  skipBad?: boolean;
  /** Receives one warning per skipped file. */
  warn?: (message: string) => void;
}

type Done = { out: Float32Array; errors: [number, string][] };

/** A pool of workers that decode and transform samples; jobs queue until a worker is free. */
class WorkerPool {
  private workers: Worker[] = [];
  private idle: Worker[] = [];
  private queue: { job: WorkerJob; resolve: (d: Done) => void; reject: (e: Error) => void }[] = [];
  private pending = new Map<number, { resolve: (d: Done) => void; reject: (e: Error) => void; w: Worker }>();
  private nextId = 0;
  private failed: Error | undefined;
  // Reply buffers whose floats were copied into their batch, sent back with later jobs: a worker then
  // writes into memory already mapped instead of a new array per job (see ImagePipeline.recycle).
  private buffers: ArrayBuffer[] = [];

  constructor(count: number, items: ImageItems, spec: ImageTransformSpec) {
    // in-memory pixels travel with each job, not to every worker at start
    const shared = items.kind === "pixels" ? { ...items, pixels: new Uint8Array(0) } : items;
    for (let k = 0; k < count; k++) {
      const w = new Worker(new URL("./pipeline_worker.ts", import.meta.url), { type: "module" });
      w.onmessage = (e: MessageEvent) => this.finished(w, e.data as WorkerReply);
      w.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        this.fail(new Error(`image pipeline worker failed: ${e.message}`));
      };
      w.postMessage({ type: "init", items: shared, spec });
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  run(job: Omit<WorkerJob, "id">): Promise<Done> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.queue.push({ job: { ...job, id: this.nextId++ }, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.idle.length && this.queue.length) {
      const w = this.idle.pop()!, q = this.queue.shift()!;
      this.pending.set(q.job.id, { resolve: q.resolve, reject: q.reject, w });
      const buffer = this.buffers.pop();
      // transferred, not copied: the reuse buffer and an in-memory dataset's pixels (made for this job)
      const transfer: Transferable[] = [];
      if (buffer) transfer.push(buffer);
      if (q.job.pixels) transfer.push(q.job.pixels.data.buffer as ArrayBuffer);
      w.postMessage({ type: "job", ...q.job, buffer }, transfer);
    }
  }

  private finished(w: Worker, r: WorkerReply): void {
    const p = this.pending.get(r.id);
    this.pending.delete(r.id);
    this.idle.push(w);
    p?.resolve({ out: r.out, errors: r.errors });
    this.dispatch();
  }

  private fail(e: Error): void {
    this.failed = e;
    for (const p of this.pending.values()) p.reject(e);
    for (const q of this.queue) q.reject(e);
    this.pending.clear();
    this.queue = [];
  }

  /** Takes a reply buffer back once its floats are copied out. */
  giveBack(out: Float32Array): void {
    if (this.buffers.length < 2 * this.workers.length) this.buffers.push(out.buffer as ArrayBuffer);
  }

  close(): void {
    for (const w of this.workers) w.terminate();
    this.fail(new Error("image pipeline closed"));
    this.workers = [];
    this.idle = [];
  }
}

/**
 * An image dataset as Batcher samples, with a worker pool behind it. Used directly (write), samples
 * are made in the calling thread; through `loader()` / `evalBatches()`, in the workers with prefetch.
 * Call `close()` when done (it stops the workers).
 */
export class ImagePipeline implements Samples {
  /** Number of samples. */
  readonly n: number;
  /** Class index of each sample. */
  readonly labels: Int32Array;
  /** Floats per sample: chans × img × img. */
  readonly sampleSize: number;
  /** Files skipped as corrupt (skipBad), by name. */
  readonly skipped: Set<string> = new Set();
  private pool: WorkerPool | undefined;
  private spares: Float32Array[] = [];
  private recording: { idx: number[]; seeds: number[] } | undefined;

  /** Use `openImagePipeline` (it initialises the decoders the main-thread path needs). */
  constructor(
    readonly dataset: ImageDataset,
    readonly spec: ImageTransformSpec,
    readonly opts: ImagePipelineOptions = {},
  ) {
    normalizationOf(spec);
    if (!(Number.isInteger(spec.imgSize) && spec.imgSize >= 1)) {
      throw new Error(`--img: bad size ${spec.imgSize}`);
    }
    this.n = datasetSize(dataset);
    this.labels = dataset.labels;
    this.sampleSize = sampleSizeOf(spec);
  }

  /** Writes sample i (recording it instead while a loader plans a batch). One seed per sample from rng. */
  write(i: number, out: Float32Array, offset: number, rng?: Rng): void {
    const seed = rng ? rng.int(2 ** 32) : undefined;
    if (this.recording) {
      this.recording.idx.push(i);
      this.recording.seeds.push(seed ?? NaN);
      return;
    }
    const name = itemName(this.dataset.items, i, this.dataset.names);
    try {
      const S = this.sampleSize;
      transformSample(
        readItem(this.dataset.items, i),
        this.spec,
        seed,
        name,
        out.subarray(offset, offset + S),
      );
    } catch (e) {
      if (!this.opts.skipBad) throw e;
      // alone, a sample has no batch to borrow from: the next good sample of the dataset stands in
      this.noteBad(name, (e as Error).message);
      this.write((i + 1) % this.n, out, offset);
    }
  }

  /** Training batches from `batcher` (made over this pipeline), computed by the workers ahead of use. */
  loader(batcher: Batcher): PrefetchLoader {
    return new PrefetchLoader(batcher, this, this.opts.prefetch ?? 2);
  }

  /** The batcher's evaluation batches, computed by the workers with prefetch. */
  async *evalBatches(batcher: Batcher): AsyncGenerator<EvalBatch> {
    const it = batcher.evalBatches();
    const queue: { b: EvalBatch; done: Promise<void> }[] = [];
    const pull = () => {
      const r = this.planned(() => it.next());
      if (!r.value.done) queue.push({ b: r.value.value, done: this.fill(r.value.value, r.idx, r.seeds) });
      return !r.value.done;
    };
    while (queue.length < (this.opts.prefetch ?? 2) && pull());
    while (queue.length) {
      const h = queue.shift()!;
      await h.done;
      pull();
      yield h.b;
    }
  }

  /** Stops the workers. */
  close(): void {
    this.pool?.close();
    this.pool = undefined;
  }

  /** Runs `f` (a Batcher call) recording the samples it asks for. */
  planned<T>(f: () => T): { value: T; idx: number[]; seeds: number[] } {
    this.recording = { idx: [], seeds: [] };
    try {
      const value = f();
      return { value, ...this.recording };
    } finally {
      this.recording = undefined;
    }
  }

  /** Computes the recorded samples in the workers into batch.x (and patches labels of skipped ones). */
  fill(batch: Batch, idx: number[], seeds: number[]): Promise<void> {
    const done = this.compute(batch, idx, seeds);
    done.catch(() => {}); // a prefetched batch's error surfaces when it is awaited, not before
    return done;
  }

  /**
   * Takes back a batch's floats that its consumer no longer reads (PrefetchLoader.release): a later batch
   * of the same size is written into them instead of into the Batcher's new array. A new array of a
   * 64-image 224² batch is 38.5 MB that the kernel must map page by page on first write, which costs more
   * than writing already mapped memory many times over (Linux serves it from mmap: it is above malloc's
   * 32 MiB reuse limit), and it would all happen here, in the thread that feeds the GPU.
   */
  recycle(x: Float32Array): void {
    if (this.spares.length < 4 && !this.spares.includes(x)) this.spares.push(x);
  }

  private async compute(batch: Batch, idx: number[], seeds: number[]): Promise<void> {
    const items = this.dataset.items, S = this.sampleSize, B = idx.length;
    const spare = this.spares.findIndex((x) => x.length === batch.x.length);
    if (spare >= 0) batch.x = this.spares.splice(spare, 1)[0]; // every sample slot is overwritten below
    const workers = Math.max(1, this.opts.workers || navigator.hardwareConcurrency || 1);
    const pool = this.pool ??= new WorkerPool(workers, items, this.spec);
    // Small jobs (about 4 per worker per batch, at most 8 samples): a worker that drew cheap samples takes
    // the next job instead of idling while one slow job holds up the batch; a job costs two messages.
    const chunk = Math.max(1, Math.min(8, Math.ceil(B / (4 * workers))));
    const jobs: Promise<Done>[] = [];
    for (let s = 0; s < B; s += chunk) {
      const part = idx.slice(s, s + chunk);
      const job: Omit<WorkerJob, "id"> = {
        indices: Int32Array.from(part),
        seeds: Float64Array.from(seeds.slice(s, s + chunk)),
        names: part.map((i) => itemName(items, i, this.dataset.names)),
      };
      if (items.kind === "pixels") {
        const per = items.width * items.height * items.channels, data = new Uint8Array(part.length * per);
        part.forEach((i, k) => data.set(items.pixels.subarray(i * per, (i + 1) * per), k * per));
        job.pixels = {
          shape: { width: items.width, height: items.height, channels: items.channels },
          per,
          data,
        };
      }
      const p = pool.run(job);
      p.catch(() => {}); // awaited below; a failure after the first is not unhandled
      jobs.push(p);
    }
    const bad = new Set<number>();
    for (const [j, p] of jobs.entries()) {
      const r = await p;
      batch.x.set(r.out, j * chunk * S);
      pool.giveBack(r.out);
      for (const [k, msg] of r.errors) {
        if (!this.opts.skipBad) throw new Error(msg);
        bad.add(j * chunk + k);
        this.noteBad(itemName(items, idx[j * chunk + k], this.dataset.names), msg);
      }
    }
    if (bad.size === B) throw new Error(`every image of a batch is corrupt (${[...this.skipped][0]}, ...)`);
    for (const k of bad) {
      let from = (k + 1) % B;
      while (bad.has(from)) from = (from + 1) % B;
      batch.x.copyWithin(k * S, from * S, (from + 1) * S);
      batch.labels[k] = batch.labels[from];
    }
  }

  private noteBad(name: string, message: string): void {
    if (this.skipped.has(name)) return;
    this.skipped.add(name);
    this.opts.warn?.(`skipping a corrupt image: ${message}`);
  }
}

/**
 * Training batches of a Batcher over an ImagePipeline, `depth` batches computed ahead. `state()` is the
 * Batcher position after the last batch handed out (what a checkpoint stores; restore the Batcher to it
 * before making a loader to continue).
 */
export class PrefetchLoader {
  private queue: { batch: Batch; state: BatcherState; done: Promise<void> }[] = [];
  private last: BatcherState;

  /** Starts from the batcher's current state. */
  constructor(private batcher: Batcher, private pipe: ImagePipeline, private depth: number) {
    if (batcher.data !== pipe) throw new Error("PrefetchLoader: the Batcher must be made over this pipeline");
    this.last = batcher.state();
  }

  /** The next training batch (the same bytes Batcher.next() would write). */
  async next(): Promise<Batch> {
    this.top();
    const h = this.queue.shift()!;
    await h.done;
    this.last = h.state;
    this.top();
    return h.batch;
  }

  /**
   * Hands a batch returned by next() back once its floats are no longer read (e.g. uploaded to the GPU:
   * writeBuffer copies them at the call); a later batch reuses the array. Optional: without it every
   * batch gets a new array. The batch's `x` must not be read after this.
   */
  release(batch: Batch): void {
    this.pipe.recycle(batch.x);
  }

  /** The Batcher state after the last batch returned by next(). */
  state(): BatcherState {
    return { ...this.last };
  }

  private top(): void {
    while (this.queue.length < Math.max(1, this.depth)) {
      const r = this.pipe.planned(() => this.batcher.next());
      this.queue.push({
        batch: r.value,
        state: this.batcher.state(),
        done: this.pipe.fill(r.value, r.idx, r.seeds),
      });
    }
  }
}

/** An ImagePipeline over a dataset, with the decoders ready for the main-thread path. */
export async function openImagePipeline(
  dataset: ImageDataset,
  spec: ImageTransformSpec,
  opts: ImagePipelineOptions = {},
): Promise<ImagePipeline> {
  await initImageDecoders();
  return new ImagePipeline(dataset, spec, opts);
}
