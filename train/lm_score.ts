// Scoring a causal language model checkpoint on text (the `lm-eval` contract, exact):
//   the text is encoded whole with the checkpoint's tokenizer.json (no BOS), split into consecutive
//   windows of max_position_embeddings tokens (the last may be shorter), each window scored
//   independently as a causal LM (its first token is not predicted); P = exp(mean NLL over all
//   predicted tokens).
// The logits come from the GPU (models/llm.ts causalLm, the published LM mode); log-softmax and the
// NLL sum are f64 on the host. Also: an add-one smoothed unigram baseline and greedy generation.

import { Graph, type Node } from "../compiler/core/ir.ts";
import { compile, type Executable } from "../compiler/runtime/executable.ts";
import type { Gpu } from "../compiler/runtime/device.ts";
import { BpeTokenizer } from "../io/tokenizer.ts";
import { type LlmCheckpoint, openLlm } from "../io/llm.ts";
import { exists } from "../io/fs.ts";
import { causalLm, llmLoader } from "../models/llm.ts";

/** A perplexity and what it was measured over. */
export interface Perplexity {
  /** exp(mean NLL). */
  perplexity: number;
  /** Mean NLL in nats per predicted token. */
  meanNll: number;
  /** Predicted tokens (every token but each window's first). */
  tokens: number;
  /** Windows scored. */
  windows: number;
}

/** A checkpoint opened for scoring: its config, tokenizer and compiled forward passes per window length. */
export class LmScorer {
  private readonly exes = new Map<number, { exe: Executable; ids: Node; logits: Node }>();
  private constructor(
    /** The opened checkpoint. */
    readonly ck: LlmCheckpoint,
    private readonly tokenizer: BpeTokenizer,
    private readonly gpu?: Gpu,
  ) {}

  /** Opens `dir` (config.json, safetensors, tokenizer.json). */
  static async open(dir: string, gpu?: Gpu): Promise<LmScorer> {
    if (!(await exists(`${dir}/tokenizer.json`))) {
      throw new Error(`${dir}: no tokenizer.json (a language-model checkpoint needs one to score text)`);
    }
    const ck = await openLlm(dir);
    if (ck.cfg.type !== "llama") throw new Error(`${dir}: scoring needs a LLaMA model, not ${ck.cfg.type}`);
    return new LmScorer(ck, await BpeTokenizer.load(`${dir}/tokenizer.json`), gpu);
  }

  /** Token ids of text with the checkpoint's tokenizer (no BOS; special-token text stays special, as HF). */
  encode(text: string): number[] {
    return this.tokenizer.encode(text);
  }

  /** Logits [T, vocab] of one window of ids (T ≤ max_position_embeddings). */
  async logits(ids: readonly number[]): Promise<Float32Array> {
    const T = ids.length;
    let e = this.exes.get(T);
    if (!e) {
      const g = new Graph();
      const idsIn = g.input("ids", [1, T], "i32");
      const logits = await causalLm(g, idsIn, this.ck);
      const exe = await compile([logits], { gpu: this.gpu, weights: llmLoader(this.ck.src) });
      e = { exe, ids: idsIn, logits };
      this.exes.set(T, e);
    }
    e.exe.write(e.ids, Int32Array.from(ids));
    const [out] = await e.exe.run([e.logits]);
    return out as Float32Array;
  }

  /** Sum of −log p(token t | tokens < t) over t = 1..T−1 of one window (f64 log-softmax). */
  async windowNll(ids: readonly number[]): Promise<number> {
    if (ids.length < 2) return 0;
    const V = this.ck.cfg.vocab;
    const lg = await this.logits(ids);
    let sum = 0;
    for (let t = 0; t + 1 < ids.length; t++) sum += nllAt(lg, t * V, V, ids[t + 1]);
    return sum;
  }

  /** The contract's perplexity of `text`; `progress` is called after each window. */
  perplexity(text: string, progress?: (done: number, total: number) => void): Promise<Perplexity> {
    return this.perplexityOfIds(this.tokenizer.encode(text), progress);
  }

  /** The contract's perplexity of already encoded text. */
  async perplexityOfIds(
    ids: readonly number[],
    progress?: (done: number, total: number) => void,
  ): Promise<Perplexity> {
    const W = this.ck.cfg.maxPositions;
    const windows = splitWindows(ids.length, W);
    let nll = 0, tokens = 0;
    for (const [k, [s, e]] of windows.entries()) {
      nll += await this.windowNll(ids.slice(s, e));
      tokens += e - s - 1;
      progress?.(k + 1, windows.length);
    }
    return { perplexity: Math.exp(nll / tokens), meanNll: nll / tokens, tokens, windows: windows.length };
  }

  /** Greedy continuation of `prompt` by `n` tokens (the context is the last max_position_embeddings). */
  async greedy(prompt: string, n: number): Promise<string> {
    const ids = this.tokenizer.encode(prompt);
    const V = this.ck.cfg.vocab, W = this.ck.cfg.maxPositions;
    const start = ids.length;
    for (let i = 0; i < n; i++) {
      const ctx = ids.slice(-W);
      const lg = await this.logits(ctx);
      const off = (ctx.length - 1) * V;
      let best = 0;
      for (let v = 1; v < V; v++) if (lg[off + v] > lg[off + best]) best = v;
      ids.push(best);
      if (this.tokenizer.isSpecial(best)) break;
    }
    return this.tokenizer.decode(ids.slice(start));
  }

  /** Frees the compiled passes. */
  close(): void {
    for (const e of this.exes.values()) e.exe.destroy();
    this.exes.clear();
    this.ck.src.close?.();
  }
}

/** −log softmax(row)[target] of the row at `off` (length V), in f64. */
export function nllAt(logits: ArrayLike<number>, off: number, V: number, target: number): number {
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[off + v]);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(logits[off + v] - max);
  return max + Math.log(s) - logits[off + target];
}

/** Consecutive [start, end) windows of at most `w` tokens covering n tokens (the last may be shorter). */
export function splitWindows(n: number, w: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < n; s += w) out.push([s, Math.min(n, s + w)]);
  return out;
}

/**
 * Perplexity of an add-one smoothed unigram model estimated from `train` token counts (vocabulary V),
 * scored on the same predicted positions as the LM (each window's first token excluded).
 */
export function unigramPerplexity(
  counts: Float64Array,
  total: number,
  ids: readonly number[],
  window: number,
): Perplexity {
  const V = counts.length;
  let nll = 0, tokens = 0;
  const windows = splitWindows(ids.length, window);
  for (const [s, e] of windows) {
    for (let t = s + 1; t < e; t++) {
      nll -= Math.log((counts[ids[t]] + 1) / (total + V));
      tokens++;
    }
  }
  return { perplexity: Math.exp(nll / tokens), meanNll: nll / tokens, tokens, windows: windows.length };
}

/** Token counts of a token stream (u16/u32 array) over a vocabulary of V. */
export function unigramCounts(tokens: ArrayLike<number>, V: number): Float64Array {
  const c = new Float64Array(V);
  for (let i = 0; i < tokens.length; i++) c[tokens[i]]++;
  return c;
}
