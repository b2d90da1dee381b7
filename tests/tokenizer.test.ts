// Byte-level BPE: the byte alphabet, GPT-2 pre-tokenization, merge training (hand-computed merges and a
// naive re-counting trainer), the tokenizer.json format, round trips, and ids from an independent
// implementation (tiktoken, generated once by data/corpus/reference/tiktoken_ref.py).

import { assert, assertThrowsMsg, test } from "./testing.ts";
import { BpeTokenizer, bytesToUnicode, pretokenize, TokenizerFormatError } from "../io/tokenizer.ts";
import { trainBpe, WordCounts } from "../data/corpus/bpe.ts";

const REF = new URL("../data/corpus/reference/", import.meta.url);
const SAMPLE = new URL("../data/corpus/sample.txt", import.meta.url);
const loadRef = async () => BpeTokenizer.fromJSON(await Deno.readTextFile(new URL("tokenizer-1k.json", REF)));

function train(text: string, vocabSize: number, opts: { minFrequency?: number; specials?: string[] } = {}) {
  const words = new WordCounts();
  words.add(text);
  return trainBpe(words, { vocabSize, minFrequency: opts.minFrequency, specialTokens: opts.specials });
}

test("tokenizer: GPT-2 byte-to-unicode table", () => {
  const t = bytesToUnicode();
  assert.equal(t.length, 256);
  assert.equal(new Set(t).size, 256);
  assert.equal(t[0x41], "A");
  assert.equal(t[0x21], "!");
  assert.equal(t[0xe9], "é"); // printable Latin-1 stands for itself
  assert.equal(t[0], "\u0100"); // the 68 others take U+0100.. in byte order
  assert.equal(t[10], "Ċ");
  assert.equal(t[32], "Ġ");
  assert.equal(t[127], "ġ");
  assert.equal(t[0xad], "Ń"); // soft hyphen, the last non-printable Latin-1 byte before 0xAE
  assert.equal(t[0xa0], "ł");
});

test("tokenizer: pre-tokenization splits as GPT-2's regex does", () => {
  const cases: [string, string[]][] = [
    ["Hello world", ["Hello", " world"]],
    ["I'm fine, isn't it?", ["I", "'m", " fine", ",", " isn", "'t", " it", "?"]],
    ["DON'T", ["DON", "'", "T"]], // contractions are lower-case only
    ["we'll they've you're he'd", ["we", "'ll", " they", "'ve", " you", "'re", " he", "'d"]],
    ["in 2024 we", ["in", " 2024", " we"]],
    ["$100.00", ["$", "100", ".", "00"]],
    ["a  b", ["a", " ", " b"]], // the last space of a run joins the next word
    ["x\n\ny", ["x", "\n", "\n", "y"]],
    ["end   ", ["end", "   "]],
    ["  two", [" ", " two"]],
    ["tab\there", ["tab", "\t", "here"]],
    ["a1b2", ["a", "1", "b", "2"]],
    ["café naïve", ["café", " naïve"]],
    ["e\u0301", ["e", "\u0301"]], // a combining mark is not a letter (\p{M})
    [" 🙂🙂!", [" 🙂🙂!"]],
    ["漢字 かな", ["漢字", " かな"]],
    ['..."quoted"', ['..."', "quoted", '"']],
    ["", []],
  ];
  for (const [text, want] of cases) {
    assert.deepEqual(pretokenize(text), want, JSON.stringify(text));
    assert.equal(pretokenize(text).join(""), text);
  }
});

