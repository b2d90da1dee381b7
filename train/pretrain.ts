// Pretraining a LLaMA-architecture language model from scratch on a text corpus (`deno task pretrain`).
//
// Data: the corpus (a directory with train.txt and valid.txt, or one file whose last tenth of documents
// is held out) is split into documents at blank lines; each is encoded with the BPE tokenizer and
// followed by <|endoftext|>. The token stream is cached next to the corpus as `<file>.<tokenizer hash>.u16`
// (u32 for vocabularies over 65536), so a corpus is tokenized once per tokenizer.
// Batches: `batch` windows of context+1 tokens at offsets drawn from a seeded generator (its 32-bit
// state is saved with every checkpoint); ids are the first `context` tokens, targets the last.
// Optimisation: AdamW (β 0.9/0.95, no decay on RMSNorm weights), global-norm clipping, linear warmup
// then cosine to `minLr`, as a function of the step.
// Resume is exact: weights, AdamW moments and step count, the data generator and the step are restored,
// so a run stopped (--stop-after, --time-limit, or killed after a checkpoint) and resumed reads the
// same batches and reports the same losses as one run straight through.
// Output: `<out>/checkpoint/` (training checkpoint), `<out>/model/` (HF LlamaForCausalLM checkpoint with
// tokenizer.json, refreshed at every save), metrics.jsonl, and a summary with the validation perplexity
// against an add-one unigram baseline.

import { Graph } from "../compiler/core/ir.ts";
import { Rng } from "../compiler/core/random.ts";
import { compile, type Executable } from "../compiler/runtime/executable.ts";
import type { Gpu } from "../compiler/runtime/device.ts";
import { BpeTokenizer } from "../io/tokenizer.ts";
import { findCheckpoint, loadCheckpoint, saveCheckpoint } from "../io/checkpoint.ts";
import { writeHfLlama } from "../io/hf_llama.ts";
import { exists } from "../io/fs.ts";
import { buildLm, initLmWeights, type LmConfig, lmNoDecay, lmTensorShapes } from "../models/lm.ts";
import { Trainer } from "./trainer.ts";
import { Metrics, Progress, resumeMetrics } from "./progress.ts";
import { splitWindows, unigramCounts, unigramPerplexity } from "./lm_score.ts";

/** Everything a pretraining run is made of (stored in every checkpoint; a resume reuses it). */
export interface PretrainOptions {
  /** Corpus directory (train.txt + valid.txt) or one text file. */
  corpus: string;
  /** tokenizer.json (HF tokenizers format, byte-level BPE). */
  tokenizer: string;
  /** Run directory. */
  out: string;
  /** Model width. */
  hidden: number;
  /** Decoder layers. */
  layers: number;
  /** Attention heads. */
  heads: number;
  /** Key/value heads (0: = heads). */
  kvHeads: number;
  /** SwiGLU width (0: 8/3 · hidden rounded up to a multiple of 32). */
  intermediate: number;
  /** Tokens per training window (also the checkpoint's max_position_embeddings). */
  context: number;
  /** Windows per step. */
  batch: number;
  /** Optimizer steps in the whole run (the cosine's length). */
  steps: number;
  /** Peak learning rate. */
  lr: number;
  /** Warmup steps. */
  warmup: number;
  /** Final learning rate of the cosine. */
  minLr: number;
  /** AdamW weight decay (matrices only). */
  weightDecay: number;
  /** Global gradient-norm clip (0: off). */
  clip: number;
  /** Validation every N steps (0: only at the end). */
  evalEvery: number;
  /** Validation windows of context+1 tokens (0: the whole held-out split). */
  evalWindows: number;
  /** Checkpoint every N steps (0: only at the end). */
  saveEvery: number;
  /** Loss readback (and a metrics line) every N steps. */
  logEvery: number;
  /** Seed of the init and of the data order. */
  seed: number;
  /** Storage dtype of the exported HF model. */
  dtype: "bf16" | "f32";
}

