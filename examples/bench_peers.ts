// Side-by-side with a peer WebGPU framework: the workloads of examples/bench.ts on TensorFlow.js's
// WebGPU backend (@tensorflow/tfjs-backend-webgpu 4.22) and on this engine, in one process on one
// adapter. tfjs opens its own GPUDevice, ours comes from getGpu(); both ask for the same
// (high-performance) adapter.
//
//   deno task bench-peers                       (a table: workload, ours, tfjs-webgpu, ratio)
//   deno task bench-peers --json                (one JSON object per workload per line)
//   deno task bench-peers --workloads matmul-512,layer-step --target-ms 3000
//
// Workloads (identical inputs on both sides, generated here):
//   matmul-512/1024/2048  f32 C = A·B, square; each timed call includes reading C back to the host.
//   layer-step            one training step of a pre-LayerNorm transformer layer: B=32, T=50, D=64,
//                         4 heads, causal, MLP 64→256→64 ReLU, residuals, MSE vs a random target,
//                         Adam(lr 1e-3, β 0.9/0.999, eps 1e-8, no weight decay); forward + backward +
//                         update, the loss read back. Both sides start from the same weights, so the
//                         first step's losses must agree (printed as a check).
// Timing: `--warmup` untimed calls per side (tfjs first), then N timed calls per side, N = clamp(
// target-ms / slower side's warm-up call, min-reps 5, max-reps), alternating tfjs/ours call by call so
// that load from other processes on a shared machine hits both sides (--sequential: all tfjs, then all
// ours); the median is reported. Ratio = tfjs ms / ours ms (> 1: ours is faster by that factor).
// `--budget-s` (default 240) skips a matmul whose time, predicted from the smaller ones, would not fit
// (matmul-2048 on lavapipe). Our side mirrors examples/bench.ts (which exports nothing to import):
// graph + compile for matmul, transformerBlock + AdamW(weightDecay 0) for layer-step, the batch
// written each step as Trainer.step does; tfjs uploads its batch each step too.
//
// On the GPU machine (no npm registry there): `deno bundle --minify examples/bench_peers.ts -o
// .device/bench_peers.js` (about 1.8 MB, runs as-is with `deno run -A .device/bench_peers.js`).

import * as tf from "@tensorflow/tfjs-core";
// tfjs-core's node entry (the one Deno loads) registers no gradients, and its ESM register_all_gradients
// uses extensionless imports Deno cannot resolve; the union package's node bundle carries them and
// registers them into the same global registry (imported for that side effect only; the backend is
// set to webgpu and checked below).
import "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-webgpu";
import { compile, type Executable, getGpu, grad, Graph, nn, type Node, ops, train } from "../mod.ts";

const { matmul, mul, scale, sub, sumAll } = ops;
const { AdamW, randn, transformerBlock } = nn;
const { num, parseFlags } = train;

// in the order they run (cheapest first, so the time budget drops the largest); printed as listed here
const ALL = ["matmul-512", "matmul-1024", "matmul-2048", "layer-step"];
const RUN_ORDER = ["matmul-512", "matmul-1024", "layer-step", "matmul-2048"];

const flags = parseFlags("usage: deno run -A examples/bench_peers.ts [flags]", {
  json: { type: "boolean", default: false, help: "one JSON object per workload per line (no table)" },
  workloads: { type: "string", default: ALL.join(","), help: "comma-separated subset" },
  warmup: {
    type: "string",
    default: "auto",
    help: "untimed calls per side (auto: 1 on a software adapter, else 2)",
  },
  "min-reps": { type: "string", default: "5", help: "fewest timed calls per side" },
  "max-reps": { type: "string", default: "50", help: "most timed calls per side" },
  "target-ms": { type: "string", default: "1500", help: "timed wall time aimed at per workload and side" },
  "budget-s": {
    type: "string",
    default: "240",
    help: "skip a matmul whose predicted time (from the smaller ones) would end the run past this",
  },
  sequential: {
    type: "boolean",
    default: false,
    help: "time all tfjs calls, then all of ours (default: alternate, so load on a shared machine hits both)",
  },
});
const workloads = flags.workloads.split(",").map((s) => s.trim()).filter(Boolean);
for (const w of workloads) {
  if (!ALL.includes(w)) {
    console.error(`--workloads: unknown '${w}' (known: ${ALL.join(", ")})`);
    Deno.exit(2);
  }
}
const minReps = num("min-reps", flags["min-reps"]);
const maxReps = Math.max(minReps, num("max-reps", flags["max-reps"]));
const targetMs = num("target-ms", flags["target-ms"]);
const budgetMs = num("budget-s", flags["budget-s"]) * 1000;
if (minReps < 5) console.error(`note: --min-reps ${minReps} is below the harness's 5`);

