// Point clouds: a Point-BERT-style encoder with a frozen LLM layer, trained on point clouds made from
// Fashion-MNIST (points sampled by pixel intensity: x, y, intensity, normalised to the unit sphere).
//
//   deno task train-points                           (small defaults, the bundled subset)
//   deno task train-points --llm none --out out/points-none
//   deno task train-points --data /usr/share/datasets/fashion-mnist --points 256 --groups 32 --group-size 16
//   deno task train-points --resume out/points
//
// The same flags, outputs and resume as `deno task train` (metrics.jsonl, chart.svg, checkpoint/ with
// BatchNorm running stats), plus the model-shape flags and --dropout.

import { train } from "../mod.ts";

await train.trainCommand("points");