test("tokenizer: training learns the hand-computed merges", () => {
  // Words "ab" ×1, " ab" ×2, " abc" ×1: pairs (a,b) 4, (Ġ,a) 3, (b,c) 1 → "a b"; then (Ġ,ab) 3 → "Ġ ab";
  // then (Ġab,c) 1, merged only when the minimum frequency allows it.
  const text = "ab ab ab abc";
  assert.deepEqual(train(text, 300).merges, [["a", "b"], ["Ġ", "ab"]]);
  const tok = train(text, 260, { minFrequency: 1, specials: ["<|endoftext|>"] });
  assert.deepEqual(tok.merges, [["a", "b"], ["Ġ", "ab"], ["Ġab", "c"]]);
  assert.equal(tok.size, 260);
  assert.deepEqual([tok.tokenToId("ab"), tok.tokenToId("Ġab"), tok.tokenToId("Ġabc")], [256, 257, 258]);
  assert.equal(tok.tokenToId("<|endoftext|>"), 259);
  assert.deepEqual(tok.encode("ab abc ab"), [256, 258, 257]);
  assert.deepEqual(tok.encode("abab<|endoftext|>c"), [256, 256, 259, 99]);
  // Ties go to the smaller (left id, right id): (Ġ=32, c) before (a, b) before (Ġc, d).
  assert.deepEqual(train("ab cd", 259, { minFrequency: 1 }).merges, [["Ġ", "c"], ["a", "b"], ["Ġc", "d"]]);
  // Overlapping occurrences merge left to right: "aaa" is (aa)(a), so pairs (aa,a) 1 and nothing else.
  assert.deepEqual(train("aaa", 258, { minFrequency: 1 }).merges, [["a", "a"], ["aa", "a"]]);
  assertThrowsMsg(() => train(text, 200), "vocabSize 200");
});

/** The textbook trainer: recount every pair of every word before each merge; returns the merges. */
function naiveMerges(text: string, newTokens: number): string[] {
  const words = new Map<string, number>();
  for (const w of pretokenize(text)) words.set(w, (words.get(w) ?? 0) + 1);
  const chars = bytesToUnicode();
  const syms = [...words.keys()].map((w) => Array.from(new TextEncoder().encode(w), (b) => chars[b]));
  const freq = [...words.values()];
  const id = new Map(chars.map((c, i) => [c, i]));
  const out: string[] = [];
  while (id.size < 256 + newTokens) {
    const counts = new Map<string, number>();
    syms.forEach((s, w) => {
      for (let i = 0; i + 1 < s.length; i++) {
        const p = s[i] + " " + s[i + 1];
        counts.set(p, (counts.get(p) ?? 0) + freq[w]);
      }
    });
    const key = (p: string) => p.split(" ").map((t) => id.get(t)!);
    let best = "", bestCount = 0;
    for (const [p, c] of counts) {
      const [a, b] = key(p), [ba, bb] = best ? key(best) : [0, 0];
      if (c > bestCount || (c === bestCount && (a < ba || (a === ba && b < bb)))) [best, bestCount] = [p, c];
    }
    if (bestCount < 2) break;
    const [a, b] = best.split(" ");
    if (!id.has(a + b)) id.set(a + b, id.size);
    out.push(best);
    syms.forEach((s, w) => {
      const next: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (s[i] === a && s[i + 1] === b) {
          next.push(a + b);
          i++;
        } else next.push(s[i]);
      }
      syms[w] = next;
    });
  }
  return out;
}

test("tokenizer: incremental pair counts give the merges of full recounting", async () => {
  const text = (await Deno.readTextFile(SAMPLE)).slice(0, 12_000);
  const fast = train(text, 256 + 120).merges.map(([a, b]) => `${a} ${b}`);
  assert.deepEqual(fast, naiveMerges(text, 120));
});

test("tokenizer: the committed 1k reference is what training on the sample gives", async () => {
  const ref = await loadRef();
  const tok = train(await Deno.readTextFile(SAMPLE), 1024, { specials: ["<|endoftext|>"] });
  assert.equal(tok.merges.length, 767);
  assert.deepEqual(tok.merges, ref.merges);
  assert.deepEqual(tok.toJSON(), ref.toJSON());
});

