// The paper's ablation at our scale: the same training for every arm (models/arms.ts: none, mlp,
// frozen, random-frozen, random-trained, finetune) over several seeds. Takes the train command's flags
// (same meanings and defaults; --llm is the checkpoint whose layers, or shape, the arms use), plus
// --arms and --seeds. Each cell runs in OUT/<arm>-seed<k>/ and stores result.json when it finishes;
// a rerun skips finished cells (resumable; --table-only runs nothing and tabulates the finished cells,
// for grids filled by several processes or machines). Writes OUT/table.md (mean ± std top-1, trainable/frozen
// parameter counts, samples/s) and OUT/ablate.json (every cell).
//
//   deno task ablate --arms none,mlp,frozen,random-frozen,random-trained,finetune --seeds 3 --epochs 5 \
//     --model tiny-28 --data /usr/share/datasets/fashion-mnist --out out/ablate
//   deno task ablate --arms none,frozen --seeds 2 --steps 5 --train-limit 64 --eval-limit 64

import { models, train } from "../mod.ts";

const spec = train.trainFlagSpec("image");
delete spec.resume;
delete spec.init;
delete spec.arm;
spec.out = {
  type: "string",
  default: "out/ablate",
  help: "output directory (table.md, ablate.json, one folder per cell)",
};
spec.arms = {
  type: "string",
  default: models.LLM_ARMS.join(","),
  help: `arms, comma-separated: ${models.LLM_ARMS.join(", ")}`,
};
spec.seeds = { type: "string", default: "3", help: "seeds per arm (0, 1, ...)" };
spec["table-only"] = {
  type: "boolean",
  default: false,
  help: "run no cell: write the table of the finished ones and list the missing ones",
};
const raw = train.parseFlags("usage: deno task ablate [flags]", spec);
let base: train.RunOptions, seeds: number, arms: models.LlmArm[];
try {
  base = train.trainOptionsFromFlags("image", raw as Record<string, string | undefined>);
  seeds = Number(raw.seeds);
  if (!Number.isInteger(seeds) || seeds < 1) {
    throw new train.FlagError(`--seeds: expected an integer ≥ 1, got '${raw.seeds}'`);
  }
  arms = String(raw.arms).split(",").map((a) => a.trim()) as models.LlmArm[];
  const bad = arms.find((a) => !models.LLM_ARMS.includes(a));
  if (bad !== undefined || !arms.length) {
    throw new train.FlagError(`--arms: '${bad}' is not one of ${models.LLM_ARMS.join(", ")}`);
  }
  if (base.llm === "none" && arms.some((a) => a !== "none")) {
    throw new train.FlagError("--llm none: the arms other than none need an LLM (its layers or its shape)");
  }
} catch (e) {
  console.error(`ablate: ${(e as Error).message}`);
  Deno.exit(2);
}
const quiet = (raw as Record<string, unknown>).quiet === true;
const tableOnly = (raw as Record<string, unknown>)["table-only"] === true;
const cells: train.AblationCell[] = [], missing: string[] = [];
for (const arm of arms) {
  for (let seed = 0; seed < seeds; seed++) {
    const out = `${base.out}/${arm}-seed${seed}`;
    const done = await train.readCell(out);
    if (done) {
      cells.push(done);
      if (!quiet) {
        console.error(`${arm} seed ${seed}: finished before (${(100 * done.top1).toFixed(2)}%), skipped`);
      }
      continue;
    }
    if (tableOnly) {
      missing.push(`${arm} seed ${seed}`);
      continue;
    }
    const opts: train.RunOptions = { ...base, arm, seed, out };
    // a cell interrupted mid-run starts again from scratch: its old checkpoint has another run's progress
    await Deno.remove(out, { recursive: true }).catch(() => {});
    let s: train.RunSummary;
    try {
      s = await train.runTraining(opts);
    } catch (e) {
      console.error(`ablate: ${arm} seed ${seed} (${out}): ${(e as Error).message}`);
      Deno.exit(1);
    }
    const cell = train.cellOf(arm, seed, s, base.batch, await train.paramCounts(opts), out);
    await train.writeCell(out, cell);
    cells.push(cell);
    if (!quiet) {
      console.error(
        `${arm} seed ${seed}: ${(100 * s.testAccuracy).toFixed(2)}% (${
          s.seconds.toFixed(0)
        } s, ${s.adapter})`,
      );
    }
  }
}
if (missing.length) console.error(`ablate --table-only: not finished yet: ${missing.join(", ")}`);
const llmName = base.llm === "default"
  ? "lm-default (pretrained on English text)"
  : base.llm === "random"
  ? "llama-tiny (random weights)"
  : base.llm;
const table = train.ablationTable(
  `ViT '${base.modelName}' on Fashion-MNIST (${base.data}), LLM ${llmName} layers ${base.llmLayers}, ` +
    `position ${base.llmPosition ?? "tail"}, ${base.steps || base.epochs + " epochs"}${
      base.steps ? " steps" : ""
    }, batch ${base.batch}, ${seeds} seeds`,
  arms,
  cells,
  "img",
);
await Deno.mkdir(base.out, { recursive: true });
await Deno.writeTextFile(`${base.out}/table.md`, table + "\n");
await Deno.writeTextFile(
  `${base.out}/ablate.json`,
  JSON.stringify({ llm: base.llm, llmLayers: base.llmLayers, seeds, arms, cells }, null, 2) + "\n",
);
console.log(table);