interface Timed {
  /** Median of the timed calls. */
  ms: number;
  reps: number;
  minMs: number;
  maxMs: number;
}

function summarize(ts: number[]): Timed {
  const s = [...ts].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const ms = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { ms, reps: s.length, minMs: s[0], maxMs: s[s.length - 1] };
}

async function clock(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/**
 * Warm-up calls on each side (tfjs first), then the same number of timed calls per side, scaled by the
 * slower side's last warm-up to about targetMs, within [minReps, maxReps]. Timed calls alternate
 * between the sides unless --sequential.
 */
async function timePair(
  warmup: number,
  peer: () => Promise<void>,
  ours: () => Promise<void>,
): Promise<{ tfjs: Timed; ours: Timed }> {
  let lastP = 0, lastO = 0;
  for (let i = 0; i < warmup; i++) lastP = await clock(peer);
  for (let i = 0; i < warmup; i++) lastO = await clock(ours);
  const reps = Math.max(minReps, Math.min(maxReps, Math.ceil(targetMs / Math.max(lastP, lastO, 1e-3))));
  const tp: number[] = [], to: number[] = [];
  if (flags.sequential) {
    for (let i = 0; i < reps; i++) tp.push(await clock(peer));
    for (let i = 0; i < reps; i++) to.push(await clock(ours));
  } else {
    for (let i = 0; i < reps; i++) {
      tp.push(await clock(peer));
      to.push(await clock(ours));
    }
  }
  return { tfjs: summarize(tp), ours: summarize(to) };
}

const log = (msg: string) => console.error(msg);

// ---------------------------------------------------------------------------------------------------
// Workload definitions shared by both sides.

const LAYER = { B: 32, T: 50, D: 64, heads: 4, hidden: 256, eps: 1e-6, lr: 1e-3 };

function matmulData(n: number): { a: Float32Array; b: Float32Array } {
  return { a: randn(1000 + n, n * n), b: randn(2000 + n, n * n) };
}

// ---------------------------------------------------------------------------------------------------
// Ours.

interface OursMatmul {
  step(): Promise<Float32Array>;
  destroy(): void;
}

async function oursMatmul(n: number, data: { a: Float32Array; b: Float32Array }): Promise<OursMatmul> {
  const g = new Graph();
  const a = g.input("a", [n, n]), b = g.input("b", [n, n]);
  const c = matmul(a, b);
  const exe = await compile([c]);
  exe.write(a, data.a);
  exe.write(b, data.b);
  return {
    step: async () => (await exe.run([c]))[0] as Float32Array,
    destroy: () => exe.destroy(),
  };
}

interface OursLayer {
  exe: Executable;
  /** Initial weights by name (timm names: norm1.weight, attn.qkv.weight [out, in], ...). */
  weights: Map<string, Float32Array>;
  step(): Promise<number>;
}

async function oursLayerStep(x: Float32Array, target: Float32Array): Promise<OursLayer> {
  const { B, T, D } = LAYER;
  const g = new Graph();
  const xin = g.input("x", [B, T, D]);
  const tin = g.input("target", [B, T, D]);
  const y = transformerBlock(g, xin, "blk", {
    dim: D,
    heads: LAYER.heads,
    mlpRatio: LAYER.hidden / D,
    causal: true,
    act: "relu",
    eps: LAYER.eps,
  });
  const d = sub(y, tin);
  const loss = scale(sumAll(mul(d, d)), 1 / (B * T * D));
  const grads = grad(loss);
  const opt = new AdamW(g, grads, { lr: LAYER.lr, weightDecay: 0, eps: 1e-8 });
  const exe = await compile([loss], { effects: opt.effects });
  const weights = new Map<string, Float32Array>();
  for (const p of g.params as Node[]) {
    weights.set(p.name!.replace(/^blk\./, ""), (await exe.read(p)) as Float32Array);
  }
  return {
    exe,
    weights,
    step: async () => {
      // a fresh batch each step, as examples/bench.ts does through Trainer.step (tfjs: tf.tensor2d)
      exe.write(xin, x);
      exe.write(tin, target);
      opt.prepareStep(exe);
      return (await exe.run([loss]))[0][0];
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// TensorFlow.js (WebGPU backend).

function tfjsMatmul(n: number, data: { a: Float32Array; b: Float32Array }) {
  const a = tf.tensor2d(data.a, [n, n]), b = tf.tensor2d(data.b, [n, n]);
  return {
    step: async () => {
      const c = tf.matMul(a, b);
      const out = await c.data() as Float32Array;
      c.dispose();
      return out;
    },
    destroy: () => tf.dispose([a, b]),
  };
}

function tfjsLayerStep(x: Float32Array, target: Float32Array, w: Map<string, Float32Array>) {
  const { B, T, D, heads, hidden, eps } = LAYER;
  const dh = D / heads, N = B * T;
  const v = (name: string, shape: number[]) => {
    const data = w.get(name);
    if (!data) throw new Error(`bench_peers: no initial value for ${name}`);
    return tf.variable(tf.tensor(data, shape), true, `tfjs.${name}`);
  };
  const P = {
    g1: v("norm1.weight", [D]),
    b1: v("norm1.bias", [D]),
    wqkv: v("attn.qkv.weight", [3 * D, D]),
    bqkv: v("attn.qkv.bias", [3 * D]),
    wp: v("attn.proj.weight", [D, D]),
    bp: v("attn.proj.bias", [D]),
    g2: v("norm2.weight", [D]),
    b2: v("norm2.bias", [D]),
    w1: v("mlp.fc1.weight", [hidden, D]),
    bf1: v("mlp.fc1.bias", [hidden]),
    w2: v("mlp.fc2.weight", [D, hidden]),
    bf2: v("mlp.fc2.bias", [D]),
  };
  const maskData = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) maskData[i * T + j] = -1e9;
  const mask = tf.tensor2d(maskData, [T, T]);

  const layerNorm = (h: tf.Tensor2D, gamma: tf.Variable, beta: tf.Variable) => {
    const { mean, variance } = tf.moments(h, -1, true);
    return tf.add(
      tf.mul(tf.mul(tf.sub(h, mean), tf.rsqrt(tf.add(variance, eps))), gamma),
      beta,
    ) as tf.Tensor2D;
  };
  // torch Linear layout: w [out, in], y = x·wᵀ + b
  const linear = (h: tf.Tensor2D, wt: tf.Variable, bias: tf.Variable) =>
    tf.add(tf.matMul(h, wt as tf.Tensor2D, false, true), bias) as tf.Tensor2D;
  const splitHeads = (t: tf.Tensor2D) => tf.transpose(tf.reshape(t, [B, T, heads, dh]), [0, 2, 1, 3]);

  const lossFn = (xs: tf.Tensor2D, ts: tf.Tensor2D): tf.Scalar => {
    const n1 = layerNorm(xs, P.g1, P.b1);
    const qkv = linear(n1, P.wqkv, P.bqkv);
    const [q, k, vv] = tf.split(qkv, 3, 1) as tf.Tensor2D[];
    const scores = tf.add(
      tf.mul(tf.matMul(splitHeads(q), splitHeads(k), false, true), 1 / Math.sqrt(dh)),
      mask,
    );
    const att = tf.matMul(tf.softmax(scores), splitHeads(vv)); // [B, H, T, dh]
    const merged = tf.reshape(tf.transpose(att, [0, 2, 1, 3]), [N, D]) as tf.Tensor2D;
    const h = tf.add(xs, linear(merged, P.wp, P.bp)) as tf.Tensor2D;
    const f = tf.relu(linear(layerNorm(h, P.g2, P.b2), P.w1, P.bf1));
    const y = tf.add(h, linear(f, P.w2, P.bf2));
    return tf.mean(tf.square(tf.sub(y, ts)));
  };
  const opt = tf.train.adam(LAYER.lr, 0.9, 0.999, 1e-8);
  const varList = Object.values(P);
  return {
    step: async () => {
      const xs = tf.tensor2d(x, [N, D]), ts = tf.tensor2d(target, [N, D]);
      const cost = opt.minimize(() => lossFn(xs, ts), true, varList)!;
      const out = (await cost.data())[0];
      tf.dispose([cost, xs, ts]);
      return out;
    },
    destroy: () => {
      tf.dispose([mask, ...varList]);
      opt.dispose();
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Run.

const tStart = performance.now();
const gpu = await getGpu();
await tf.setBackend("webgpu");
await tf.ready();
if (tf.getBackend() !== "webgpu") {
  throw new Error(`bench_peers: tfjs backend is ${tf.getBackend()}, not webgpu`);
}
const tfInfo = (tf.backend() as any).adapterInfo as { vendor?: string; architecture?: string } | undefined;
const tfAdapter = [tfInfo?.vendor, tfInfo?.architecture].filter(Boolean).join(" ") || "?";
const software = /llvmpipe|lavapipe|swiftshader/i.test(gpu.adapterName);
const warmup = flags.warmup === "auto" ? (software ? 1 : 2) : Math.max(1, num("warmup", flags.warmup));
const date = new Date().toISOString();
log(
  `adapter (ours): ${gpu.adapterName}; tfjs-webgpu ${tf.version_core} sees vendor/arch '${tfAdapter}'; ` +
    `${date}; warm-up ${warmup}, ≥${minReps} timed calls per side, ${
      flags.sequential ? "sequential" : "alternating"
    }`,
);

type Side = Timed & { gflops?: number };
interface Row {
  workload: string;
  adapter: string;
  date: string;
  ours?: Side;
  tfjs_webgpu?: Side;
  /** tfjs ms / ours ms: > 1 means ours is faster by this factor. */
  ratio?: number;
  check?: Record<string, number>;
  skipped?: string;
}
const rows = new Map<string, Row>();
const emit = (r: Row) => {
  rows.set(r.workload, r);
  if (flags.json) console.log(JSON.stringify(r));
  if (r.skipped) log(`${r.workload}: skipped (${r.skipped})`);
  else {
    log(
      `${r.workload}: ours ${r.ours!.ms.toFixed(2)} ms, tfjs-webgpu ${r.tfjs_webgpu!.ms.toFixed(2)} ms ` +
        `(${r.ours!.reps} timed calls each), ratio ×${r.ratio!.toFixed(2)}`,
    );
  }
};

/** Worst |C - C_f64| / Σ|a·b| over 16 random entries (as examples/bench.ts checks). */
function scaledError(c: Float32Array, a: Float32Array, b: Float32Array, n: number): number {
  let worst = 0, seed = n;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let s = 0; s < 16; s++) {
    const i = Math.floor(rnd() * n), j = Math.floor(rnd() * n);
    let ref = 0, mag = 0;
    for (let k = 0; k < n; k++) {
      const p = a[i * n + k] * b[k * n + j];
      ref += p;
      mag += Math.abs(p);
    }
    worst = Math.max(worst, Math.abs(c[i * n + j] - ref) / (mag + 1e-30));
  }
  return worst;
}

let lastMatmul: { n: number; ms: number } | undefined;
for (const w of RUN_ORDER.filter((w) => workloads.includes(w))) {
  if (w.startsWith("matmul-")) {
    const n = Number(w.slice("matmul-".length));
    if (lastMatmul) {
      const perCall = lastMatmul.ms * (n / lastMatmul.n) ** 3;
      const predicted = 2 * (warmup + minReps) * perCall;
      const elapsed = performance.now() - tStart;
      if (elapsed + predicted > budgetMs) {
        emit({
          workload: w,
          adapter: gpu.adapterName,
          date,
          skipped: `predicted ${(predicted / 1000).toFixed(0)} s (${(perCall / 1000).toFixed(1)} s a call, ` +
            `scaled from matmul-${lastMatmul.n}) would end the run past --budget-s ${budgetMs / 1000}`,
        });
        continue;
      }
    }
    const data = matmulData(n);
    const flop = 2 * n ** 3;
    const peer = tfjsMatmul(n, data);
    const ours = await oursMatmul(n, data);
    let tOut: Float32Array = new Float32Array(0), oOut: Float32Array = new Float32Array(0);
    const t = await timePair(
      warmup,
      async () => void (tOut = await peer.step()),
      async () => void (oOut = await ours.step()),
    );
    peer.destroy();
    ours.destroy();
    let maxDiff = 0;
    for (let i = 0; i < oOut.length; i++) maxDiff = Math.max(maxDiff, Math.abs(oOut[i] - tOut[i]));
    lastMatmul = { n, ms: Math.max(t.ours.ms, t.tfjs.ms) };
    emit({
      workload: w,
      adapter: gpu.adapterName,
      date,
      ours: { ...t.ours, gflops: flop / t.ours.ms / 1e6 },
      tfjs_webgpu: { ...t.tfjs, gflops: flop / t.tfjs.ms / 1e6 },
      ratio: t.tfjs.ms / t.ours.ms,
      check: {
        scaled_error_ours: scaledError(oOut, data.a, data.b, n),
        scaled_error_tfjs: scaledError(tOut, data.a, data.b, n),
        max_abs_diff_between: maxDiff,
      },
    });
  } else {
    const { B, T, D } = LAYER;
    const x = randn(31, B * T * D), target = randn(32, B * T * D);
    // ours is built first so that tfjs starts from the same weights
    const ours = await oursLayerStep(x, target);
    const peer = tfjsLayerStep(x, target, ours.weights);
    let tFirst = NaN, oFirst = NaN, tLast = NaN, oLast = NaN;
    const t = await timePair(
      warmup,
      async () => {
        tLast = await peer.step();
        if (Number.isNaN(tFirst)) tFirst = tLast;
      },
      async () => {
        oLast = await ours.step();
        if (Number.isNaN(oFirst)) oFirst = oLast;
      },
    );
    peer.destroy();
    ours.exe.destroy();
    emit({
      workload: w,
      adapter: gpu.adapterName,
      date,
      ours: t.ours,
      tfjs_webgpu: t.tfjs,
      ratio: t.tfjs.ms / t.ours.ms,
      check: {
        first_loss_ours: oFirst,
        first_loss_tfjs: tFirst,
        last_loss_ours: oLast,
        last_loss_tfjs: tLast,
      },
    });
  }
}

if (!flags.json) {
  const fmt = (t?: Side) =>
    t
      ? `${t.ms.toFixed(2)} ms${t.gflops !== undefined ? ` (${t.gflops.toFixed(1)} GFLOP/s)` : ""}`
      : "skipped";
  const shown = ALL.filter((w) => rows.has(w)).map((w) => rows.get(w)!);
  const cells = shown.map((r) => [
    r.workload,
    fmt(r.ours),
    fmt(r.tfjs_webgpu),
    r.ratio !== undefined ? `×${r.ratio.toFixed(2)}` : "–",
  ]);
  const head = ["workload", "ours", "tfjs-webgpu 4.22", "ratio (ours faster by ×)"];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => `| ${c.map((s, i) => s.padEnd(widths[i])).join(" | ")} |`;
  console.log(
    `adapter: ${gpu.adapterName}; ${date}; median ms of ≥${minReps} timed calls per side after ${warmup} ` +
      `warm-up, result read back each call`,
  );
  console.log(line(head));
  console.log(line(widths.map((n) => "-".repeat(n))));
  for (const c of cells) console.log(line(c));
  for (const r of shown) {
    if (r.skipped) console.log(`  ${r.workload}: skipped, ${r.skipped}`);
    else {
      const checks = Object.entries(r.check ?? {}).map(([k, v]) => `${k}=${v.toPrecision(4)}`).join(", ");
      console.log(`  ${r.workload}: ${checks}`);
    }
  }
}
log(`total ${((performance.now() - tStart) / 1000).toFixed(1)} s`);
tf.disposeVariables();
gpu.device.destroy();
