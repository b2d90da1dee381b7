// Training byte-level BPE merges on a corpus, the way Hugging Face's BpeTrainer does it: the text is
// pre-tokenized once into a table of distinct words with counts; pair counts are kept incrementally (a merge
// only revisits the words that contain its pair) and the next merge comes from a max-heap with lazy
// deletion. Cost: one regex pass over the text, then roughly (words touched per merge) × (word length).
//
// Ids: byte b is token b (spelled with GPT-2's byte-to-unicode character); each merge's token takes the next
// id (merge k is token 256 + k unless an earlier merge spelled the same string); special tokens follow. The most frequent pair is merged first; ties go to the pair with the
// smaller (left id, right id), so training is deterministic.

import { BpeTokenizer, BYTE_LEVEL_CHARS, pretokenize, type SpecialToken } from "../../io/tokenizer.ts";

/** Options of trainBpe. */
export interface BpeTrainOptions {
  /** Total vocabulary: 256 bytes + merges + special tokens. */
  vocabSize: number;
  /** Special tokens, given ids after the merges in this order (default: none). */
  specialTokens?: readonly string[];
  /** Pairs seen fewer times than this are never merged (default 2). */
  minFrequency?: number;
  /** Called every `progressEvery` merges with (tokens learned, tokens wanted). */
  onProgress?: (done: number, total: number) => void;
  progressEvery?: number;
}

/** Counts of distinct pre-tokens, accumulated chunk by chunk (so a large corpus need not be one string). */
export class WordCounts {
  readonly counts = new Map<string, number>();

  /** Adds the pre-tokens of text. */
  add(text: string): void {
    for (const w of pretokenize(text)) this.counts.set(w, (this.counts.get(w) ?? 0) + 1);
  }
}

/** Pair key: ids are below 2^20, so left * 2^20 + right is exact in a double. */
const SHIFT = 1 << 20;

/** A max-heap of (count, pair key): larger count first, then smaller key. Entries may be stale. */
class PairHeap {
  #counts: number[] = [];
  #keys: number[] = [];

  get size(): number {
    return this.#counts.length;
  }

  #above(i: number, j: number): boolean {
    const ci = this.#counts[i], cj = this.#counts[j];
    return ci > cj || (ci === cj && this.#keys[i] < this.#keys[j]);
  }

  #swap(i: number, j: number): void {
    [this.#counts[i], this.#counts[j]] = [this.#counts[j], this.#counts[i]];
    [this.#keys[i], this.#keys[j]] = [this.#keys[j], this.#keys[i]];
  }

  push(count: number, key: number): void {
    this.#counts.push(count);
    this.#keys.push(key);
    let i = this.#counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#above(i, p)) break;
      this.#swap(i, p);
      i = p;
    }
  }

  pop(): [count: number, key: number] {
    const top: [number, number] = [this.#counts[0], this.#keys[0]];
    const last = this.#counts.length - 1;
    this.#swap(0, last);
    this.#counts.pop();
    this.#keys.pop();
    for (let i = 0;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < last && this.#above(l, m)) m = l;
      if (r < last && this.#above(r, m)) m = r;
      if (m === i) break;
      this.#swap(i, m);
      i = m;
    }
    return top;
  }
}

/** Learns merges from word counts and returns the tokenizer. */
export function trainBpe(words: WordCounts, opts: BpeTrainOptions): BpeTokenizer {
  const specials = opts.specialTokens ?? [];
  const minFreq = opts.minFrequency ?? 2;
  const wanted = opts.vocabSize - 256 - specials.length;
  if (wanted < 0) {
    throw new RangeError(
      `vocabSize ${opts.vocabSize} is below 256 bytes + ${specials.length} special tokens`,
    );
  }
  if (opts.vocabSize > SHIFT) throw new RangeError(`vocabSize ${opts.vocabSize} exceeds ${SHIFT}`);

  // Distinct words as symbol-id arrays, sorted so that word order (and so training) is deterministic.
  const enc = new TextEncoder();
  const entries = [...words.counts].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const syms: number[][] = entries.map(([w]) => Array.from(enc.encode(w)));
  const freq = entries.map(([, c]) => c);

  const pairCount = new Map<number, number>();
  const where = new Map<number, number[]>(); // pair → words that contained it (may repeat or be stale)
  const addPairs = (w: number, sign: 1 | -1) => {
    const s = syms[w];
    for (let i = 0; i + 1 < s.length; i++) {
      const k = s[i] * SHIFT + s[i + 1];
      pairCount.set(k, (pairCount.get(k) ?? 0) + sign * freq[w]);
      if (sign > 0) {
        const list = where.get(k);
        if (!list) where.set(k, [w]);
        else if (list[list.length - 1] !== w) list.push(w);
      }
    }
  };
  for (let w = 0; w < syms.length; w++) addPairs(w, 1);
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(c, k);

  // Token strings in the byte alphabet; merged tokens are concatenations.
  const tokens = [...BYTE_LEVEL_CHARS];
  const tokenId = new Map(tokens.map((t, i) => [t, i]));
  const merges: [string, string][] = [];
  const touched = new Int32Array(syms.length).fill(-1);
  while (tokens.length < 256 + wanted && heap.size > 0) {
    const [count, key] = heap.pop();
    const current = pairCount.get(key) ?? 0;
    if (current !== count) { // stale entry: requeue with the live count
      if (current > 0) heap.push(current, key);
      continue;
    }
    if (count < minFreq) break;
    const a = Math.floor(key / SHIFT), b = key % SHIFT;
    // Two merges can spell the same token ("ab c" and "a bc"): the second reuses the id, as HF does.
    const merged = tokens[a] + tokens[b];
    let id = tokenId.get(merged);
    if (id === undefined) {
      id = tokens.length;
      tokens.push(merged);
      tokenId.set(merged, id);
    }
    merges.push([tokens[a], tokens[b]]);
    const stamp = merges.length;
    const changed = new Set<number>();
    for (const w of where.get(key) ?? []) {
      if (touched[w] === stamp) continue;
      touched[w] = stamp;
      const s = syms[w];
      let has = false;
      for (let i = 0; i + 1 < s.length && !has; i++) has = s[i] === a && s[i + 1] === b;
      if (!has) continue;
      // Remove the word's pairs, merge left to right, add them back; note which pair counts moved.
      for (let i = 0; i + 1 < s.length; i++) changed.add(s[i] * SHIFT + s[i + 1]);
      addPairs(w, -1);
      const next: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          next.push(id!);
          i++;
        } else next.push(s[i]);
      }
      syms[w] = next;
      addPairs(w, 1);
      for (let i = 0; i + 1 < next.length; i++) changed.add(next[i] * SHIFT + next[i + 1]);
    }
    where.delete(key);
    pairCount.delete(key);
    changed.delete(key);
    for (const k of changed) {
      const c = pairCount.get(k) ?? 0;
      if (c > 0) heap.push(c, k);
      else pairCount.delete(k);
    }
    if (opts.onProgress && merges.length % (opts.progressEvery ?? 256) === 0) {
      opts.onProgress(tokens.length - 256, wanted);
    }
  }

  const vocab = tokenId;
  const specialTokens: SpecialToken[] = specials.map((content, i) => ({ id: tokens.length + i, content }));
  for (const s of specialTokens) vocab.set(s.content, s.id); // HF lists added tokens in the model vocab too
  return new BpeTokenizer(vocab, merges, specialTokens);
}
