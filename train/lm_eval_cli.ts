// The `deno task lm-eval` command line (contract in train/lm_score.ts): prints `checkpoint <absolute dir>`
// and `perplexity <P> over <N> tokens`; optionally the add-one unigram baseline on the same tokens and
// greedy samples.

import { resolve } from "node:path";
import { exists } from "../io/fs.ts";
import { DEFAULT_LLM } from "../models/presets.ts";
import { type FlagSpec, num, parseFlags } from "./cli.ts";
import { LmScorer, unigramCounts, unigramPerplexity } from "./lm_score.ts";
import { tokenizedCorpus } from "./pretrain.ts";

const FLAGS = {
  llm: {
    type: "string",
    default: "default",
    help: "checkpoint dir (config.json, model.safetensors, tokenizer.json) or 'default'",
  },
  text: { type: "string", default: "", help: "text file to score" },
  unigram: {
    type: "string",
    default: "",
    help: "corpus (dir or file) whose train split gives the add-one unigram baseline",
  },
  sample: { type: "string", default: "", help: "prompt(s) to continue greedily, separated by '|'" },
  "sample-tokens": { type: "string", default: "40", help: "tokens per greedy sample" },
} satisfies FlagSpec;

/** `deno task lm-eval`. */
export async function lmEvalCommand(args: string[] = Deno.args): Promise<void> {
  const f = parseFlags(
    "deno task lm-eval --llm DIR|default --text FILE [--unigram CORPUS] [--sample PROMPT]",
    FLAGS,
    args,
  );
  const dir = resolve(f.llm === "default" ? DEFAULT_LLM : f.llm);
  if (!(await exists(`${dir}/config.json`))) {
    console.error(
      f.llm === "default"
        ? `lm-eval: the default language model is not there (${dir}): make one with deno task pretrain and copy its model/ directory there, or pass --llm DIR`
        : `lm-eval: ${dir} has no config.json: not a checkpoint directory`,
    );
    Deno.exit(2);
  }
  if (!f.text && !f.sample) {
    console.error("lm-eval: give --text FILE (and/or --sample PROMPT)");
    Deno.exit(2);
  }
  const scorer = await LmScorer.open(dir);
  console.log(`checkpoint ${dir}`);
  try {
    if (f.text) {
      const ids = scorer.encode(await Deno.readTextFile(f.text));
      if (ids.length < 2) {
        console.error(`lm-eval: ${f.text} encodes to ${ids.length} token(s); nothing to predict`);
        Deno.exit(2);
      }
      const p = await scorer.perplexityOfIds(ids);
      console.log(`perplexity ${p.perplexity} over ${p.tokens} tokens`);
      if (f.unigram) {
        const data = await tokenizedCorpus(f.unigram, `${dir}/tokenizer.json`, (l) => console.error(l));
        const V = scorer.ck.cfg.vocab;
        const u = unigramPerplexity(
          unigramCounts(data.train, V),
          data.train.length,
          ids,
          scorer.ck.cfg.maxPositions,
        );
        console.log(`unigram perplexity ${u.perplexity} over ${u.tokens} tokens`);
      }
    }
    if (f.sample) {
      const n = num("sample-tokens", f["sample-tokens"]);
      for (const prompt of f.sample.split("|")) {
        console.log(`sample ${JSON.stringify(prompt)} → ${JSON.stringify(await scorer.greedy(prompt, n))}`);
      }
    }
  } finally {
    scorer.close();
  }
}
