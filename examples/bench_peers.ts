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
// Timing: `--warmup` untimed calls, then N timed calls, N = clamp(target-ms / warm-up time, min-reps,
// max-reps); the median is reported. Ratio = tfjs ms / ours ms (> 1: ours is faster by that factor).

import * as tf from "@tensorflow/tfjs-core";
// tfjs-core's node entry (the one Deno loads) registers no gradients, and its ESM register_all_gradients
// uses extensionless imports Deno cannot resolve; the union package's node bundle carries them and
// registers them into the same global registry (used for side effects only; no WebGL is touched).
import "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-webgpu";
import "../mod.ts";
import { Graph, type Node } from "../compiler/ir.ts";
import { compile, type Executable } from "../compiler/runtime.ts";
import { getGpu } from "../compiler/device.ts";
import { AdamW } from "../compiler/optim.ts";
import { grad } from "../compiler/grad.ts";
import { matmul } from "../compiler/ops/matmul.ts";
import { mul, scale, sub } from "../compiler/ops/elementwise.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { randn } from "../compiler/random.ts";
import { transformerBlock } from "../models/block.ts";
import { num, parseFlags } from "../train/cli.ts";

const ALL = ["matmul-512", "matmul-1024", "matmul-2048", "layer-step"];

const flags = parseFlags("usage: deno run -A examples/bench_peers.ts [flags]", {
  json: { type: "boolean", default: false, help: "one JSON object per workload per line (no table)" },
  workloads: { type: "string", default: ALL.join(","), help: "comma-separated subset" },
  warmup: { type: "string", default: "2", help: "untimed calls before timing" },
  "min-reps": { type: "string", default: "5", help: "fewest timed calls" },
  "max-reps": { type: "string", default: "50", help: "most timed calls" },
  "target-ms": { type: "string", default: "1500", help: "timed wall time aimed at per workload and side" },
});
const workloads = flags.workloads.split(",").map((s) => s.trim()).filter(Boolean);
for (const w of workloads) {
  if (!ALL.includes(w)) {
    console.error(`--workloads: unknown '${w}' (known: ${ALL.join(", ")})`);
    Deno.exit(2);
  }
}
const timing = {
  warmup: num("warmup", flags.warmup),
  minReps: num("min-reps", flags["min-reps"]),
  maxReps: num("max-reps", flags["max-reps"]),
  targetMs: num("target-ms", flags["target-ms"]),
};
if (timing.minReps < 5) console.error(`note: --min-reps ${timing.minReps} is below the harness's 5`);

interface Timed {
  ms: number;
  reps: number;
  minMs: number;
  maxMs: number;
}

