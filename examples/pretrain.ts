// Pretrain a LLaMA-architecture language model on a text corpus and export it as an HF checkpoint.
//
//   deno task pretrain --corpus .data/corpus --tokenizer .data/tokenizer/tokenizer.json --out out/lm
//   deno task pretrain --resume out/lm                      # continue exactly where it stopped
//   deno task pretrain --corpus data/corpus/sample.txt --tokenizer data/corpus/reference/tokenizer-1k.json \
//     --hidden 64 --layers 2 --heads 4 --context 64 --batch 8 --steps 50 --out out/lm-smoke
//
// Output: <out>/model (config.json, model.safetensors, tokenizer.json: use it with --llm <out>/model
// or `deno task lm-eval --llm <out>/model --text FILE`), <out>/checkpoint, <out>/metrics.jsonl.

import { train } from "../mod.ts";

await train.pretrainCommand();
