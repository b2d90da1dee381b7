"""Reference token ids for tests/tokenizer.test.ts, from an independent BPE implementation.

OpenAI's tiktoken (Rust) encodes with the merges of data/corpus/reference/tokenizer-1k.json and GPT-2's
pre-tokenization pattern; our io/tokenizer.ts must give the same ids. tiktoken ranks a merge by the id of
the merged token, which equals the merge order here (byte b is id b, merge k makes id 256 + k).

Run once (never at test time; tiktoken is not a test dependency):
    python3 data/corpus/reference/tiktoken_ref.py > data/corpus/reference/tiktoken_ids.json
    deno fmt data/corpus/reference/tiktoken_ids.json
"""

import json
import pathlib

import tiktoken

HERE = pathlib.Path(__file__).parent
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def main():
    tok = json.loads((HERE / "tokenizer-1k.json").read_text())
    char_to_byte = {c: b for b, c in bytes_to_unicode().items()}
    specials = {t["content"]: t["id"] for t in tok["added_tokens"]}
    ranks = {
        bytes(char_to_byte[c] for c in token): i for token, i in tok["model"]["vocab"].items() if token not in specials
    }
    enc = tiktoken.Encoding("tokenizer-1k", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens=specials)
    sample = (HERE.parent / "sample.txt").read_text(encoding="utf-8")
    texts = [
        "",
        "Hello world! It's a test, isn't it? I'd say we'll see; they've said they're sure.",
        "DON'T SHOUT: 3.14159 and 2024-11-30, $100.00 or 1,000,000 (approx.)",
        "  leading and trailing spaces  \n\n\ttabs\tand\r\nCRLF   \n",
        "naïve café, Ångström, combining: e\u0301 a\u0308 n\u0303, emoji 🙂👍🏽👨‍👩‍👧, CJK 漢字かなカナ한국어",
        "<|endoftext|>A document.<|endoftext|>Another one.",
        sample[:6000],
        sample[60000:64000],
    ]
    out = {"generator": "data/corpus/reference/tiktoken_ref.py", "tiktoken": tiktoken.__version__, "cases": []}
    for t in texts:
        out["cases"].append({"text": t, "ids": enc.encode(t, allowed_special="all")})
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
