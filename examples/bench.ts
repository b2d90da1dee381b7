// Named benchmark workloads (issue 6). Speed is measured here, never asserted in tests.
//
//   deno task bench                      # matmul-512/1024/2048, layer-step, vit-llm-step, stream
//   deno task bench --json               # one JSON object per line
//   deno task bench --only matmul-512,stream
//   deno task bench --gpu-suite          # + matmul-4096, matmul-8192, vit-s-llama7b-step (real GPU)
//
// Every record names the workload, the adapter and the date. Times are medians of several timed runs
// after warm-up; each timed run waits for completion (a result is read back). Matmul results are checked
// against an f64 CPU product on a few random entries, so a broken kernel cannot post a fast number.

import { compile, data, getGpu, type Gpu, Graph, io, models, nn, type Node, ops, train } from "../mod.ts";

const { matmul, mul, sub, mean, reshape, crossEntropy } = ops;
const { randn, Rng } = nn;

const flags = train.parseFlags("usage: deno task bench [flags]", {
  json: { type: "boolean", default: false, help: "print one JSON object per line instead of a table" },
  only: { type: "string", default: "", help: "comma-separated workload names to run" },
  quick: {
    type: "boolean",
    default: false,
    help: "fewer timed steps for the model workloads (automatic on llvmpipe)",
  },
  unfused: {
    type: "boolean",
    default: false,
    help: "model workloads without epilogue fusion, in-place ops or the fused optimizer (to measure them)",
  },
  "gpu-suite": {
    type: "boolean",
    default: false,
    help: "also matmul-4096, matmul-8192 and vit-s-llama7b-step (for a real GPU)",
  },
});

const DEFAULT = ["matmul-512", "matmul-1024", "matmul-2048", "layer-step", "vit-llm-step", "stream"];
const GPU_SUITE = ["matmul-4096", "matmul-8192", "vit-s-llama7b-step"];
/** Host-side workloads, run with --only (they measure the CPUs, not the adapter). */
const HOST = ["data-pipeline"];
const ALL = [...DEFAULT, ...GPU_SUITE, ...HOST];

let selected = flags["gpu-suite"] ? ALL : DEFAULT;
if (flags.only) {
  selected = flags.only.split(",").map((s) => s.trim()).filter(Boolean);
  const bad = selected.filter((w) => !ALL.includes(w));
  if (bad.length) {
    console.error(`--only: unknown workload(s) ${bad.join(", ")}; known: ${ALL.join(", ")}`);
    Deno.exit(2);
  }
}

const gpu = await getGpu();
const adapter = gpu.adapterName;
const software = /llvmpipe|lavapipe|swiftshader/i.test(adapter);
const quick = flags.quick || /llvmpipe/i.test(adapter);

type BenchRecord = {
  workload: string;
  adapter: string;
  date: string;
  ms: number;
  gflops?: number;
  imgPerSec?: number;
  gbps?: number;
  [k: string]: unknown;
};

const records: BenchRecord[] = [];

function emit(r: Omit<BenchRecord, "adapter" | "date">): void {
  const rec = { workload: r.workload, adapter, date: new Date().toISOString(), ...r } as BenchRecord;
  records.push(rec);
  if (flags.json) console.log(JSON.stringify(rec));
  else console.error(`  ${rec.workload}: ${rec.ms.toFixed(2)} ms${note(rec)}`);
}

function warn(msg: string): void {
  // warnings go to stderr so --json stdout stays one object per line
  console.error(`WARNING: ${msg}`);
}

function note(r: BenchRecord): string {
  if (r.gflops !== undefined) {
    return r.gflops >= 1000
      ? `, ${(r.gflops / 1000).toFixed(2)} TFLOP/s`
      : `, ${r.gflops.toFixed(1)} GFLOP/s`;
  }
  if (r.imgPerSec !== undefined) return `, ${r.imgPerSec.toFixed(1)} img/s`;
  if (r.gbps !== undefined) return `, ${r.gbps.toFixed(2)} GB/s`;
  return "";
}

