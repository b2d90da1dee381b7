// Greedy samples from a language-model checkpoint:
//
//   deno run -A examples/generate.ts --llm out/lm/model --sample "The meaning of|A dictionary" --sample-tokens 60

import { train } from "../mod.ts";

await train.lmEvalCommand();
