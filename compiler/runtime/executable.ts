// The runtime: turn a Plan into GPU objects once, then replay it. Each run() is one command encoder,
// one compute pass and one queue.submit; nothing is read back unless asked.
//
// Frozen weights marked with a streamGroup take their values from a loader (WeightLoader). If they
// all fit the GPU memory budget they are loaded once and stay resident; otherwise they are streamed:
// run() submits one phase at a time and, while a phase runs, reads the next phase's group from disk
// and uploads it into the other of two slot buffers (double buffering; see compiler/lower.ts).

import { fromBf16, fromF16, toBf16, toF16 } from "../core/dtype.ts";
import { byteSize, type DType, fmtShape, type Node, numel } from "../core/ir.ts";
import { lower, type LowerOptions, type Plan } from "../lower/plan.ts";
import { getGpu, type Gpu } from "./device.ts";
import { checkHostValues, checkOptions, checkRange } from "./checks.ts";
import { PipelineBuilder } from "./pipelines.ts";
import { checkBindings, reflectShader } from "./reflect.ts";

/** Host-side tensor values as written to and read from the GPU (f16/bf16 nodes read back as f32). */
export type HostArray = Float32Array | Int32Array | Uint32Array;

/** The host→GPU path of streamed weights (CompileOptions.upload). */
export type UploadPath = "write-buffer" | "staging-ring";

/** Values of streamable frozen params, one group at a time (16-bit weights as raw u16 words). */
export type WeightLoader = (
  group: number,
  nodes: readonly Node[],
) => Promise<Map<Node, HostArray | Uint16Array>>;

/** Options of compile(): lowering options plus where and how the plan runs. */
export interface CompileOptions {
  /** @internal Lowering facts of the device (default: the gpu's); tests force kernel variants with it. */
  ctx?: LowerOptions["ctx"];
  /** Largest single binding (default: the device's maxStorageBufferBindingSize). */
  maxBindingBytes?: number;
  /** Fuse matmul epilogues (bias + activation, residual add). Default true. */
  fuse?: boolean;
  /** Let elementwise ops overwrite an input that dies at them. Default true. */
  inPlace?: boolean;
  /** In-place update nodes (optimizer steps) to run after the outputs. */
  effects?: readonly Node[];
  /** The device to build on (default: the process-wide getGpu()). */
  gpu?: Gpu;
  /** Loads params that have a streamGroup (required when the graph has any). */
  weights?: WeightLoader;
  /** Bytes of GPU memory the streamable frozen weights may take; above it they are streamed. */
  gpuMemoryBudget?: number;
  /** "auto" (default): stream only when over the budget. */
  stream?: "auto" | "always" | "never";
  /**
   * How streamed weights reach the GPU: `queue.writeBuffer`, or a mapped staging buffer per slot
   * copied with copyBufferToBuffer. "auto" (default) is writeBuffer, the faster path in every
   * measurement of a streaming job (BENCHMARKS.md): on the H200 raw uploads ran at 3.45 vs
   * 0.019 GB/s (mapAsync is slow there); on lavapipe raw uploads favour the staging buffers (1.50 vs
   * 0.98 GB/s) but a streamed step is no faster with them (808–847 vs 815–832 ms), because re-mapping a
   * slot's staging buffer waits for the phases queued before its last copy, where writeBuffer never
   * blocks the host.
   */
  upload?: UploadPath | "auto";
}

let building: Promise<void> = Promise.resolve();