function fmtRate(gflops: number): string {
  return gflops >= 1000 ? `${(gflops / 1000).toFixed(2)} TFLOP/s` : `${gflops.toFixed(1)} GFLOP/s`;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function timeRuns(warmup: number, reps: number, f: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await f();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await f();
    ts.push(performance.now() - t0);
  }
  return ts;
}

// ---------------------------------------------------------------------------------------------------
// matmul-N: f32 C = A·B, square

async function benchMatmul(n: number): Promise<void> {
  const g = new Graph();
  const a = g.input("a", [n, n]), b = g.input("b", [n, n]);
  const c = matmul(a, b);
  const exe = await compile([c], { gpu });
  const av = randn(11 + n, n * n), bv = randn(12 + n, n * n);
  exe.write(a, av);
  exe.write(b, bv);
  // on a software adapter a 2048³ product takes tens of seconds: one run, no warm-up (noted in the record)
  const [warmup, reps] = software ? (n >= 2048 ? [0, 1] : [1, 5]) : n >= 4096 ? [1, 5] : [3, 10];
  let last: Float32Array | undefined;
  const ts = await timeRuns(warmup, reps, async () => {
    last = (await exe.run([c]))[0] as Float32Array;
  });
  // correctness: a few random entries against an f64 product
  const rng = new Rng(n);
  let worst = 0;
  for (let s = 0; s < 16; s++) {
    const i = Math.floor(rng.next() * n), j = Math.floor(rng.next() * n);
    let ref = 0, mag = 0;
    for (let k = 0; k < n; k++) {
      const p = av[i * n + k] * bv[k * n + j];
      ref += p;
      mag += Math.abs(p);
    }
    worst = Math.max(worst, Math.abs(last![i * n + j] - ref) / (mag + 1e-30));
  }
  const ok = worst < 1e-4 && Number.isFinite(worst);
  if (!ok) warn(`matmul-${n}: result differs from the f64 CPU product (worst scaled error ${worst})`);
  // kernel throughput without the per-run readback: `k` runs submitted back to back, one wait
  // (skipped on software adapters, where the readback is a small part of the time anyway)
  let pipelinedMs: number | undefined;
  if (!software) {
    const k = 10;
    const t0 = performance.now();
    for (let i = 0; i < k - 1; i++) await exe.run([]);
    await exe.run([c]);
    pipelinedMs = (performance.now() - t0) / k;
  }
  const ms = median(ts);
  const flop = 2 * n ** 3;
  emit({
    workload: `matmul-${n}`,
    ms,
    gflops: flop / (ms * 1e6),
    runs: reps,
    warmup,
    checked: ok,
    worstScaledError: worst,
    pipelinedMs,
    pipelinedGflops: pipelinedMs ? flop / (pipelinedMs * 1e6) : undefined,
  });
  exe.destroy();
}

// ---------------------------------------------------------------------------------------------------
// layer-step: one training step of a pre-LN transformer layer, MSE loss, Adam

async function benchLayerStep(): Promise<void> {
  const B = 32, T = 50, D = 64;
  const g = new Graph();
  const x = g.input("x", [B, T, D]);
  const target = g.input("target", [B, T, D]);
  const y = nn.transformerBlock(g, x, "layer", { dim: D, heads: 4, mlpRatio: 4, causal: true, act: "relu" });
  const d = sub(y, target);
  const loss = mean(reshape(mul(d, d), [B * T * D]), 0, true);
  const trainer = await train.Trainer.create(loss, { gpu, lr: 1e-3, weightDecay: 0, ...planOpts });
  const feeds = new Map<Node, Float32Array>([[x, randn(21, B * T * D)], [target, randn(22, B * T * D)]]);
  let l = 0;
  const reps = software ? 5 : 10;
  const ts = await timeRuns(software ? 1 : 3, reps, async () => {
    l = (await trainer.step(feeds, 1e-3, true))!;
  });
  if (!Number.isFinite(l)) warn(`layer-step: loss is ${l}`);
  emit({
    workload: "layer-step",
    ms: median(ts),
    runs: reps,
    loss: l,
    kernels: trainer.exe.kernelCount,
    params: trainer.paramCount,
    peakMiB: +(trainer.exe.peakBytes / 2 ** 20).toFixed(1),
    ...(flags.unfused ? { plan: "unfused" } : {}),
    shape: `B=${B} T=${T} D=${D} heads=4 mlp=256 relu causal`,
  });
  trainer.exe.destroy();
}