/** Per-invocation controls, not part of the run (a resumed run may use others). */
export interface PretrainControls {
  /** Continue the run in this run directory (its checkpoint/), with its stored options. */
  resume?: string;
  /** Stop (after saving) once this invocation has taken N steps. */
  stopAfter?: number;
  /** Stop (after saving) once this invocation has run this many minutes. */
  timeLimitMin?: number;
  /** Progress lines and the summary (default: nothing printed). */
  log?: (line: string) => void;
  /** Progress bar stream (default: none). */
  progress?: boolean;
  /** Device. */
  gpu?: Gpu;
}

/** What a run (or one invocation of it) ended with. */
export interface PretrainSummary {
  /** Steps taken in total. */
  step: number;
  /** Tokens trained on in total. */
  tokens: number;
  /** Losses read in this invocation: [step, loss]. */
  losses: [number, number][];
  /** Last validation loss (mean over validation windows), if any ran. */
  valLoss?: number;
  /** exp(valLoss). */
  valPerplexity?: number;
  /** Add-one unigram perplexity on the held-out tokens, windows as lm-eval's. */
  unigramPerplexity: number;
  /** The exported HF checkpoint directory. */
  modelDir: string;
  /** The run directory (resume it with --resume). */
  runDir: string;
  /** Whether the run reached `steps` (false: stopped early, resume it). */
  finished: boolean;
  /** Trainable parameter count. */
  params: number;
  /** Tokens per second of this invocation, from its first loss readback on (compilation excluded). */
  tokensPerSecond: number;
}

/** The default SwiGLU width: 8/3 · hidden rounded up to a multiple of 32. */
export function defaultIntermediate(hidden: number): number {
  return Math.ceil((8 * hidden) / 3 / 32) * 32;
}

/** The model config of a run. */
export function pretrainModelConfig(o: PretrainOptions, vocab: number, eos: number): LmConfig {
  return {
    hidden: o.hidden,
    layers: o.layers,
    heads: o.heads,
    kvHeads: o.kvHeads || o.heads,
    intermediate: o.intermediate || defaultIntermediate(o.hidden),
    vocab,
    maxPositions: o.context,
    ropeTheta: 10000,
    rmsEps: 1e-5,
    bosId: eos,
    eosId: eos,
  };
}

/** Documents of a corpus text: blocks separated by blank lines. */
function documents(text: string): string[] {
  return text.split(/\n[ \t]*\n/).map((d) => d.trim()).filter((d) => d.length > 0);
}

