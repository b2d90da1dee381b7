// Accuracy of a saved run on a split: top-1, and top-5 when there are at least 5 classes.
//
//   deno task eval --checkpoint out/vit
//   deno task eval --checkpoint out/points --split train
//   deno task eval --checkpoint out/full --data /usr/share/datasets/fashion-mnist
//
// The model, its frozen LLM and the data come from the run's checkpoint/state.json.

import { train } from "../mod.ts";

await train.evalCommand();