// ---------------------------------------------------------------------------------------------------
// ViT + frozen LLM layer training steps

async function benchVitStep(
  workload: string,
  cfg: models.VitConfig,
  batch: number,
  llmDir: string,
  layer: number | "last",
  steps: number,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const ck = await io.openLlm(llmDir);
  const layers = [layer === "last" ? ck.cfg.layers - 1 : layer];
  const g = new Graph();
  const m = await models.buildVit(g, cfg, batch, { llm: { ck, layers }, seed: 0 });
  const labels = g.input("labels", [batch], "i32");
  const loss = crossEntropy(m.logits, labels);
  const trainer = await train.Trainer.create(loss, {
    ...planOpts,
    gpu,
    lr: 1e-3,
    weightDecay: 0.05,
    noDecay: models.vitNoDecay,
    weights: m.llm!.loader,
  });
  const rng = new Rng(5);
  const lab = new Int32Array(batch);
  for (let i = 0; i < batch; i++) lab[i] = Math.floor(rng.next() * cfg.classes);
  const feeds = new Map<Node, Float32Array | Int32Array>([
    [m.images, randn(31, batch * cfg.chans * cfg.img * cfg.img)],
    [labels, lab],
  ]);
  let l = 0;
  // on a software adapter a step takes a minute or more: no warm-up step there (pipelines are already
  // built by compile(), so the first step is not a compile step)
  const warmup = software ? 0 : 1;
  const ts = await timeRuns(warmup, steps, async () => {
    l = (await trainer.step(feeds, 1e-3, true))!;
  });
  if (!Number.isFinite(l)) warn(`${workload}: loss is ${l}`);
  const ms = median(ts);
  emit({
    workload,
    ms,
    imgPerSec: batch / (ms / 1000),
    runs: steps,
    warmup,
    batch,
    loss: l,
    kernels: trainer.exe.kernelCount,
    trainableParams: trainer.paramCount,
    peakMiB: +(trainer.exe.peakBytes / 2 ** 20).toFixed(1),
    llmLayer: layers[0],
    llmHidden: ck.cfg.hidden,
    streaming: trainer.exe.streaming,
    ...(flags.unfused ? { plan: "unfused" } : {}),
    ...extra,
  });
  trainer.exe.destroy();
  ck.src.close();
}

// ---------------------------------------------------------------------------------------------------
// stream: host → GPU upload bandwidth, queue.writeBuffer vs a ring of mapped staging buffers