/** Warm-up calls, then timed calls (count scaled by the last warm-up's time); median ms. */
async function timeIt(fn: () => Promise<void>): Promise<Timed> {
  let last = 0;
  for (let i = 0; i < Math.max(1, timing.warmup); i++) {
    const t0 = performance.now();
    await fn();
    last = performance.now() - t0;
  }
  const reps = Math.max(
    timing.minReps,
    Math.min(timing.maxReps, Math.ceil(timing.targetMs / Math.max(last, 1e-3))),
  );
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  const s = [...ts].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const ms = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { ms, reps, minMs: s[0], maxMs: s[s.length - 1] };
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

const gpu = await getGpu({ quiet: true });
await tf.setBackend("webgpu");
await tf.ready();
if (tf.getBackend() !== "webgpu") {
  throw new Error(`bench_peers: tfjs backend is ${tf.getBackend()}, not webgpu`);
}
const tfInfo = (tf.backend() as any).adapterInfo as { vendor?: string; architecture?: string } | undefined;
const tfAdapter = [tfInfo?.vendor, tfInfo?.architecture].filter(Boolean).join(" ") || "?";
const date = new Date().toISOString();
log(`adapter (ours): ${gpu.adapterName}; tfjs-webgpu ${tf.version_core}: ${tfAdapter}; ${date}`);

interface Row {
  workload: string;
  adapter: string;
  date: string;
  ours: Timed & { gflops?: number };
  tfjs_webgpu: Timed & { gflops?: number };
  /** tfjs ms / ours ms: > 1 means ours is faster by this factor. */
  ratio: number;
  check: Record<string, number>;
}
const rows: Row[] = [];
const emit = (r: Row) => {
  rows.push(r);
  if (flags.json) console.log(JSON.stringify(r));
  log(
    `${r.workload}: ours ${r.ours.ms.toFixed(2)} ms (${r.ours.reps} reps), tfjs-webgpu ${
      r.tfjs_webgpu.ms.toFixed(2)
    } ms (${r.tfjs_webgpu.reps} reps), ratio ×${r.ratio.toFixed(2)}`,
  );
};

for (const w of workloads) {
  if (w.startsWith("matmul-")) {
    const n = Number(w.slice("matmul-".length));
    const data = matmulData(n);
    const flop = 2 * n ** 3;
    // tfjs first, then ours (the brief's order); each side's last result is kept for a value check
    const peer = tfjsMatmul(n, data);
    let tOut: Float32Array = new Float32Array(0);
    const tt = await timeIt(async () => {
      tOut = await peer.step();
    });
    peer.destroy();
    const ours = await oursMatmul(n, data);
    let oOut: Float32Array = new Float32Array(0);
    const to = await timeIt(async () => {
      oOut = await ours.step();
    });
    ours.destroy();
    let maxErr = 0, maxRef = 0;
    for (let i = 0; i < oOut.length; i++) {
      maxErr = Math.max(maxErr, Math.abs(oOut[i] - tOut[i]));
      maxRef = Math.max(maxRef, Math.abs(tOut[i]));
    }
    emit({
      workload: w,
      adapter: gpu.adapterName,
      date,
      ours: { ...to, gflops: flop / to.ms / 1e6 },
      tfjs_webgpu: { ...tt, gflops: flop / tt.ms / 1e6 },
      ratio: tt.ms / to.ms,
      check: { max_abs_diff: maxErr, max_abs: maxRef },
    });
  } else {
    const { B, T, D } = LAYER;
    const x = randn(31, B * T * D), target = randn(32, B * T * D);
    // ours is compiled first only to hand tfjs the same initial weights; tfjs is timed first
    const ours = await oursLayerStep(x, target);
    const peer = tfjsLayerStep(x, target, ours.weights);
    let tFirst = NaN, oFirst = NaN;
    const tt = await timeIt(async () => {
      const l = await peer.step();
      if (Number.isNaN(tFirst)) tFirst = l;
    });
    peer.destroy();
    const to = await timeIt(async () => {
      const l = await ours.step();
      if (Number.isNaN(oFirst)) oFirst = l;
    });
    ours.exe.destroy();
    emit({
      workload: w,
      adapter: gpu.adapterName,
      date,
      ours: to,
      tfjs_webgpu: tt,
      ratio: tt.ms / to.ms,
      check: { first_loss_ours: oFirst, first_loss_tfjs: tFirst },
    });
  }
}

if (!flags.json) {
  const fmt = (t: Timed & { gflops?: number }) =>
    `${t.ms.toFixed(2)} ms${t.gflops !== undefined ? ` (${t.gflops.toFixed(1)} GFLOP/s)` : ""}`;
  const cells = rows.map((r) => [r.workload, fmt(r.ours), fmt(r.tfjs_webgpu), `×${r.ratio.toFixed(2)}`]);
  const head = ["workload", "ours", "tfjs-webgpu 4.22", "ratio (ours faster by ×)"];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => `| ${c.map((s, i) => s.padEnd(widths[i])).join(" | ")} |`;
  console.log(`adapter: ${gpu.adapterName} (tfjs sees: ${tfAdapter}); ${date}; median of ≥${timing.minReps}`);
  console.log(line(head));
  console.log(line(widths.map((n) => "-".repeat(n))));
  for (const c of cells) console.log(line(c));
  for (const r of rows) {
    const checks = Object.entries(r.check).map(([k, v]) => `${k}=${v.toPrecision(6)}`).join(", ");
    console.log(`  ${r.workload}: ${checks}`);
  }
}
tf.disposeVariables();
gpu.device.destroy();
