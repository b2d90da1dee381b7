// The paper's experiment at our scale: the same ViT training with no frozen layer, a frozen layer of
// random weights, and a frozen layer from a checkpoint, over several seeds; writes a markdown table
// of mean ± std test accuracy. Takes the train command's flags (same meanings and defaults), where
// --llm names the checkpoint arm, plus --seeds.
//
//   deno run -A examples/ablate.ts --seeds 3 --epochs 2 --out out/ablate
//   deno run -A examples/ablate.ts --llm path/to/llama --llm-layers last --data /usr/share/datasets/fashion-mnist

import { train } from "../mod.ts";

const spec = train.trainFlagSpec("image");
delete spec.resume;
delete spec.init;
spec.llm = { ...spec.llm, help: "the checkpoint arm: default (bundled llama-tiny) or a checkpoint dir" };
spec.out = {
  type: "string",
  default: "out/ablate",
  help: "output directory (table.md + one folder per run)",
};
spec.seeds = { type: "string", default: "3", help: "seeds per arm (0, 1, ...)" };
const raw = train.parseFlags("usage: deno run -A examples/ablate.ts [flags]", spec);
let base: train.RunOptions, seeds: number;
try {
  base = train.trainOptionsFromFlags("image", raw as Record<string, string | undefined>);
  seeds = Number(raw.seeds);
  if (!Number.isInteger(seeds) || seeds < 1) {
    throw new train.FlagError(`--seeds: expected an integer ≥ 1, got '${raw.seeds}'`);
  }
} catch (e) {
  console.error(`ablate: ${(e as Error).message}`);
  Deno.exit(2);
}
const quiet = (raw as Record<string, unknown>).quiet === true;
const arms: [string, string][] = [
  ["none", "none"],
  ["random", "random"],
  [base.llm === "default" ? "llama-tiny (random weights)" : base.llm, base.llm],
];
const rows: string[] = [];
for (const [label, llm] of arms) {
  const accs: number[] = [];
  let secs = 0;
  for (let seed = 0; seed < seeds; seed++) {
    const s = await train.runTraining({
      ...base,
      llm,
      seed,
      out: `${base.out}/${label.replace(/[^a-z0-9-]+/gi, "_")}-seed${seed}`,
    });
    accs.push(100 * s.testAccuracy);
    secs += s.seconds;
    if (!quiet) {
      console.error(
        `${label} seed ${seed}: ${(100 * s.testAccuracy).toFixed(2)}% (${
          s.seconds.toFixed(0)
        } s, ${s.adapter})`,
      );
    }
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
  `ViT '${base.modelName}' on Fashion-MNIST (${base.data}), ${base.epochs} epochs, batch ${base.batch}, ${seeds} seeds`,
  "",
  "| frozen LLM layer | test accuracy % (mean ± std) | per seed | s/run |",
  "| --- | --- | --- | --- |",
  ...rows,
].join("\n");
await Deno.mkdir(base.out, { recursive: true });
await Deno.writeTextFile(`${base.out}/table.md`, table + "\n");
console.log(table);