async function sha8(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...h.slice(0, 4)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Encodes documents, each followed by the end-of-text id. */
function encodeDocs(docs: readonly string[], tok: BpeTokenizer, eot: number): Uint16Array | Uint32Array {
  const ids: number[] = [];
  for (const d of docs) {
    for (const id of tok.encode(d, { specials: false })) ids.push(id);
    ids.push(eot);
  }
  return tok.size > 65536 ? Uint32Array.from(ids) : Uint16Array.from(ids);
}

/** The corpus's train and held-out token streams, tokenized once and cached next to the text. */
export async function tokenizedCorpus(
  corpus: string,
  tokenizerPath: string,
  log?: (s: string) => void,
): Promise<{ train: Uint16Array | Uint32Array; valid: Uint16Array | Uint32Array; eot: number }> {
  const tokBytes = await Deno.readFile(tokenizerPath);
  const tok = BpeTokenizer.fromJSON(JSON.parse(new TextDecoder().decode(tokBytes)));
  const eot = tok.tokenToId("<|endoftext|>");
  if (eot === undefined) throw new Error(`${tokenizerPath}: no <|endoftext|> token`);
  const hash = await sha8(tokBytes);
  const ext = tok.size > 65536 ? "u32" : "u16";
  const isDir = (await Deno.stat(corpus)).isDirectory;
  const parts: { name: string; file: string; docs: () => Promise<string[]> }[] = isDir
    ? ["train", "valid"].map((name) => ({
      name,
      file: `${corpus}/${name}.txt`,
      docs: async () => documents(await Deno.readTextFile(`${corpus}/${name}.txt`)),
    }))
    : ["train", "valid"].map((name) => ({
      name,
      file: `${corpus}.${name}`,
      docs: async () => {
        const all = documents(await Deno.readTextFile(corpus));
        const cut = all.length - Math.max(1, Math.floor(all.length / 10));
        return name === "train" ? all.slice(0, cut) : all.slice(cut);
      },
    }));
  const out: Record<string, Uint16Array | Uint32Array> = {};
  for (const p of parts) {
    const cache = `${p.file}.${hash}.${ext}`;
    if (await exists(cache)) {
      const b = await Deno.readFile(cache);
      out[p.name] = ext === "u16"
        ? new Uint16Array(b.buffer, b.byteOffset, b.length / 2)
        : new Uint32Array(b.buffer, b.byteOffset, b.length / 4);
      continue;
    }
    const t0 = performance.now();
    const ids = encodeDocs(await p.docs(), tok, eot);
    const tmp = `${cache}.tmp-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.writeFile(tmp, new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
    await Deno.rename(tmp, cache);
    log?.(
      `tokenized ${p.file}: ${ids.length} tokens in ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s → ${cache}`,
    );
    out[p.name] = ids;
  }
  return { train: out.train, valid: out.valid, eot };
}

/** The learning rate at `step` (0-based): linear warmup to lr, then cosine to minLr at the last step. */
export function pretrainLr(o: PretrainOptions, step: number): number {
  if (step < o.warmup) return (o.lr * (step + 1)) / o.warmup;
  const t = Math.min(1, (step - o.warmup) / Math.max(1, o.steps - o.warmup));
  return o.minLr + 0.5 * (o.lr - o.minLr) * (1 + Math.cos(Math.PI * t));
}

/** Fills ids/targets with `batch` random windows of the stream (offsets drawn from rng). */
function fillBatch(
  tokens: Uint16Array | Uint32Array,
  rng: Rng,
  ids: Int32Array,
  targets: Int32Array,
  context: number,
): void {
  const batch = ids.length / context;
  const span = tokens.length - context - 1;
  if (span < 1) throw new Error(`pretrain: the corpus has ${tokens.length} tokens, fewer than a window`);
  for (let b = 0; b < batch; b++) {
    const off = rng.int(span + 1);
    for (let t = 0; t < context; t++) {
      ids[b * context + t] = tokens[off + t];
      targets[b * context + t] = tokens[off + t + 1];
    }
  }
}

/** Runs (or resumes) a pretraining run. */
export async function runPretrain(
  opts: PretrainOptions,
  ctl: PretrainControls = {},
): Promise<PretrainSummary> {
  const log = ctl.log ?? (() => {});
  let o = opts;
  let resumeState: { step: number; rng: number; tokens: number } | undefined;
  let resumeDir: string | undefined;
  if (ctl.resume) {
    const loc = await findCheckpoint(ctl.resume);
    const st = JSON.parse(await Deno.readTextFile(`${loc.checkpoint}/state.json`));
    if (!st.pretrain) {
      throw new Error(`${loc.checkpoint}: not a pretraining checkpoint (no "pretrain" options)`);
    }
    o = { ...st.pretrain, out: loc.runDir };
    resumeDir = loc.checkpoint;
    resumeState = { step: st.step, rng: st.rng, tokens: st.tokens };
    for (const s of loc.skipped) log(`resume: skipped ${s}`);
  }
  const data = await tokenizedCorpus(o.corpus, o.tokenizer, log);
  const tok = await BpeTokenizer.load(o.tokenizer);
  const cfg = pretrainModelConfig(o, tok.size, data.eot);
  await Deno.mkdir(o.out, { recursive: true });

  const g = new Graph();
  const m = buildLm(g, cfg, o.batch, o.context, initLmWeights(cfg, o.seed));
  const trainer = await Trainer.create(m.loss, {
    lr: o.lr,
    betas: [0.9, 0.95],
    eps: 1e-8,
    weightDecay: o.weightDecay,
    maxGradNorm: o.clip > 0 ? o.clip : undefined,
    noDecay: lmNoDecay,
    gpu: ctl.gpu,
  });
  const params = [...m.params.values()];
  const rng = new Rng(o.seed * 7919 + 101);
  let step = 0, tokens = 0;
  if (resumeDir && resumeState) {
    await loadCheckpoint(resumeDir, trainer.exe, params, trainer.opt);
    [step, tokens] = [resumeState.step, resumeState.tokens];
    rng.state = resumeState.rng;
    log(`resumed ${resumeDir} at step ${step} (${tokens} tokens)`);
    await resumeMetrics(`${o.out}/metrics.jsonl`, `${o.out}/metrics.jsonl`, step);
  }
  const metrics = new Metrics(`${o.out}/metrics.jsonl`, resumeDir !== undefined);
  const modelDir = `${o.out}/model`;
  log(
    `pretrain: ${trainer.paramCount} params (hidden ${cfg.hidden}, ${cfg.layers} layers, ${cfg.heads} heads, ` +
      `intermediate ${cfg.intermediate}, vocab ${cfg.vocab}), ${data.train.length} train / ${data.valid.length} held-out tokens, ` +
      `batch ${o.batch} × ${o.context}`,
  );

  // validation: a frozen copy of the model, weights copied from the trainer before each evaluation
  const evalWins = validationWindows(data.valid, o.context, o.evalWindows);
  const evalBatch = Math.min(o.batch, evalWins.length);
  let evaluator: { exe: Executable; g: Graph; m: ReturnType<typeof buildLm> } | undefined;
  const validate = async (): Promise<number> => {
    if (!evaluator) {
      const eg = new Graph();
      const em = buildLm(eg, cfg, evalBatch, o.context, initLmWeights(cfg, 0), false);
      evaluator = { g: eg, m: em, exe: await compile([em.loss], { gpu: ctl.gpu }) };
    }
    const { exe, m: em } = evaluator;
    for (const [name, p] of m.params) exe.write(em.params.get(name)!, await trainer.exe.read(p));
    let sum = 0, n = 0;
    const ids = new Int32Array(evalBatch * o.context), targets = new Int32Array(evalBatch * o.context);
    for (let i = 0; i < evalWins.length; i += evalBatch) {
      const rows = Math.min(evalBatch, evalWins.length - i);
      for (let b = 0; b < evalBatch; b++) {
        const off = evalWins[i + Math.min(b, rows - 1)]; // a short last batch repeats its last window
        for (let t = 0; t < o.context; t++) {
          ids[b * o.context + t] = data.valid[off + t];
          targets[b * o.context + t] = data.valid[off + t + 1];
        }
      }
      exe.write(em.ids, ids);
      exe.write(em.targets, targets);
      const [l] = await exe.run([em.loss]);
      // the batch loss is the mean over its rows; repeated rows count once
      if (rows === evalBatch) sum += l[0] * rows;
      else sum += await perRowMean(exe, em, ids, targets, rows, evalBatch, o.context);
      n += rows;
    }
    return sum / n;
  };

  const save = async () => {
    await trainer.assertFinite();
    await saveCheckpoint(`${o.out}/checkpoint`, trainer.exe, params, trainer.opt, {
      step,
      rng: rng.state,
      tokens,
      pretrain: o,
    });
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const { name, shape } of lmTensorShapes(cfg)) {
      tensors.set(name, { shape, data: (await trainer.exe.read(m.params.get(name)!)) as Float32Array });
    }
    await writeHfLlama(modelDir, m.cfg, tensors, {
      dtype: o.dtype,
      bosId: cfg.bosId,
      eosId: cfg.eosId,
      tokenizerJson: o.tokenizer,
      metadata: { step: String(step), tokens: String(tokens) },
    });
  };

  const ids = new Int32Array(o.batch * o.context), targets = new Int32Array(o.batch * o.context);
  const progress = ctl.progress ? new Progress(o.steps, "tok", step) : undefined;
  const t0 = performance.now();
  const startStep = step;
  const losses: [number, number][] = [];
  let valLoss: number | undefined, lastLoss = NaN;
  let stopped = false;
  // steady-state throughput: from the first loss readback on (the first steps compile the pipelines)
  let firstRead: { step: number; at: number } | undefined;
  while (step < o.steps) {
    fillBatch(data.train, rng, ids, targets, o.context);
    const lr = pretrainLr(o, step);
    const read = (step + 1) % o.logEvery === 0 || step + 1 === o.steps;
    const loss = await trainer.step(new Map([[m.ids, ids], [m.targets, targets]]), lr, read);
    step++;
    tokens += ids.length;
    if (loss !== undefined) {
      if (firstRead === undefined) firstRead = { step, at: performance.now() };
      lastLoss = loss;
      losses.push([step, loss]);
      metrics.log({ step, loss, lr, tokens });
    }
    const secs = (performance.now() - t0) / 1000;
    progress?.update(
      step,
      Number.isNaN(lastLoss) ? { lr } : { loss: lastLoss, lr },
      (step - startStep) * ids.length,
    );
    if (o.evalEvery > 0 && step % o.evalEvery === 0 && step < o.steps) {
      valLoss = await validate();
      metrics.log({ step, val_loss: valLoss, val_perplexity: Math.exp(valLoss), tokens });
      log(`step ${step}: validation loss ${valLoss.toFixed(4)} (perplexity ${Math.exp(valLoss).toFixed(2)})`);
    }
    const stop = step < o.steps &&
      ((ctl.stopAfter !== undefined && step - startStep >= ctl.stopAfter) ||
        (ctl.timeLimitMin !== undefined && secs >= ctl.timeLimitMin * 60));
    if ((o.saveEvery > 0 && step % o.saveEvery === 0) || stop) await save();
    if (stop) {
      stopped = true;
      break;
    }
  }
  const from = firstRead && step > firstRead.step ? firstRead : { step: startStep, at: t0 };
  const tokensPerSecond = ((step - from.step) * ids.length) /
    Math.max((performance.now() - from.at) / 1000, 1e-9);
  if (!stopped) {
    valLoss = await validate();
    await save();
  }
  const uni = unigramPerplexity(
    unigramCounts(data.train, cfg.vocab),
    data.train.length,
    [...data.valid],
    o.context,
  );
  const summary: PretrainSummary = {
    step,
    tokens,
    losses,
    valLoss,
    valPerplexity: valLoss === undefined ? undefined : Math.exp(valLoss),
    unigramPerplexity: uni.perplexity,
    modelDir,
    runDir: o.out,
    finished: !stopped,
    params: trainer.paramCount,
    tokensPerSecond,
  };
  metrics.log({
    final: true,
    step,
    tokens,
    val_loss: valLoss,
    val_perplexity: summary.valPerplexity,
    unigram_perplexity: uni.perplexity,
    tokens_per_second: tokensPerSecond,
    finished: !stopped,
  });
  metrics.close();
  evaluator?.exe.destroy();
  trainer.exe.destroy();
  return summary;
}

/** Offsets of the validation windows (context+1 tokens each, consecutive, at most `max`; 0: all). */
function validationWindows(valid: ArrayLike<number>, context: number, max: number): number[] {
  const out: number[] = [];
  for (const [s, e] of splitWindows(valid.length - 1, context)) {
    if (e - s === context) out.push(s);
    if (max > 0 && out.length >= max) break;
  }
  if (!out.length) throw new Error(`pretrain: the held-out split has fewer than ${context + 1} tokens`);
  return out;
}

/** Sum of the first `rows` rows' mean losses of a batch, one row at a time (the short last batch). */
async function perRowMean(
  exe: Executable,
  em: ReturnType<typeof buildLm>,
  ids: Int32Array,
  targets: Int32Array,
  rows: number,
  batch: number,
  context: number,
): Promise<number> {
  let sum = 0;
  for (let r = 0; r < rows; r++) {
    const one = new Int32Array(batch * context), tgt = new Int32Array(batch * context);
    for (let b = 0; b < batch; b++) {
      one.set(ids.subarray(r * context, (r + 1) * context), b * context);
      tgt.set(targets.subarray(r * context, (r + 1) * context), b * context);
    }
    exe.write(em.ids, one);
    exe.write(em.targets, tgt);
    sum += (await exe.run([em.loss]))[0][0];
  }
  return sum;
}
