// Byte-level BPE tokenizers as GPT-2 uses them, stored in the Hugging Face `tokenizers` JSON format
// (tokenizer.json). Text is split into pre-tokens by the GPT-2 regex, each pre-token's UTF-8 bytes are
// spelled with GPT-2's byte-to-unicode alphabet (so every byte is a printable character and a space is
// "Ġ"), and the BPE merges are applied by rank. Because every byte has a token, any string encodes and
// decodes back exactly; there is no unknown token.
//
// Format (what `toJSON` writes and `fromJSON` reads):
//   { "version": "1.0", "added_tokens": [{id, content, special, ...}], "normalizer": null,
//     "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true, ...},
//     "decoder": {"type": "ByteLevel", ...},
//     "model": {"type": "BPE", "vocab": {token: id}, "merges": ["a b", ...] or [["a", "b"], ...]} }
// Merges are read in both spellings (older `tokenizers` write "a b" strings, newer write pairs); they are
// written as strings, which every version reads. A space never occurs inside a byte-level token, so the
// string form is unambiguous.

/** The GPT-2 pre-tokenization pattern (contractions, letter runs, number runs, other runs, spaces). */
export const GPT2_PATTERN: RegExp =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * GPT-2's byte-to-unicode table: entry b is the character that spells byte b. Printable Latin-1 bytes
 * ("!".."~", "¡".."¬", "®".."ÿ") stand for themselves; the other 68 bytes take the characters U+0100 on, in
 * byte order (so space, byte 32, is "Ġ" U+0120 and newline, byte 10, is "Ċ" U+010A).
 */
export function bytesToUnicode(): string[] {
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let next = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCharCode(printable(b) ? b : 256 + next++));
  return out;
}

/** bytesToUnicode(), computed once. */
export const BYTE_LEVEL_CHARS: readonly string[] = bytesToUnicode();
const BYTE_CHARS = BYTE_LEVEL_CHARS;
const CHAR_BYTES = new Map(BYTE_CHARS.map((c, b) => [c, b]));
const UTF8 = new TextEncoder();

/** Splits text into GPT-2 pre-tokens (their concatenation is the text). */
export function pretokenize(text: string): string[] {
  return text.match(GPT2_PATTERN) ?? [];
}

/** A pre-token spelled in the byte alphabet: its UTF-8 bytes, each replaced by its character. */
export function byteLevel(piece: string): string {
  let s = "";
  for (const b of UTF8.encode(piece)) s += BYTE_CHARS[b];
  return s;
}

/** A token that is matched whole in the text and never split or merged (e.g. "<|endoftext|>"). */
export interface SpecialToken {
  /** The token's id. */
  id: number;
  /** Its text, matched verbatim. */
  content: string;
}

/** Options of encode. */
export interface EncodeOptions {
  /**
   * Whether special-token text in the input becomes the special token (true, the default, as Hugging Face
   * does) or is encoded as ordinary bytes (false, for untrusted text).
   */
  specials?: boolean;
}

/** Raised for a tokenizer.json this reader does not support or that contradicts itself. */
export class TokenizerFormatError extends Error {
  /** The error's name. */
  override name = "TokenizerFormatError";
}

/** Largest vocabulary the pair keys allow (2^20 ids); byte-level BPE vocabularies are far smaller. */
const MAX_VOCAB = 1 << 20;

/** A byte-level BPE tokenizer: vocabulary, ranked merges and special tokens. */
export class BpeTokenizer {
  /** Token string → id (byte-level spelling; specials included). */
  readonly vocab: ReadonlyMap<string, number>;
  /** Merges in rank order, each a pair of token strings. */
  readonly merges: readonly (readonly [string, string])[];
  /** Special tokens (matched whole in text, never merged). */
  readonly specials: readonly SpecialToken[];
  /** Whether a space is put before text that does not start with whitespace (HF `add_prefix_space`). */
  readonly addPrefixSpace: boolean;

  readonly #idToToken: string[] = [];
  readonly #specialIds = new Set<number>();
  readonly #byteIds: Int32Array;
  /** Pair key (left id * MAX_VOCAB + right id) → rank; the merged token's id is in #mergedId. */
  readonly #rank = new Map<number, number>();
  readonly #mergedId = new Map<number, number>();
  readonly #specialSplit: RegExp | null;
  readonly #cache = new Map<string, number[]>();