/** Compile outputs (and side effects) of a graph into an executable plan on the GPU. */
export async function compile(outputs: readonly Node[], opts: CompileOptions = {}): Promise<Executable> {
  checkOptions(opts);
  const gpu = opts.gpu ?? await getGpu();
  const lowerOpts = {
    ctx: opts.ctx ?? gpu.lowerCtx,
    maxBindingBytes: opts.maxBindingBytes ?? gpu.limits.maxStorageBufferBindingSize,
    fuse: opts.fuse,
    inPlace: opts.inPlace,
  };
  let plan = lower(outputs, opts.effects ?? [], lowerOpts);
  const streamable = plan.order.filter((n) => n.streamGroup !== undefined);
  if (streamable.length) {
    if (!opts.weights) {
      throw new Error(
        `compile: ${streamable[0]} and ${
          streamable.length - 1
        } more are streamable weights; pass a weights loader`,
      );
    }
    const residentBytes = streamable.reduce((s, n) => s + byteSize(n.shape, n.dtype), 0);
    const budget = opts.gpuMemoryBudget ?? Infinity;
    const mode = opts.stream ?? "auto";
    if (mode === "always" || (mode === "auto" && residentBytes > budget)) {
      plan = lower(outputs, opts.effects ?? [], { ...lowerOpts, stream: true });
      const need = 2 * plan.stream!.slotBytes;
      if (need > budget) {
        throw new Error(
          `compile: a GPU memory budget of ${budget} bytes cannot hold the two streaming slots ` +
            `(2 × ${plan.stream!.slotBytes} bytes, the largest streamed group); the frozen weights need ` +
            `${need} bytes streamed or ${residentBytes} bytes resident`,
        );
      }
    }
  }
  const upload = !opts.upload || opts.upload === "auto" ? "write-buffer" : opts.upload;
  const exe = new Executable(gpu, plan, opts.weights, upload);
  // one build at a time: error scopes belong to the device, so concurrent builds would pop each
  // other's errors
  const build = building.then(() => exe.init());
  building = build.catch(() => {});
  try {
    await build;
  } catch (e) {
    exe.destroy();
    throw e;
  }
  return exe;
}

/**
 * A compiled plan on the GPU: buffers, pipelines and bind groups made once, replayed by run(). Made by
 * compile(); destroy() frees its buffers, after which every call fails.
 */
export class Executable {
  /** The device the plan runs on. */
  readonly device: GPUDevice;
  private buffers: GPUBuffer[] = [];
  private pipelines: GPUComputePipeline[] = [];
  private bindGroups: GPUBindGroup[] = [];
  private staging = new Map<string, GPUBuffer[]>();
  /** Staging buffers with a copy recorded whose read has not finished yet. */
  private pendingStage = new Set<GPUBuffer>();
  /** Number of runs submitted (a refused run, e.g. one asked to read an intermediate, is not counted). */
  steps = 0;
  /** Streaming statistics: bytes uploaded and seconds spent reading + uploading them. */
  readonly streamStats = { bytes: 0, seconds: 0, uploads: 0 };
  /** Which group each slot holds now (streaming), to skip an upload when it is already there. */
  private slotHolds: [number, number] = [-1, -1];

  /** Streaming with "staging-ring": one mappable buffer per slot, and when each is mapped again. */
  private slotStaging: (GPUBuffer | undefined)[] = [undefined, undefined];
  private slotStagingReady: (Promise<void> | undefined)[] = [undefined, undefined];
  private destroyed = false;
  /**
   * Settles once every queued operation has been handed to the GPU queue; undefined when nothing is
   * queued. A streamed run submits its phases over many host turns; writes, reads and runs called
   * meanwhile wait here, so each applies in call order (see ordered()).
   */
  private pending: Promise<void> | undefined;

  /** Wraps a plan; compile() calls this and then init(). */
  constructor(
    /** The GPU the plan is built on. */
    readonly gpu: Gpu,
    /** @internal The lowered plan (dispatches, buffers, storage of each node); tests inspect it. */
    readonly plan: Plan,
    private readonly loader?: WeightLoader,
    /** How streamed weights are uploaded (see CompileOptions.upload). */
    readonly uploadPath: UploadPath = "write-buffer",
  ) {
    this.device = gpu.device;
  }

  /** True when this plan streams frozen weights. */
  get streaming(): boolean {
    return this.plan.stream !== undefined;
  }