test("tokenizer: ids equal tiktoken's with the same merges and pattern", async () => {
  const tok = await loadRef();
  const ref = JSON.parse(await Deno.readTextFile(new URL("tiktoken_ids.json", REF)));
  assert.ok(ref.cases.length >= 8);
  for (const c of ref.cases as { text: string; ids: number[] }[]) {
    assert.deepEqual(tok.encode(c.text), c.ids, JSON.stringify(c.text.slice(0, 60)));
    assert.equal(tok.decode(c.ids), c.text);
  }
});

test("tokenizer: encode/decode round-trips any UTF-8", async () => {
  const tok = await loadRef();
  const fixed = [
    "",
    " ",
    "\n\n\n",
    "   \t \r\n  x  \n",
    "🙂👍🏽👨‍👩‍👧 🏳️‍🌈",
    "漢字かなカナ한국어 中文，标点。",
    "e\u0301 a\u0308\u0323 Z\u0351\u0352\u0357 \u0301 ",
    "\u0000\u0001\u007f\u0080\u00ad\ufeff\uffff\u{10ffff}",
    "<|endoftext|>",
    "<|endoftext",
    "mixed: naïve 🙂 text <|endoftext|> and more",
  ];
  let seed = 12345;
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  for (let n = 0; n < 200; n++) {
    let s = "";
    for (let i = Math.floor(rand() * 40); i > 0; i--) {
      const r = rand();
      let cp = r < 0.4
        ? 32 + Math.floor(rand() * 95)
        : r < 0.5
        ? [9, 10, 13, 32][Math.floor(rand() * 4)]
        : Math.floor(rand() * 0x110000);
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xe000; // lone surrogates are not UTF-8
      s += String.fromCodePoint(cp);
    }
    fixed.push(s);
  }
  for (const s of fixed) {
    assert.equal(tok.decode(tok.encode(s)), s, JSON.stringify(s));
    assert.equal(tok.decode(tok.encode(s, { specials: false })), s);
  }
  // Special tokens: recognised by default, plain bytes when disabled, skippable when decoding.
  const eot = tok.tokenToId("<|endoftext|>")!;
  assert.deepEqual(tok.encode("<|endoftext|>"), [eot]);
  assert.ok(!tok.encode("<|endoftext|>", { specials: false }).includes(eot));
  assert.equal(tok.decode(tok.encode("a<|endoftext|>b"), { skipSpecial: true }), "ab");
  // A multi-byte character cut between ids decodes to U+FFFD instead of throwing.
  const euro = tok.encode("€"); // 3 bytes; the 1k vocabulary has no merge for them
  assert.equal(euro.length, 3);
  assert.equal(tok.decode(euro.slice(0, 2)), "\ufffd");
  assertThrowsMsg(() => tok.decode([5000]), "5000", "not in the vocabulary");
});