async function benchStream(g: Gpu): Promise<void> {
  const dev = g.device;
  const MiB = 2 ** 20;
  const chunk = 16 * MiB, ringSize = 4;
  let size = 256 * MiB;
  const maxBuf = g.limits.maxBufferSize;
  const makeSrc = (n: number) => {
    const src = new Uint8Array(n);
    const w = new Uint32Array(src.buffer);
    let s = 0x9e3779b9;
    for (let i = 0; i < w.length; i++) w[i] = s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return src;
  };
  let src = makeSrc(size);
  let dst = dev.createBuffer({ size, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
  const viaWriteBuffer = async () => {
    dev.queue.writeBuffer(dst, 0, src.buffer as ArrayBuffer, 0, size);
    dev.queue.submit([]);
    await dev.queue.onSubmittedWorkDone();
  };
  let reason = "";
  if (size > maxBuf) {
    size = 64 * MiB;
    reason = `256 MiB exceeds maxBufferSize ${maxBuf}`;
  } else if (software) {
    const t0 = performance.now();
    await viaWriteBuffer();
    const s = (performance.now() - t0) / 1000;
    if (s > 1.5) reason = `one 256 MiB writeBuffer took ${s.toFixed(1)} s on this software adapter`;
  }
  if (reason) {
    size = 64 * MiB;
    dst.destroy();
    src = makeSrc(size);
    dst = dev.createBuffer({ size, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
    const msg = `stream: using 64 MiB instead of 256 MiB (${reason})`;
    if (!flags.json) console.error(`  ${msg}`);
  }

  // ring of mapped staging buffers
  const ring = Array.from({ length: ringSize }, () =>
    dev.createBuffer({
      size: chunk,
      usage: GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC,
      mappedAtCreation: true,
    }));
  const ready: (Promise<void> | null)[] = ring.map(() => null);
  const viaRing = async () => {
    for (let off = 0, i = 0; off < size; off += chunk, i++) {
      const slot = i % ringSize, st = ring[slot];
      if (ready[slot]) await ready[slot];
      const n = Math.min(chunk, size - off);
      new Uint8Array(st.getMappedRange(0, n)).set(src.subarray(off, off + n));
      st.unmap();
      const enc = dev.createCommandEncoder();
      enc.copyBufferToBuffer(st, 0, dst, off, n);
      dev.queue.submit([enc.finish()]);
      ready[slot] = st.mapAsync(GPUMapMode.WRITE); // resolves once the copy has run
    }
    await dev.queue.onSubmittedWorkDone();
  };
  const settle = () => Promise.all(ready.map((p) => p ?? Promise.resolve()));

  // verify the destination after one ring pass: a few 4 KiB windows, one across a chunk boundary
  await viaRing();
  await settle();
  const probe = dev.createBuffer({ size: 4096, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  let verified = true;
  for (const off of [0, chunk - 2048, size - 4096]) {
    const enc = dev.createCommandEncoder();
    enc.copyBufferToBuffer(dst, off, probe, 0, 4096);
    dev.queue.submit([enc.finish()]);
    await probe.mapAsync(GPUMapMode.READ);
    const got = new Uint8Array(probe.getMappedRange());
    for (let i = 0; i < 4096; i++) if (got[i] !== src[off + i]) verified = false;
    probe.unmap();
  }
  probe.destroy();
  if (!verified) warn("stream: the staging-ring upload did not reproduce the source bytes");

  const reps = software ? 5 : 7;
  const tw = await timeRuns(1, reps, viaWriteBuffer);
  const tr: number[] = [];
  for (let i = 0; i < reps + 1; i++) {
    await settle(); // every staging buffer mapped again before the clock starts
    const t0 = performance.now();
    await viaRing();
    if (i > 0) tr.push(performance.now() - t0);
  }
  await settle();
  const mw = median(tw), mr = median(tr);
  const gbW = size / (mw / 1000) / 1e9, gbR = size / (mr / 1000) / 1e9;
  const faster = gbR > gbW ? "staging-ring" : "writeBuffer";
  const common = {
    bytes: size,
    mib: size / MiB,
    reducedSize: reason ? `64 MiB instead of 256 MiB: ${reason}` : undefined,
    runs: reps,
    faster,
    ratio: +(Math.max(gbR, gbW) / Math.min(gbR, gbW)).toFixed(2),
  };
  emit({
    workload: "stream",
    ms: Math.min(mw, mr),
    gbps: Math.max(gbW, gbR),
    ...common,
    writeBufferGbps: gbW,
    writeBufferMs: mw,
    ringGbps: gbR,
    ringMs: mr,
    ring: `${ringSize} × ${chunk / MiB} MiB mapped staging (MAP_WRITE), copyBufferToBuffer`,
    verified,
  });
  for (const b of ring) b.destroy();
  dst.destroy();
}

// ---------------------------------------------------------------------------------------------------
// data-pipeline: images/s of 224×224 DeiT training batches (RandomResizedCrop, flip, RandAugment, erasing)
// decoded from ~500×375 JPEGs by the worker pipeline, for 1 and 2 workers (and all cores when more), the
// consumer handing each batch back (loader.release), and 2 workers once without.

async function benchDataPipeline(): Promise<void> {
  const photo = new URL("../tests/fixtures/images/jpeg/bench_500x375.jpg", import.meta.url).pathname;
  const dir = await Deno.makeTempDir({ prefix: "bench-jpegs-" });
  try {
    // 8 different photos from the fixture with ImageMagick (flips, rotations, crops rescaled, qualities);
    // without it, copies of the fixture
    const variants: string[] = [];
    const edits = [[], ["-flop"], ["-rotate", "180"], ["-crop", "400x300+50+40", "-resize", "500x375!"]];
    for (const [k, op] of edits.entries()) {
      for (const q of [75, 92]) {
        const out = `${dir}/v${k}_${q}.jpg`;
        try {
          const r = await new Deno.Command("convert", { args: [photo, ...op, "-quality", `${q}`, out] })
            .output();
          if (r.success) variants.push(out);
        } catch { /* no ImageMagick */ }
      }
    }
    if (!variants.length) variants.push(photo);
    for (let i = 0; i < 200; i++) {
      await Deno.mkdir(`${dir}/train/c${i % 2}`, { recursive: true });
      await Deno.copyFile(variants[i % variants.length], `${dir}/train/c${i % 2}/${i}.jpg`);
    }
    const ds = await data.image.openImageDataset(dir, "train");
    const cores = navigator.hardwareConcurrency;
    const batch = 64, batches = quick ? 6 : 12;
    // Each worker count with batches handed back (loader.release, so the next batch reuses their 38.5 MB),
    // and 2 workers without: then every batch is a new array whose first write maps it page by page.
    const runs = [...new Set([1, 2, cores])].map((workers) => ({ workers, release: true }));
    runs.splice(2, 0, { workers: 2, release: false });
    for (const { workers, release } of runs) {
      // prefetch 2, the pipeline's default and what training uses: the next batch's jobs queue behind this
      // one's, so no worker idles while the batch's slowest sample finishes
      const pipe = await data.image.openImagePipeline(ds, { imgSize: 224, chans: 3, augment: "deit" }, {
        workers,
        prefetch: 2,
      });
      try {
        const loader = pipe.loader(new data.Batcher(pipe, { batchSize: batch, seed: 0, augment: true }));
        const next = async () => {
          const b = await loader.next();
          if (release) loader.release(b);
        };
        // warm-up: workers start, WASM compiles, and each worker's JIT sees enough samples to optimise
        for (let i = 0; i < Math.max(2, Math.ceil((workers * 16) / batch)); i++) await next();
        // The rate counts from one batch's arrival to the last's: with batches prefetched, part of the first
        // timed batch was made before any clock starts, and each later arrival has the same head start.
        await next();
        const ts: number[] = [];
        const t0 = performance.now();
        for (let i = 0; i < batches; i++) {
          const t = performance.now();
          await next();
          ts.push(performance.now() - t);
        }
        const total = performance.now() - t0;
        emit({
          workload: "data-pipeline",
          ms: median(ts),
          imgPerSec: (batches * batch * 1000) / total,
          workers,
          cores,
          batch,
          batches,
          prefetch: 2,
          release,
          photos: variants.length,
          transform: "500×375 JPEG → DeiT train transform 224×224 (rand-m9-mstd0.5-inc1, reprob 0.25)",
        });
      } finally {
        pipe.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// ---------------------------------------------------------------------------------------------------

if (!flags.json) {
  console.error(
    `bench on ${adapter}${quick ? " (quick: fewer model steps)" : ""}; workloads: ${selected.join(", ")}`,
  );
}
/** --unfused: the plan as it was before fusion (for measuring what fusion buys). */
const planOpts = flags.unfused ? { fuse: false, inPlace: false, fused: false } : {};
const tStart = performance.now();
for (const w of selected) {
  try {
    if (w.startsWith("matmul-")) await benchMatmul(Number(w.slice(7)));
    else if (w === "layer-step") await benchLayerStep();
    else if (w === "vit-llm-step") {
      await benchVitStep(w, models.VIT_PRESETS["tiny-28"], 64, models.RANDOM_LLM, "last", quick ? 3 : 10, {
        model: "tiny-28",
        llm: "llama-tiny (last layer)",
      });
    } else if (w === "stream") await benchStream(gpu);
    else if (w === "data-pipeline") await benchDataPipeline();
    else if (w === "vit-s-llama7b-step") {
      const tmp = await Deno.makeTempDir({ prefix: "bench-llama7b-" });
      try {
        await io.writeRandomLlama(tmp, io.LLAMA_7B, { only: [31] });
        await benchVitStep(w, { ...models.VIT_PRESETS.small, classes: 1000 }, 64, tmp, 31, quick ? 3 : 5, {
          model: "small (ViT-S/16, 224×224×3, 1000 classes)",
          llm: "LLaMA-7B layer 31 shape, random bf16 weights",
        });
      } finally {
        await Deno.remove(tmp, { recursive: true });
      }
    }
  } catch (e) {
    warn(`${w} failed: ${(e as Error).message}`);
    if (flags.json) {
      console.log(
        JSON.stringify({ workload: w, adapter, date: new Date().toISOString(), error: (e as Error).message }),
      );
    }
  }
}

if (!flags.json) {
  const rows = records.map((r) => {
    let rate = "";
    if (r.gflops !== undefined) rate = fmtRate(r.gflops);
    else if (r.imgPerSec !== undefined) rate = `${r.imgPerSec.toFixed(1)} img/s`;
    else if (r.gbps !== undefined) rate = `${r.gbps.toFixed(2)} GB/s`;
    let detail = "";
    if (r.workload.startsWith("matmul-")) {
      detail = `${r.checked ? "checked vs f64" : "CHECK FAILED"}; ${r.runs} runs after ${r.warmup} warm-up` +
        (r.pipelinedMs !== undefined
          ? `; pipelined, no readback: ${(r.pipelinedMs as number).toFixed(2)} ms = ${
            fmtRate(r.pipelinedGflops as number)
          }`
          : "");
    } else if (r.workload === "data-pipeline") {
      detail =
        `${r.workers} worker(s) of ${r.cores} cores; ${r.batches} batches of ${r.batch}, prefetch ${r.prefetch}, ` +
        `${r.release ? "batches released for reuse" : "a new array per batch"}; ${r.transform}`;
    } else if (r.workload === "stream") {
      detail = `${r.mib} MiB: writeBuffer ${(r.writeBufferGbps as number).toFixed(2)} GB/s, ring ${
        (r.ringGbps as number).toFixed(2)
      } GB/s → ${r.faster} faster (×${r.ratio})${r.reducedSize ? ` [${r.reducedSize}]` : ""}`;
    } else detail = `loss ${(r.loss as number).toFixed(4)}, ${r.kernels} kernels/step, ${r.runs} runs`;
    return [r.workload, r.ms.toFixed(2), rate, detail];
  });
  const head = ["workload", "ms (median)", "rate", "notes"];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 3 ? c : c.padEnd(w[i]))).join("  ");
  console.log(`adapter: ${adapter}; date: ${new Date().toISOString()}`);
  console.log(line(head));
  console.log(line(w.map((n) => "-".repeat(n))));
  for (const r of rows) console.log(line(r));
  console.log(`total ${((performance.now() - tStart) / 1000).toFixed(1)} s`);
}