  /** Creates buffers, pipelines and bind groups, and uploads initial values. Called by compile(). */
  async init(): Promise<void> {
    const dev = this.device;
    const maxBuf = this.gpu.limits.maxBufferSize;
    dev.pushErrorScope("out-of-memory");
    dev.pushErrorScope("validation");
    let verr: GPUError | null = null, oom: GPUError | null = null;
    const pipes = new PipelineBuilder(dev);
    try {
      for (const b of this.plan.buffers) {
        if (b.bytes > maxBuf) {
          throw new Error(
            `runtime: buffer of ${b.bytes} bytes (${b.owner ?? "pooled"}) exceeds maxBufferSize ${maxBuf}`,
          );
        }
        this.buffers.push(dev.createBuffer({
          size: Math.ceil(b.bytes / 16) * 16,
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
          label: b.owner ? `${b.owner}` : b.arena ? `arena of ${b.arena[0]}` : `pool${b.id}`,
        }));
      }
      for (const d of this.plan.dispatches) {
        const info = reflectShader(d.code, d.entry, d.label);
        checkBindings(d.label, info, d.bindings);
        const pipe = await pipes.get(d.code, d.entry, d.label, info, `${d.node}`);
        this.pipelines.push(pipe);
        const byName = new Map(info.bindings.map((b) => [b.name, b.binding]));
        this.bindGroups.push(dev.createBindGroup({
          label: d.label,
          layout: pipe.getBindGroupLayout(0),
          entries: d.bindings.map((b) => ({
            binding: byName.get(b.name)!,
            resource: { buffer: this.buffers[b.buffer], offset: b.offset, size: Math.ceil(b.bytes / 4) * 4 },
          })),
        }));
      }
    } finally {
      // always pop, so a failed build leaves no error scope behind on the shared device
      verr = await dev.popErrorScope();
      oom = await dev.popErrorScope();
    }
    if (oom) {
      throw new Error(
        `runtime: out of GPU memory building the plan (${this.plan.peakBytes} bytes): ${oom.message}`,
      );
    }
    if (verr) throw new Error(`runtime: WebGPU validation error building the plan: ${verr.message}`);
    pipes.commit();
    if (this.loader && !this.plan.stream) {
      // resident: every streamable group is loaded once, into the params' own buffers
      const groups = new Map<number, Node[]>();
      for (const n of this.plan.order) {
        if (n.streamGroup !== undefined) groups.set(n.streamGroup, [...(groups.get(n.streamGroup) ?? []), n]);
      }
      for (const [g, nodes] of groups) {
        const data = await this.loader(g, nodes);
        for (const n of nodes) {
          const v = data.get(n);
          if (!v) throw new Error(`runtime: the weights loader gave no data for ${n} (group ${g})`);
          this.writeRaw(n, v);
        }
      }
    }
    for (const b of this.plan.buffers) {
      for (const n of b.arena ?? (b.owner ? [b.owner] : [])) {
        if (n.init !== undefined) {
          const data = typeof n.init === "function" ? n.init(numel(n.shape)) : n.init;
          this.writeRaw(n, data);
        }
      }
    }
  }

  /** Number of compute dispatches one run() records. */
  get kernelCount(): number {
    return this.plan.dispatches.length;
  }

  /** Bytes of GPU memory this executable allocates: the sum of all its plan's buffers. */
  get peakBytes(): number {
    return this.plan.peakBytes;
  }

  /** The buffer holding n's value (its arena or its own). */
  private bufferOf(n: Node): GPUBuffer {
    this.live();
    const id = this.plan.storage.get(n);
    if (id === undefined && this.plan.stream?.offsets.has(n)) {
      throw new Error(`runtime: ${n} is streamed (it lives in a slot only while its layer runs)`);
    }
    if (id === undefined) {
      throw new Error(`runtime: ${n} is not part of this plan (not an output or live input)`);
    }
    return this.buffers[id];
  }

  /** Where n's value starts in its buffer (non-zero inside an arena, see Plan.offsets). */
  private offsetOf(n: Node): number {
    return this.plan.offsets.get(n) ?? 0;
  }

  /**
   * Uploads data into an input/param/state node. f16/bf16 nodes take f32 data (converted) or raw u16
   * words (a Uint16Array, refused for other dtypes). i32/u32 nodes refuse values they cannot hold, and
   * an input with a valueRange (e.g. crossEntropy labels) refuses values outside it; all checked here,
   * synchronously. Writes apply in call order with runs: a write made while an earlier run() is still
   * submitting (streamed plans) is held until that run's work is queued, so it feeds the next run only.
   */
  write(n: Node, data: HostArray | Uint16Array | readonly number[]): void {
    this.live();
    if (!n.persistent) {
      throw new Error(`runtime: cannot write ${n}: only inputs, params and state can be written`);
    }
    const bytes = this.encodeFor(n, data);
    if (!this.pending) return this.upload(n, bytes);
    const copy = bytes.slice(); // the caller may reuse its array before the held write applies
    this.ordered(() => {
      if (!this.destroyed) this.upload(n, copy);
    });
  }

