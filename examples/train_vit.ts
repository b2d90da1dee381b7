// The main job: train a ViT with a frozen LLM layer (the paper's ViT-LLaMA) on Fashion-MNIST.
//
//   deno task train                                   (defaults: the bundled subset, about a minute)
//   deno task train --data /usr/share/datasets/fashion-mnist --model tiny-28 --epochs 5 --out out/full
//   deno task train --llm none                        (the baseline without the frozen layer)
//   deno task train --llm random                      (the bundled llama-tiny: random weights, not text)
//   deno task train --resume out/vit                  (continue a run exactly where it stopped)
//   deno task train --help                            (every flag, its default and valid range)
//
// Writes to --out: metrics.jsonl (one JSON object per line), chart.svg (loss and accuracy), and
// checkpoint/ (model.safetensors with timm names, optimizer.safetensors, state.json with every setting
// of the run), replaced whole after each epoch. `deno task eval --checkpoint out/vit` evaluates it.

import { train } from "../mod.ts";

await train.trainCommand("image");
