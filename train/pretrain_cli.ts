// The `deno task pretrain` command line: flags → PretrainOptions, a progress bar, and the summary.

import { type FlagSpec, num, parseFlags } from "./cli.ts";
import { type PretrainOptions, runPretrain } from "./pretrain.ts";

/** The flags of `deno task pretrain`. */
export const PRETRAIN_FLAGS = {
  corpus: {
    type: "string",
    default: ".data/corpus",
    help: "corpus dir (train.txt, valid.txt) or one text file",
  },
  tokenizer: {
    type: "string",
    default: ".data/tokenizer/tokenizer.json",
    help: "tokenizer.json (byte-level BPE)",
  },
  out: { type: "string", default: "out/lm", help: "run directory (checkpoint/, model/, metrics.jsonl)" },
  hidden: { type: "string", default: "256", help: "model width" },
  layers: { type: "string", default: "4", help: "decoder layers" },
  heads: { type: "string", default: "4", help: "attention heads" },
  "kv-heads": { type: "string", default: "0", help: "key/value heads (0: = heads)" },
  intermediate: { type: "string", default: "0", help: "SwiGLU width (0: 8/3·hidden rounded up to 32)" },
  context: { type: "string", default: "256", help: "tokens per window (= max_position_embeddings)" },
  batch: { type: "string", default: "16", help: "windows per step" },
  steps: { type: "string", default: "2000", help: "optimizer steps of the whole run" },
  lr: { type: "string", default: "3e-3", help: "peak learning rate" },
  warmup: { type: "string", default: "100", help: "warmup steps" },
  "min-lr": { type: "string", default: "3e-4", help: "learning rate at the end of the cosine" },
  "weight-decay": { type: "string", default: "0.1", help: "AdamW weight decay (matrices only)" },
  clip: { type: "string", default: "1", help: "global gradient-norm clip (0: off)" },
  "eval-every": { type: "string", default: "200", help: "validation every N steps (0: at the end only)" },
  "eval-windows": { type: "string", default: "64", help: "validation windows (0: the whole held-out split)" },
  "save-every": { type: "string", default: "100", help: "checkpoint (and model export) every N steps" },
  "log-every": { type: "string", default: "10", help: "loss readback every N steps" },
  seed: { type: "string", default: "0", help: "seed of the init and the data order" },
  dtype: { type: "string", default: "bf16", help: "exported model dtype: bf16 or f32" },
  resume: { type: "string", default: "", help: "continue the run in this directory (its stored options)" },
  "stop-after": { type: "string", default: "0", help: "save and stop after N steps of this invocation" },
  "time-limit": { type: "string", default: "0", help: "save and stop after this many minutes" },
} satisfies FlagSpec;

/** Parses PRETRAIN_FLAGS into run options. */
export function pretrainOptionsFromFlags(f: Record<keyof typeof PRETRAIN_FLAGS, string>): PretrainOptions {
  const int = (k: keyof typeof PRETRAIN_FLAGS, min = 0) => {
    const v = num(k, f[k]);
    if (!Number.isInteger(v) || v < min) {
      console.error(`--${k}: expected an integer >= ${min}, got '${f[k]}'`);
      Deno.exit(2);
    }
    return v;
  };
  if (f.dtype !== "bf16" && f.dtype !== "f32") {
    console.error(`--dtype: expected bf16 or f32, got '${f.dtype}'`);
    Deno.exit(2);
  }
  return {
    corpus: f.corpus,
    tokenizer: f.tokenizer,
    out: f.out,
    hidden: int("hidden", 2),
    layers: int("layers", 1),
    heads: int("heads", 1),
    kvHeads: int("kv-heads"),
    intermediate: int("intermediate"),
    context: int("context", 2),
    batch: int("batch", 1),
    steps: int("steps", 1),
    lr: num("lr", f.lr),
    warmup: int("warmup"),
    minLr: num("min-lr", f["min-lr"]),
    weightDecay: num("weight-decay", f["weight-decay"]),
    clip: num("clip", f.clip),
    evalEvery: int("eval-every"),
    evalWindows: int("eval-windows"),
    saveEvery: int("save-every"),
    logEvery: int("log-every", 1),
    seed: int("seed"),
    dtype: f.dtype,
  };
}

/** `deno task pretrain`: parses Deno.args (or `args`), runs, prints the summary. */
export async function pretrainCommand(args: string[] = Deno.args): Promise<void> {
  const f = parseFlags("deno task pretrain [flags]", PRETRAIN_FLAGS, args);
  const opts = pretrainOptionsFromFlags(f);
  if (f.resume) {
    const keep = new Set(["resume", "stop-after", "time-limit"]);
    const given = args.filter((a) => a.startsWith("--")).map((a) => a.slice(2).split("=")[0]);
    const ignored = given.filter((k) => !keep.has(k));
    if (ignored.length) {
      console.error(
        `note: ${ignored.map((k) => `--${k}`).join(", ")} ignored: a resumed run keeps its stored options`,
      );
    }
  }
  const stopAfter = num("stop-after", f["stop-after"]), timeLimit = num("time-limit", f["time-limit"]);
  const s = await runPretrain(opts, {
    resume: f.resume || undefined,
    stopAfter: stopAfter > 0 ? stopAfter : undefined,
    timeLimitMin: timeLimit > 0 ? timeLimit : undefined,
    log: (l) => console.error(l),
    progress: true,
  });
  const lines = [
    `steps ${s.step}  tokens ${s.tokens}  params ${s.params}  ${s.tokensPerSecond.toFixed(0)} tokens/s`,
    s.valLoss !== undefined
      ? `validation loss ${s.valLoss.toFixed(4)}  perplexity ${
        s.valPerplexity!.toFixed(2)
      }  (unigram baseline ${s.unigramPerplexity.toFixed(2)})`
      : `unigram baseline perplexity ${s.unigramPerplexity.toFixed(2)}`,
    `model ${s.modelDir}`,
    s.finished ? "finished" : `stopped at step ${s.step}: continue with --resume ${s.runDir}`,
  ];
  for (const l of lines) console.log(l);
}