  /** Uploads a value into n's buffer now; any node of the plan, raw u16 words for 16-bit dtypes. */
  private writeRaw(n: Node, data: HostArray | Uint16Array): void {
    this.upload(n, this.encodeFor(n, data));
  }

  /** Checks data against n (count, dtype, valid range) and encodes it as GPU bytes. */
  private encodeFor(n: Node, data: HostArray | Uint16Array | readonly number[]): Uint8Array {
    this.bufferOf(n); // refuses nodes without storage before looking at the data
    const count = numel(n.shape);
    if (data.length !== count) {
      throw new Error(`runtime: ${n} holds ${count} values ${fmtShape(n.shape)}, got ${data.length}`);
    }
    const bytes = encode(n.dtype, data, n);
    if (n.valueRange) checkRange(n, data);
    return bytes;
  }

  /** Queues already-checked bytes into n's buffer (queue order: after work submitted before it). */
  private upload(n: Node, bytes: Uint8Array): void {
    this.device.queue.writeBuffer(
      this.bufferOf(n),
      this.offsetOf(n),
      bytes.buffer as ArrayBuffer,
      bytes.byteOffset,
      bytes.byteLength,
    );
  }

  /**
   * Runs op after every operation queued before it (at once when none is), as a promise: a throw
   * becomes a rejection. `submitting` marks an op that hands work to the GPU over several host turns
   * (a streamed run); later operations queue behind it until it is done.
   */
  private ordered<T>(op: () => T | Promise<T>, submitting = false): Promise<T> {
    const prev = this.pending;
    const result = prev ? prev.then(op) : new Promise<T>((resolve) => resolve(op()));
    if (prev || submitting) {
      const tail = result.then(() => {}, () => {});
      this.pending = tail;
      tail.then(() => {
        if (this.pending === tail) this.pending = undefined;
      });
    }
    result.catch(() => {}); // a held write has no caller to reject to; callers of run/read see it
    return result;
  }

  /**
   * Records every dispatch into one encoder and submits it once (a streamed plan: one submission per
   * phase). Optionally copies nodes out for reading. Runs, writes and reads take effect in call order,
   * awaited or not: a run sees exactly the writes made before it. Never throws: a bad call rejects.
   */
  run(read: readonly Node[] = []): Promise<HostArray[]> {
    const streamed = this.plan.stream !== undefined;
    const stages = this.ordered(() => {
      this.live();
      for (const n of read) this.checkReadable(n); // before anything is submitted
      return streamed ? this.submitStreamed(read) : this.submitResident(read);
    }, streamed);
    return stages.then((st) => Promise.all(st.map((s, k) => this.finishRead(read[k], s))));
  }

  /** One encoder, one submission: every dispatch, then the copies out for reading. */
  private submitResident(read: readonly Node[]): GPUBuffer[] {
    const enc = this.device.createCommandEncoder();
    this.encode(enc, 0, this.plan.dispatches.length);
    const stages = read.map((n, i) => this.copyOut(enc, n, i));
    this.device.queue.submit([enc.finish()]);
    this.steps++;
    return stages;
  }

  /**
   * Streamed run: phase i's group must be in slot i % 2. The next group is read from disk while the
   * GPU works on the current phase, then queued for upload behind it (queue order keeps a slot from
   * being overwritten before the phase that reads it has run).
   */
  private async submitStreamed(read: readonly Node[]): Promise<GPUBuffer[]> {
    const sp = this.plan.stream!;
    const fetch = async (i: number) => {
      const slot = i % 2, group = sp.phases[i].group;
      if (this.slotHolds[slot] === group) return undefined;
      const t0 = performance.now();
      const nodes = sp.groups.get(group)!;
      const data = await this.loader!(group, nodes);
      return { slot, group, nodes, data, t0 };
    };
    const upload = async (f: Awaited<ReturnType<typeof fetch>>) => {
      if (!f) return;
      this.live(); // destroy() during the read: its buffers are gone
      const buf = this.buffers[sp.slots[f.slot]];
      const encoded = f.nodes.map((n) => {
        const v = f.data.get(n);
        if (!v) throw new Error(`runtime: the weights loader gave no data for ${n} (group ${f.group})`);
        return encode(n.dtype, v, n);
      });
      if (this.uploadPath === "write-buffer") {
        f.nodes.forEach((n, k) => {
          const bytes = encoded[k];
          this.device.queue.writeBuffer(
            buf,
            sp.offsets.get(n)!,
            bytes.buffer as ArrayBuffer,
            bytes.byteOffset,
            bytes.byteLength,
          );
        });
      } else {
        await this.uploadStaged(f.slot, buf, f.nodes.map((n) => sp.offsets.get(n)!), encoded);
      }
      for (const bytes of encoded) this.streamStats.bytes += bytes.byteLength;
      this.streamStats.seconds += (performance.now() - f.t0) / 1000;
      this.streamStats.uploads++;
      this.slotHolds[f.slot] = f.group;
    };
    await upload(await fetch(0));
    this.live();
    let stages: GPUBuffer[] = [];
    for (let i = 0; i < sp.phases.length; i++) {
      this.live(); // destroy() between phases: stop instead of dispatching on freed buffers
      const enc = this.device.createCommandEncoder();
      this.encode(enc, sp.phases[i].start, sp.phases[i].end);
      const last = i === sp.phases.length - 1;
      if (last) stages = read.map((n, k) => this.copyOut(enc, n, k));
      this.device.queue.submit([enc.finish()]);
      if (!last) await upload(await fetch(i + 1));
    }
    this.steps++;
    return stages;
  }