  /** A tokenizer from its parts (what `fromJSON` reads and `trainBpe` learns); checks their consistency. */
  constructor(
    vocab: ReadonlyMap<string, number>,
    merges: readonly (readonly [string, string])[],
    specials: readonly SpecialToken[] = [],
    opts: { addPrefixSpace?: boolean } = {},
  ) {
    this.vocab = vocab;
    this.merges = merges;
    this.specials = specials;
    this.addPrefixSpace = opts.addPrefixSpace ?? false;
    for (const [tok, id] of vocab) {
      if (!Number.isInteger(id) || id < 0 || id >= MAX_VOCAB) {
        throw new TokenizerFormatError(
          `token ${JSON.stringify(tok)} has id ${id}: ids must be 0..${MAX_VOCAB - 1}`,
        );
      }
      if (this.#idToToken[id] !== undefined) {
        throw new TokenizerFormatError(
          `id ${id} is used by ${JSON.stringify(this.#idToToken[id])} and ${JSON.stringify(tok)}`,
        );
      }
      this.#idToToken[id] = tok;
    }
    this.#byteIds = new Int32Array(256);
    for (let b = 0; b < 256; b++) {
      const id = vocab.get(BYTE_CHARS[b]);
      if (id === undefined) {
        throw new TokenizerFormatError(
          `byte ${b} (${JSON.stringify(BYTE_CHARS[b])}) has no token: a byte-level vocabulary needs all 256`,
        );
      }
      this.#byteIds[b] = id;
    }
    merges.forEach(([a, b], rank) => {
      const ia = vocab.get(a), ib = vocab.get(b), im = vocab.get(a + b);
      if (ia === undefined || ib === undefined || im === undefined) {
        const missing = ia === undefined ? a : ib === undefined ? b : a + b;
        throw new TokenizerFormatError(
          `merge ${rank} "${a} ${b}": ${JSON.stringify(missing)} is not in the vocabulary`,
        );
      }
      const key = ia * MAX_VOCAB + ib;
      if (!this.#rank.has(key)) {
        this.#rank.set(key, rank);
        this.#mergedId.set(key, im);
      }
    });
    for (const s of specials) {
      if (this.#idToToken[s.id] === undefined) this.#idToToken[s.id] = s.content;
      else if (this.#idToToken[s.id] !== s.content) {
        throw new TokenizerFormatError(
          `special token ${JSON.stringify(s.content)} has id ${s.id}, which the vocabulary gives to ${
            JSON.stringify(this.#idToToken[s.id])
          }`,
        );
      }
      this.#specialIds.add(s.id);
    }
    // Longest first, so that a special token containing another one wins.
    const alts = specials.map((s) => s.content).filter((c) => c.length > 0).sort((a, b) =>
      b.length - a.length
    );
    this.#specialSplit = alts.length
      ? new RegExp(`(${alts.map((c) => c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`, "u")
      : null;
  }

  /** Number of ids (one more than the largest id). */
  get size(): number {
    return this.#idToToken.length;
  }

  /** The id of a token string (byte-level spelling, or a special token's content), if any. */
  tokenToId(token: string): number | undefined {
    return this.vocab.get(token) ?? this.specials.find((s) => s.content === token)?.id;
  }

  /** The token string of an id (byte-level spelling, or a special token's content), if any. */
  idToToken(id: number): string | undefined {
    return this.#idToToken[id];
  }

  /** Whether id is a special token. */
  isSpecial(id: number): boolean {
    return this.#specialIds.has(id);
  }

  /** Token ids of text (no BOS/EOS added). */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (this.addPrefixSpace && text.length > 0 && !/^\s/u.test(text)) text = " " + text;
    const parts = this.#specialSplit && (opts.specials ?? true) ? text.split(this.#specialSplit) : [text];
    // split with one capture group alternates ordinary text (even indices) and special tokens (odd).
    parts.forEach((part, i) => {
      if (i % 2 === 1) out.push(this.specials.find((s) => s.content === part)!.id);
      else for (const piece of pretokenize(part)) for (const id of this.#word(piece)) out.push(id);
    });
    return out;
  }

  /** Text of ids. Invalid UTF-8 (a multi-byte character cut between ids) decodes to U+FFFD. */
  decode(ids: readonly number[], opts: { skipSpecial?: boolean } = {}): string {
    let text = "";
    let bytes: number[] = [];
    const flush = () => {
      if (bytes.length) text += new TextDecoder().decode(new Uint8Array(bytes));
      bytes = [];
    };
    for (const id of ids) {
      const tok = this.#idToToken[id];
      if (tok === undefined) {
        throw new RangeError(`token id ${id} is not in the vocabulary (size ${this.size})`);
      }
      if (this.#specialIds.has(id)) {
        flush();
        if (!opts.skipSpecial) text += tok;
        continue;
      }
      for (const ch of tok) {
        const b = CHAR_BYTES.get(ch);
        if (b === undefined) {
          throw new TokenizerFormatError(`token ${id} contains ${JSON.stringify(ch)}, not a byte character`);
        }
        bytes.push(b);
      }
    }
    flush();
    return text;
  }

  /** BPE of one pre-token: merge the lowest-ranked adjacent pair (all its occurrences) until none applies. */
  #word(piece: string): number[] {
    const cached = this.#cache.get(piece);
    if (cached) return cached;
    let syms = Array.from(UTF8.encode(piece), (b) => this.#byteIds[b]);
    while (syms.length > 1) {
      let best = -1, bestRank = Infinity;
      for (let i = 0; i + 1 < syms.length; i++) {
        const r = this.#rank.get(syms[i] * MAX_VOCAB + syms[i + 1]);
        if (r !== undefined && r < bestRank) [best, bestRank] = [syms[i] * MAX_VOCAB + syms[i + 1], r];
      }
      if (best < 0) break;
      const merged = this.#mergedId.get(best)!;
      const next: number[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] * MAX_VOCAB + syms[i + 1] === best) {
          next.push(merged);
          i++;
        } else next.push(syms[i]);
      }
      syms = next;
    }
    if (this.#cache.size > 200_000) this.#cache.clear();
    this.#cache.set(piece, syms);
    return syms;
  }

