// Perplexity of a language-model checkpoint on a text file (the exact contract is in train/lm_score.ts):
//
//   deno task lm-eval --llm out/lm/model --text .data/corpus/valid.txt --unigram .data/corpus
//   deno task lm-eval --llm default --text FILE --sample "The meaning of|A dictionary"
//
// prints `checkpoint <absolute dir>`, `perplexity <P> over <N> tokens` (and the unigram baseline, samples).

import { train } from "../mod.ts";

await train.lmEvalCommand();