  /**
   * Writes a group's tensors into the slot's mapped staging buffer at their offsets, then queues a
   * copy into the slot (behind the phases already submitted, like writeBuffer) and maps the staging
   * buffer again for the next time; that map resolves once the copy has run.
   */
  private async uploadStaged(
    slot: number,
    dst: GPUBuffer,
    offsets: number[],
    data: Uint8Array[],
  ): Promise<void> {
    const sp = this.plan.stream!;
    let st = this.slotStaging[slot];
    if (!st) {
      st = this.device.createBuffer({
        size: sp.slotBytes,
        usage: GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC,
        mappedAtCreation: true,
        label: `stream staging ${slot}`,
      });
      this.slotStaging[slot] = st;
    } else {
      await this.slotStagingReady[slot];
    }
    const mapped = new Uint8Array(st.getMappedRange());
    let end = 0;
    data.forEach((bytes, k) => {
      mapped.set(bytes, offsets[k]);
      end = Math.max(end, offsets[k] + bytes.byteLength);
    });
    st.unmap();
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(st, 0, dst, 0, Math.ceil(end / 4) * 4);
    this.device.queue.submit([enc.finish()]);
    const ready = st.mapAsync(GPUMapMode.WRITE);
    ready.catch(() => {}); // destroy() may abort it; a later await still sees a real failure
    this.slotStagingReady[slot] = ready;
  }

  /** Records dispatches [start, end) into one compute pass. */
  private encode(enc: GPUCommandEncoder, start: number, end: number): void {
    const pass = enc.beginComputePass();
    const ds = this.plan.dispatches;
    for (let i = start; i < end; i++) {
      pass.setPipeline(this.pipelines[i]);
      pass.setBindGroup(0, this.bindGroups[i]);
      const [x, y, z] = ds[i].workgroups;
      pass.dispatchWorkgroups(x, y, z);
    }
    pass.end();
  }

  /**
   * Times each dispatch on its own (submit + wait per kernel; slow, for finding hot spots, not for
   * benchmarks). Resident plans only.
   */
  async profile(): Promise<{ label: string; node: string; ms: number }[]> {
    this.live();
    if (this.plan.stream) throw new Error("runtime: profile() needs a resident plan");
    await this.device.queue.onSubmittedWorkDone(); // earlier work must not be billed to kernel 0
    const out = [];
    for (let i = 0; i < this.plan.dispatches.length; i++) {
      const t0 = performance.now();
      const enc = this.device.createCommandEncoder();
      this.encode(enc, i, i + 1);
      this.device.queue.submit([enc.finish()]);
      await this.device.queue.onSubmittedWorkDone();
      const d = this.plan.dispatches[i];
      out.push({ label: d.label, node: `${d.node}`, ms: performance.now() - t0 });
    }
    return out;
  }

  /**
   * Reads any live node (persistent, or an output of the plan) back to the host as f32/i32/u32, as it
   * is after every run and write called before this read.
   */
  read(n: Node): Promise<HostArray> {
    return this.ordered(() => {
      this.live();
      this.checkReadable(n);
      const enc = this.device.createCommandEncoder();
      const s = this.copyOut(enc, n, 0);
      this.device.queue.submit([enc.finish()]);
      return s;
    }).then((s) => this.finishRead(n, s));
  }