  /** The Hugging Face tokenizer.json object (serialize with JSON.stringify). */
  toJSON(): Record<string, unknown> {
    const byteLevel = {
      type: "ByteLevel",
      add_prefix_space: this.addPrefixSpace,
      trim_offsets: true,
      use_regex: true,
    };
    const vocab: Record<string, number> = {};
    for (const [tok, id] of [...this.vocab].sort((a, b) => a[1] - b[1])) vocab[tok] = id;
    return {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: this.specials.map((s) => ({
        id: s.id,
        content: s.content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
      normalizer: null,
      pre_tokenizer: byteLevel,
      post_processor: { ...byteLevel, trim_offsets: false },
      decoder: byteLevel,
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges: this.merges.map(([a, b]) => `${a} ${b}`),
      },
    };
  }

  /**
   * A tokenizer from a parsed tokenizer.json (or its text). Supports the byte-level BPE form GPT-2 uses:
   * model BPE without dropout, unknown token or subword affixes, a ByteLevel pre-tokenizer with the GPT-2
   * regex, no normalizer.
   */
  static fromJSON(json: unknown): BpeTokenizer {
    const j = (typeof json === "string" ? JSON.parse(json) : json) as Record<string, any>;
    const fail = (msg: string): never => {
      throw new TokenizerFormatError(`tokenizer.json: ${msg}`);
    };
    if (!j || typeof j !== "object") fail("not a JSON object");
    const model = j.model;
    if (!model || model.type !== "BPE") {
      fail(`model.type is ${JSON.stringify(model?.type)}; only "BPE" is supported`);
    }
    if (model.dropout) fail("BPE dropout is not supported");
    if (model.continuing_subword_prefix || model.end_of_word_suffix) {
      fail("subword prefixes/suffixes are not supported");
    }
    if (j.normalizer != null) {
      fail(`normalizer ${JSON.stringify(j.normalizer?.type)} is not supported (expected null)`);
    }
    const pre = j.pre_tokenizer;
    if (!pre || pre.type !== "ByteLevel") {
      fail(`pre_tokenizer.type is ${JSON.stringify(pre?.type)}; only "ByteLevel" is supported`);
    }
    if (pre.use_regex === false) fail("pre_tokenizer ByteLevel without use_regex is not supported");
    if (j.decoder != null && j.decoder.type !== "ByteLevel") {
      fail(`decoder.type is ${JSON.stringify(j.decoder.type)}; only "ByteLevel" is supported`);
    }
    if (!model.vocab || typeof model.vocab !== "object") fail("model.vocab is missing");
    const vocab = new Map<string, number>(Object.entries(model.vocab as Record<string, number>));
    if (!Array.isArray(model.merges)) fail("model.merges is missing");
    const merges = (model.merges as unknown[]).map((m, i): [string, string] => {
      if (typeof m === "string") {
        const parts = m.split(" ");
        if (parts.length !== 2) fail(`merge ${i} ${JSON.stringify(m)} is not "left right"`);
        return [parts[0], parts[1]];
      }
      if (Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === "string")) return [m[0], m[1]];
      return fail(`merge ${i} ${JSON.stringify(m)} is neither "left right" nor [left, right]`);
    });
    const specials: SpecialToken[] = ((j.added_tokens ?? []) as Record<string, unknown>[]).map((t) => {
      if (typeof t.id !== "number" || typeof t.content !== "string") {
        fail(`added token ${JSON.stringify(t)} lacks id/content`);
      }
      return { id: t.id as number, content: t.content as string };
    });
    return new BpeTokenizer(vocab, merges, specials, { addPrefixSpace: !!pre.add_prefix_space });
  }

  /** Reads a tokenizer.json file. */
  static async load(path: string): Promise<BpeTokenizer> {
    return BpeTokenizer.fromJSON(JSON.parse(await Deno.readTextFile(path)));
  }

  /** Writes this tokenizer as tokenizer.json (pretty-printed, as `tokenizers` does). */
  async save(path: string): Promise<void> {
    await Deno.writeTextFile(path, JSON.stringify(this.toJSON(), null, 2) + "\n");
  }
}
