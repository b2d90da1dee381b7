// The main job: train a ViT with a frozen LLM layer (the paper's ViT-LLaMA) on Fashion-MNIST.
//
//   deno task train                                   (defaults: the bundled subset, a few minutes)
//   deno task train --data /usr/share/datasets/fashion-mnist --model tiny-28 --epochs 5 --out out/full
//   deno task train --llm none                        (the baseline without the frozen layer)
//   deno task train --llm random                      (a frozen layer of the same shape, random weights)
//   deno task train --resume out/vit/checkpoint       (continue a run exactly where it stopped)
//
// Writes to --out: metrics.jsonl (one JSON object per line), chart.svg (loss and accuracy), and
// checkpoint/ (model.safetensors with timm names, optimizer.safetensors, state.json), replaced whole
// after each epoch.

import "../mod.ts";
import { DEFAULT_LLM, MODELS, runVit } from "../train/run_vit.ts";
import { DEFAULT_DATA_DIR } from "../data/fashion_mnist.ts";
import { num, parseFlags } from "../train/cli.ts";

const flags = parseFlags("usage: deno task train [flags]", {
  model: { type: "string", default: "fmnist", help: `model: ${Object.keys(MODELS).join(" | ")}` },
  llm: {
    type: "string",
    default: "default",
    help: "frozen LLM: none | random | default (llama-tiny fixture) | CHECKPOINT_DIR",
  },
  "llm-layers": { type: "string", default: "last", help: "LLM layers: 31 | 30,31 | last | last:2" },
  epochs: { type: "string", default: "1", help: "epochs" },
  steps: { type: "string", default: "0", help: "stop after N steps (0: all epochs)" },
  batch: { type: "string", default: "64", help: "batch size" },
  lr: { type: "string", default: "1e-3", help: "peak learning rate (cosine schedule)" },
  warmup: { type: "string", default: "20", help: "linear warmup steps" },
  "weight-decay": { type: "string", default: "0.05", help: "AdamW weight decay" },
  "label-smoothing": { type: "string", default: "0.1", help: "label smoothing" },
  clip: { type: "string", default: "1.0", help: "global gradient-norm clip (0: off)" },
  data: {
    type: "string",
    default: DEFAULT_DATA_DIR,
    help: "Fashion-MNIST IDX .gz directory (Debian: /usr/share/datasets/fashion-mnist)",
  },
  out: { type: "string", default: "out/vit", help: "output directory" },
  resume: { type: "string", default: "", help: "checkpoint directory to resume from" },
  init: {
    type: "string",
    default: "",
    help: "initial weights: a safetensors file with timm names (timm/DeiT ViT, or our model.safetensors)",
  },
  seed: { type: "string", default: "0", help: "seed (init, data order, augmentation)" },
  "log-every": { type: "string", default: "10", help: "read the loss back every N steps" },
  "eval-batch": { type: "string", default: "200", help: "evaluation batch size" },
  "gpu-memory": {
    type: "string",
    default: "0",
    help: "GPU memory budget for frozen LLM weights in bytes (0: unlimited)",
  },
});

const model = MODELS[flags.model];
if (!model) {
  console.error(`--model: unknown '${flags.model}'; one of ${Object.keys(MODELS).join(", ")}`);
  Deno.exit(2);
}
const budget = num("gpu-memory", flags["gpu-memory"]);
try {
  const s = await runVit({
    model,
    modelName: flags.model,
    llm: flags.llm === "default" ? DEFAULT_LLM : flags.llm,
    llmLayers: flags["llm-layers"],
    epochs: num("epochs", flags.epochs),
    steps: num("steps", flags.steps),
    batch: num("batch", flags.batch),
    lr: num("lr", flags.lr),
    warmup: num("warmup", flags.warmup),
    weightDecay: num("weight-decay", flags["weight-decay"]),
    labelSmoothing: num("label-smoothing", flags["label-smoothing"]),
    clip: num("clip", flags.clip),
    data: flags.data,
    out: flags.out,
    resume: flags.resume || undefined,
    init: flags.init || undefined,
    seed: num("seed", flags.seed),
    logEvery: num("log-every", flags["log-every"]),
    evalBatch: num("eval-batch", flags["eval-batch"]),
    gpuMemoryBudget: budget > 0 ? budget : undefined,
  });
  console.log(
    `test accuracy ${(100 * s.testAccuracy).toFixed(2)}% after ${s.steps} steps in ${
      s.seconds.toFixed(1)
    } s on ${s.adapter}` +
      `; frozen LLM: ${s.llm}; metrics, chart.svg and checkpoint/ in ${flags.out}`,
  );
} catch (e) {
  // one clear line for bad input (missing data, corrupt files, wrong sizes, foreign checkpoints)
  console.error(`train: ${(e as Error).message}`);
  Deno.exit(1);
}