  /** Refuses nodes that have no value to read after a run (intermediates, streamed weights). */
  private checkReadable(n: Node): void {
    if (!n.persistent && !this.plan.outputs.includes(n)) {
      throw new Error(`runtime: ${n} is an intermediate; list it in compile()'s outputs to read it`);
    }
    this.bufferOf(n);
  }

  /** Records a copy of n into a free staging buffer (the slot-th read of this submission). */
  private copyOut(enc: GPUCommandEncoder, n: Node, slot: number): GPUBuffer {
    const bytes = Math.ceil(byteSize(n.shape, n.dtype) / 4) * 4;
    // staging buffers are kept per (size, slot) and reused once their previous read has finished
    const key = `${bytes}:${slot}`;
    const pool = this.staging.get(key) ?? [];
    this.staging.set(key, pool);
    let st = pool.find((b) => b.mapState === "unmapped" && !this.pendingStage.has(b));
    if (!st) {
      st = this.device.createBuffer({
        size: bytes,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      pool.push(st);
    }
    this.pendingStage.add(st);
    enc.copyBufferToBuffer(this.bufferOf(n), this.offsetOf(n), st, 0, bytes);
    return st;
  }

  /** Maps a staging buffer and decodes n's value from it. */
  private async finishRead(n: Node, st: GPUBuffer): Promise<HostArray> {
    await st.mapAsync(GPUMapMode.READ);
    const raw = st.getMappedRange().slice(0);
    st.unmap();
    this.pendingStage.delete(st);
    return decode(n.dtype, raw, numel(n.shape));
  }

  /** Frees the GPU buffers; later calls of run, read, write or profile throw. Idempotent. */
  destroy(): void {
    this.destroyed = true;
    for (const b of this.buffers) b.destroy();
    for (const pool of this.staging.values()) for (const b of pool) b.destroy();
    for (const b of this.slotStaging) b?.destroy();
    this.buffers = [];
  }

  /** Throws once destroy() has run. */
  private live(): void {
    if (this.destroyed) {
      throw new Error("runtime: this executable was destroyed (destroy() frees its buffers)");
    }
  }
}

/** Host → GPU bytes for a dtype. f32 data into f16/bf16 nodes is rounded to nearest even. */
export function encode(
  dtype: DType,
  data: HostArray | Uint16Array | readonly number[],
  n?: Node,
): Uint8Array {
  checkHostValues(n ?? dtype, dtype, data);
  switch (dtype) {
    case "f32":
      if (data instanceof Float32Array) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      return new Uint8Array(Float32Array.from(data as ArrayLike<number>).buffer);
    case "i32":
      if (data instanceof Int32Array) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      return new Uint8Array(Int32Array.from(data as ArrayLike<number>).buffer);
    case "u32":
      if (data instanceof Uint32Array) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      return new Uint8Array(Uint32Array.from(data as ArrayLike<number>).buffer);
    case "f16":
    case "bf16": {
      if (data instanceof Uint16Array && data.length % 2 === 0) {
        return new Uint8Array(data.buffer, data.byteOffset, data.byteLength); // raw words: no copy
      }
      const words = new Uint16Array(Math.ceil(data.length / 2) * 2);
      if (data instanceof Uint16Array) words.set(data);
      else {
        const f = Float32Array.from(data as ArrayLike<number>);
        for (let i = 0; i < f.length; i++) words[i] = dtype === "bf16" ? toBf16(f[i]) : toF16(f[i]);
      }
      return new Uint8Array(words.buffer);
    }
  }
}

/** GPU → host: `count` values of a dtype from raw bytes (f16/bf16 widened to f32). */
export function decode(dtype: DType, raw: ArrayBuffer, count: number): HostArray {
  switch (dtype) {
    case "f32":
      return new Float32Array(raw, 0, count);
    case "i32":
      return new Int32Array(raw, 0, count);
    case "u32":
      return new Uint32Array(raw, 0, count);
    case "f16":
    case "bf16": {
      const w = new Uint16Array(raw, 0, count);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dtype === "bf16" ? fromBf16(w[i]) : fromF16(w[i]);
      return out;
    }
  }
}
