// The paper's experiment at our scale: the same ViT training with no frozen layer, a frozen layer of
// random weights, and a frozen layer from a checkpoint, over several seeds; writes a markdown table
// of mean ± std test accuracy.
//
//   deno run -A examples/ablate.ts --seeds 3 --epochs 2 --out out/ablate
//   deno run -A examples/ablate.ts --llm path/to/llama --llm-layers last --data /usr/share/datasets/fashion-mnist

import "../mod.ts";
import { DEFAULT_LLM, MODELS, runVit } from "../train/run_vit.ts";
import { DEFAULT_DATA_DIR } from "../data/fashion_mnist.ts";
import { num, parseFlags } from "../train/cli.ts";

const flags = parseFlags("usage: deno run -A examples/ablate.ts [flags]", {
  model: { type: "string", default: "fmnist", help: `model: ${Object.keys(MODELS).join(" | ")}` },
  llm: {
    type: "string",
    default: "default",
    help: "the checkpoint arm: default (llama-tiny fixture) or a checkpoint dir",
  },
  "llm-layers": { type: "string", default: "last", help: "LLM layers" },
  seeds: { type: "string", default: "3", help: "seeds per arm" },
  epochs: { type: "string", default: "2", help: "epochs per run" },
  steps: { type: "string", default: "0", help: "steps per run (0: epochs)" },
  batch: { type: "string", default: "64", help: "batch size" },
  lr: { type: "string", default: "1e-3", help: "peak learning rate" },
  data: { type: "string", default: DEFAULT_DATA_DIR, help: "Fashion-MNIST directory" },
  out: { type: "string", default: "out/ablate", help: "output directory (table.md + one folder per run)" },
});

const checkpoint = flags.llm === "default" ? DEFAULT_LLM : flags.llm;
const arms: [string, string][] = [["none", "none"], ["random", "random"], [
  flags.llm === "default" ? "llama-tiny fixture" : checkpoint,
  checkpoint,
]];
const seeds = num("seeds", flags.seeds);
const rows: string[] = [];
for (const [label, llm] of arms) {
  const accs: number[] = [];
  let secs = 0;
  for (let seed = 0; seed < seeds; seed++) {
    const s = await runVit({
      model: MODELS[flags.model],
      modelName: flags.model,
      llm,
      llmLayers: flags["llm-layers"],
      epochs: num("epochs", flags.epochs),
      steps: num("steps", flags.steps),
      batch: num("batch", flags.batch),
      lr: num("lr", flags.lr),
      warmup: 50,
      weightDecay: 0.05,
      labelSmoothing: 0.1,
      clip: 1,
      data: flags.data,
      out: `${flags.out}/${label.replace(/[^a-z0-9-]+/gi, "_")}-seed${seed}`,
      seed,
      logEvery: 50,
      evalBatch: 200,
      quiet: true,
    });
    accs.push(100 * s.testAccuracy);
    secs += s.seconds;
    console.error(
      `${label} seed ${seed}: ${(100 * s.testAccuracy).toFixed(2)}% (${
        s.seconds.toFixed(0)
      } s, ${s.adapter})`,
    );
  }
  const mean = accs.reduce((a, b) => a + b) / accs.length;
  const std = Math.sqrt(accs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, accs.length - 1));
  rows.push(
    `| ${label} | ${mean.toFixed(2)} ± ${std.toFixed(2)} | ${accs.map((a) => a.toFixed(2)).join(", ")} | ${
      (secs / seeds).toFixed(0)
    } |`,
  );
}
const table = [
  `ViT '${flags.model}' on Fashion-MNIST (${flags.data}), ${flags.epochs} epochs, batch ${flags.batch}, ${seeds} seeds`,
  "",
  "| frozen LLM layer | test accuracy % (mean ± std) | per seed | s/run |",
  "| --- | --- | --- | --- |",
  ...rows,
].join("\n");
await Deno.mkdir(flags.out, { recursive: true });
await Deno.writeTextFile(`${flags.out}/table.md`, table + "\n");
console.log(table);
