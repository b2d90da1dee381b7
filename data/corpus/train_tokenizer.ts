// Trains the byte-level BPE tokenizer on the corpus and writes tokenizer.json (Hugging Face format):
//
//   deno run -A data/corpus/train_tokenizer.ts [--corpus .data/corpus] [--vocab 4096]
//     [--out .data/tokenizer/tokenizer.json] [--special "<|endoftext|>"]...
//
// Reads CORPUS/train.txt; reports the training time and the tokens per byte on CORPUS/valid.txt.
// The committed reference tokenizer (data/corpus/reference/) is this run on the committed sample:
//   deno run -A data/corpus/train_tokenizer.ts --train data/corpus/sample.txt --valid data/corpus/sample.txt \
//     --vocab 1024 --out data/corpus/reference/tokenizer-1k.json

import { BpeTokenizer } from "../../io/tokenizer.ts";
import { trainBpe, WordCounts } from "./bpe.ts";

const HELP = `Usage: deno run -A data/corpus/train_tokenizer.ts [options]
  --corpus DIR      corpus directory with train.txt and valid.txt (default .data/corpus)
  --vocab N         vocabulary size: 256 bytes + merges + special tokens (default 4096)
  --min-frequency N pairs seen fewer times are not merged (default 2)
  --special TOKEN   a special token (repeatable; default <|endoftext|>, the document separator)
  --train FILE      training text instead of CORPUS/train.txt
  --valid FILE      held-out text instead of CORPUS/valid.txt
  --out FILE        output tokenizer.json (default .data/tokenizer/tokenizer.json)`;

/** Feeds text to the counter in ~1 MB pieces cut before a blank line, where a pre-token always ends. */
function countWords(text: string, words: WordCounts): void {
  for (let pos = 0; pos < text.length;) {
    let end = text.indexOf("\n\n", pos + 1_000_000);
    if (end < 0) end = text.length;
    words.add(text.slice(pos, end));
    pos = end;
  }
}

async function main() {
  let corpus = ".data/corpus", vocab = 4096, minFrequency = 2, out = ".data/tokenizer/tokenizer.json";
  let trainFile = "", validFile = "";
  const specials: string[] = [];
  const argv = Deno.args;
  for (let i = 0; i < argv.length; i++) {
    const value = () => {
      if (argv[i + 1] === undefined) throw new Error(`${argv[i]} needs a value`);
      return argv[++i];
    };
    switch (argv[i]) {
      case "--corpus":
        corpus = value();
        break;
      case "--vocab":
        vocab = Number(value());
        break;
      case "--min-frequency":
        minFrequency = Number(value());
        break;
      case "--special":
        specials.push(value());
        break;
      case "--train":
        trainFile = value();
        break;
      case "--valid":
        validFile = value();
        break;
      case "--out":
        out = value();
        break;
      case "-h":
      case "--help":
        console.log(HELP);
        return;
      default:
        throw new Error(`unknown flag ${argv[i]}\n${HELP}`);
    }
  }
  if (!specials.length) specials.push("<|endoftext|>");
  trainFile ||= `${corpus}/train.txt`;
  validFile ||= `${corpus}/valid.txt`;
  let train: string;
  try {
    train = await Deno.readTextFile(trainFile);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`${trainFile} not found: build the corpus first (deno run -A data/corpus/build.ts)`);
    }
    throw e;
  }

  const t0 = performance.now();
  const words = new WordCounts();
  countWords(train, words);
  const t1 = performance.now();
  console.log(`counted ${words.counts.size} distinct pre-tokens in ${((t1 - t0) / 1000).toFixed(1)} s`);
  const tok = trainBpe(words, {
    vocabSize: vocab,
    specialTokens: specials,
    minFrequency,
    onProgress: (done, total) => Deno.stdout.writeSync(new TextEncoder().encode(`\rmerges ${done}/${total}`)),
  });
  const t2 = performance.now();
  console.log(
    `\nlearned ${tok.merges.length} merges in ${((t2 - t1) / 1000).toFixed(1)} s` +
      ` (total ${((t2 - t0) / 1000).toFixed(1)} s)`,
  );

  await Deno.mkdir(out.slice(0, Math.max(0, out.lastIndexOf("/"))) || ".", { recursive: true });
  await tok.save(out);
  const reloaded = await BpeTokenizer.load(out);
  const valid = await Deno.readTextFile(validFile);
  const t3 = performance.now();
  const ids = reloaded.encode(valid);
  const t4 = performance.now();
  const bytes = new TextEncoder().encode(valid).length;
  if (reloaded.decode(ids) !== valid) {
    throw new Error("valid.txt does not round-trip through the saved tokenizer");
  }
  console.log(
    `valid: ${ids.length} tokens / ${bytes} bytes = ${(ids.length / bytes).toFixed(4)} tokens per byte` +
      ` (${(bytes / ids.length).toFixed(2)} bytes per token; encoded in ${((t4 - t3) / 1000).toFixed(1)} s)`,
  );
  console.log(`vocabulary ${reloaded.size} -> ${out}`);
}

if (import.meta.main) await main();