/** A hand-written tokenizer.json in the Hugging Face format: bytes, three merges, one added token. */
function handMade(merges: unknown[]) {
  const vocab: Record<string, number> = {};
  bytesToUnicode().forEach((c, b) => (vocab[c] = b));
  Object.assign(vocab, { "Ġt": 256, "he": 257, "Ġthe": 258, "</s>": 259 });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [
      {
        id: 259,
        content: "</s>",
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      },
    ],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

test("tokenizer: reads hand-made tokenizer.json with merges as strings or pairs", () => {
  for (const merges of [["Ġ t", "h e", "Ġt he"], [["Ġ", "t"], ["h", "e"], ["Ġt", "he"]]]) {
    const tok = BpeTokenizer.fromJSON(handMade(merges));
    // " the" → Ġ t h e → (Ġt) h e → (Ġt)(he) → Ġthe; "the" → t (he); "é" is two bytes 0xC3 0xA9.
    assert.deepEqual(tok.encode("the the</s>é"), [0x74, 257, 258, 259, 0xc3, 0xa9]);
    assert.equal(tok.decode([0x74, 257, 258, 259, 0xc3, 0xa9]), "the the</s>é");
    assert.equal(tok.size, 260);
  }
  // add_prefix_space puts a space before text that does not start with whitespace (as HF does).
  const spaced = handMade(["Ġ t", "h e", "Ġt he"]);
  spaced.pre_tokenizer.add_prefix_space = true;
  assert.deepEqual(BpeTokenizer.fromJSON(spaced).encode("the"), [258]);
  // Rank decides which pair merges first; a merge ranked first still applies once its parts exist.
  const reordered = BpeTokenizer.fromJSON(handMade(["Ġt he", "Ġ t", "h e"]));
  assert.deepEqual(reordered.encode(" the"), [258]);
  const late = BpeTokenizer.fromJSON(handMade(["h e", "Ġ t"]));
  assert.deepEqual(late.encode(" the"), [256, 257]);
});

test("tokenizer: writes the Hugging Face JSON fields and reads them back", async () => {
  const tok = await loadRef();
  const j = JSON.parse(JSON.stringify(tok)) as Record<string, any>;
  assert.equal(j.model.type, "BPE");
  assert.equal(j.model.dropout, null);
  assert.equal(j.model.byte_fallback, false);
  assert.deepEqual(j.pre_tokenizer, {
    type: "ByteLevel",
    add_prefix_space: false,
    trim_offsets: true,
    use_regex: true,
  });
  assert.equal(j.decoder.type, "ByteLevel");
  assert.equal(j.normalizer, null);
  assert.deepEqual(j.added_tokens, [
    {
      id: 1023,
      content: "<|endoftext|>",
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    },
  ]);
  assert.equal(Object.keys(j.model.vocab).length, 1024);
  assert.equal(j.model.vocab["Ġ"], 32);
  assert.equal(j.model.vocab["<|endoftext|>"], 1023);
  // Every id once (JS objects list integer-like keys such as "10" first, so key order is not id order).
  assert.deepEqual(Object.values(j.model.vocab).sort((x: any, y: any) => x - y), [...Array(1024).keys()]);
  assert.equal(j.model.merges.length, 767);
  for (const m of j.model.merges) assert.match(m, /^\S+ \S+$/);
  const [a, b] = j.model.merges[0].split(" ");
  assert.equal(j.model.vocab[a + b], 256);
  const back = BpeTokenizer.fromJSON(j);
  assert.deepEqual(back.merges, tok.merges);
  const text = "The round trip through JSON keeps every id.";
  assert.deepEqual(back.encode(text), tok.encode(text));
});

test("tokenizer: unsupported or inconsistent tokenizer.json is refused with the reason", () => {
  const bad = (edit: (j: any) => void) => {
    const j = handMade(["Ġ t", "h e", "Ġt he"]) as any;
    edit(j);
    return () => BpeTokenizer.fromJSON(j);
  };
  assertThrowsMsg(bad((j) => (j.model.type = "WordPiece")), "model.type", "WordPiece");
  assertThrowsMsg(bad((j) => (j.pre_tokenizer = { type: "Metaspace" })), "pre_tokenizer", "Metaspace");
  assertThrowsMsg(bad((j) => (j.normalizer = { type: "NFC" })), "normalizer");
  assertThrowsMsg(bad((j) => (j.model.dropout = 0.1)), "dropout");
  assertThrowsMsg(bad((j) => delete j.model.vocab["Ċ"]), "byte 10", "needs all 256");
  assertThrowsMsg(bad((j) => j.model.merges.push("Ġthe x")), "merge 3", "Ġthex");
  assertThrowsMsg(bad((j) => j.model.merges.push("abc")), "merge 3", "left right");
  assertThrowsMsg(bad((j) => (j.model.vocab["he"] = 256)), "id 256");
  assertThrowsMsg(bad((j) => (j.added_tokens[0].id = 258)), "</s>", "Ġthe");
  assert.throws(bad((j) => (j.model.type = "Unigram")), TokenizerFormatError);
});
