// Point clouds: a Point-BERT-style encoder with a frozen LLM layer, trained on point clouds made from
// Fashion-MNIST (points sampled by pixel intensity: x, y, intensity, normalised to the unit sphere).
//
//   deno task train-points                           (small defaults, the bundled subset)
//   deno task train-points --llm none --out out/points-none
//   deno task train-points --data /usr/share/datasets/fashion-mnist --points 256 --groups 32 --group-size 16
//
// Same outputs as the ViT run: metrics.jsonl, chart.svg, checkpoint/ (with BatchNorm running stats).

import "../mod.ts";
import { runPoints } from "../train/run_points.ts";
import { DEFAULT_LLM } from "../train/run_vit.ts";
import { DEFAULT_DATA_DIR } from "../data/fashion_mnist.ts";
import { num, parseFlags } from "../train/cli.ts";

const flags = parseFlags("usage: deno task train-points [flags]", {
  points: { type: "string", default: "64", help: "points per cloud" },
  groups: { type: "string", default: "8", help: "FPS groups (tokens)" },
  "group-size": { type: "string", default: "8", help: "kNN points per group" },
  "encoder-dim": { type: "string", default: "64", help: "mini-PointNet output dim" },
  dim: { type: "string", default: "64", help: "transformer dim" },
  depth: { type: "string", default: "2", help: "transformer blocks" },
  heads: { type: "string", default: "4", help: "attention heads" },
  llm: {
    type: "string",
    default: "default",
    help: "frozen LLM: none | random | default (llama-tiny fixture) | CHECKPOINT_DIR",
  },
  "llm-layers": { type: "string", default: "last", help: "LLM layers: 31 | 30,31 | last | last:2" },
  epochs: { type: "string", default: "1", help: "epochs" },
  steps: {
    type: "string",
    default: "60",
    help: "stop after N steps (0: all epochs; the default keeps a software-GPU run short)",
  },
  batch: { type: "string", default: "16", help: "batch size" },
  lr: { type: "string", default: "1e-3", help: "peak learning rate (cosine)" },
  warmup: { type: "string", default: "20", help: "warmup steps" },
  "weight-decay": { type: "string", default: "0.05", help: "AdamW weight decay" },
  "label-smoothing": { type: "string", default: "0.2", help: "Point-BERT label smoothing" },
  dropout: { type: "string", default: "0.5", help: "head dropout" },
  clip: { type: "string", default: "10", help: "global gradient-norm clip (0: off)" },
  data: { type: "string", default: DEFAULT_DATA_DIR, help: "Fashion-MNIST directory" },
  "train-limit": { type: "string", default: "0", help: "use only the first N training images (0: all)" },
  out: { type: "string", default: "out/points", help: "output directory" },
  resume: { type: "string", default: "", help: "checkpoint directory to resume from" },
  init: {
    type: "string",
    default: "",
    help: "initial weights + BatchNorm stats: safetensors with Point-BERT names",
  },
  seed: { type: "string", default: "0", help: "seed" },
  "log-every": { type: "string", default: "10", help: "read the loss every N steps" },
  "eval-batch": { type: "string", default: "100", help: "evaluation batch" },
  "eval-limit": { type: "string", default: "200", help: "evaluate on the first N test clouds (0: all)" },
});

try {
  const s = await runPoints({
    model: {
      points: num("points", flags.points),
      groups: num("groups", flags.groups),
      groupSize: num("group-size", flags["group-size"]),
      encoderDim: num("encoder-dim", flags["encoder-dim"]),
      dim: num("dim", flags.dim),
      depth: num("depth", flags.depth),
      heads: num("heads", flags.heads),
      classes: 10,
    },
    llm: flags.llm === "default" ? DEFAULT_LLM : flags.llm,
    llmLayers: flags["llm-layers"],
    epochs: num("epochs", flags.epochs),
    steps: num("steps", flags.steps),
    batch: num("batch", flags.batch),
    lr: num("lr", flags.lr),
    warmup: num("warmup", flags.warmup),
    weightDecay: num("weight-decay", flags["weight-decay"]),
    labelSmoothing: num("label-smoothing", flags["label-smoothing"]),
    dropout: num("dropout", flags.dropout),
    clip: num("clip", flags.clip),
    data: flags.data,
    trainLimit: num("train-limit", flags["train-limit"]) || undefined,
    out: flags.out,
    resume: flags.resume || undefined,
    init: flags.init || undefined,
    seed: num("seed", flags.seed),
    logEvery: num("log-every", flags["log-every"]),
    evalBatch: num("eval-batch", flags["eval-batch"]),
    evalLimit: num("eval-limit", flags["eval-limit"]) || undefined,
  });
  console.log(
    `test accuracy ${(100 * s.testAccuracy).toFixed(2)}% after ${s.steps} steps in ${
      s.seconds.toFixed(1)
    } s on ${s.adapter}` +
      `; frozen LLM: ${s.llm}; outputs in ${flags.out}`,
  );
} catch (e) {
  console.error(`train-points: ${(e as Error).message}`);
  Deno.exit(1);
}
