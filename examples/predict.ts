// The top-k classes of a trained image run for each image given, with their probabilities.
//
//   deno task predict --checkpoint out/vit IMAGE.jpg [IMAGE.png ...] [--top 5]
//
// The model, its frozen LLM, the eval transform (size, crop_pct, mean/std) and the class names come from
// the run's checkpoint/state.json and its --data (class names are the dataset's folders; Fashion-MNIST's
// names for IDX data). A corrupt image gets one line naming it; the others are still predicted.

import { parseArgs } from "node:util";
import { train } from "../mod.ts";

const usage = "usage: deno task predict --checkpoint RUN_DIR [--top K] IMAGE...";
let args;
try {
  args = parseArgs({
    args: Deno.args,
    options: {
      checkpoint: { type: "string" },
      top: { type: "string", default: "5" },
      help: { type: "boolean" },
    },
    allowPositionals: true,
    strict: true,
  });
} catch (e) {
  console.error(`predict: ${(e as Error).message}\n${usage}`);
  Deno.exit(2);
}
const { values, positionals } = args;
if (values.help) {
  console.log(
    `${usage}\n\n  --checkpoint  a run directory (or its checkpoint/)\n  --top         classes per image (default 5)`,
  );
  Deno.exit(0);
}
const k = Number(values.top);
if (!values.checkpoint) {
  (console.error(`predict: --checkpoint: which run? (a run directory)\n${usage}`), Deno.exit(2));
}
if (!positionals.length) (console.error(`predict: no images given\n${usage}`), Deno.exit(2));
if (!Number.isInteger(k) || k < 1) {
  (console.error(`predict: --top: expected an integer ≥ 1, got '${values.top}'`), Deno.exit(2));
}

try {
  const preds = await train.predictImages(values.checkpoint!, positionals, { k });
  let bad = 0;
  for (const p of preds) {
    if (p.error) {
      bad++;
      console.log(`${p.file}: error: ${p.error}`);
      continue;
    }
    console.log(`${p.file}: ${p.top.map((t) => `${t.name} ${(100 * t.prob).toFixed(1)}%`).join(", ")}`);
  }
  if (bad) Deno.exit(1);
} catch (e) {
  console.error(`predict: ${(e as Error).message}`);
  Deno.exit(1);
}
