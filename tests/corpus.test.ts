// The pretraining corpus builder (data/corpus/): cleaning, the prose filter, deduplication, the split,
// the per-package readers on hand-made inputs, the missing-package message, and the committed sample.

import { assert, test } from "./testing.ts";
import {
  decodeEntities,
  docsText,
  filterDocs,
  htmlToDocs,
  isProse,
  isValid,
  normalizeParagraph,
} from "../data/corpus/clean.ts";
import {
  dictdEntries,
  dictdNumber,
  fortuneDocs,
  gcideDoc,
  jargonDocs,
  missingSources,
  SOURCES,
} from "../data/corpus/sources.ts";

test("corpus: paragraphs are normalised to one ASCII-punctuated line", () => {
  assert.equal(
    normalizeParagraph("\u201cHello\u201d\u2014it\u2019s  a\u00a0test\u2026\n   next\tline\u0007\u00ad "),
    '"Hello"--it\'s a test... next line',
  );
  assert.equal(normalizeParagraph("e\u0301"), "\u00e9"); // NFC
  assert.equal(
    decodeEntities("a &amp; b &lt;c&gt; &#233; &#x1F642; &mdash; &bogus;"),
    "a & b <c> \u00e9 \u{1F642} -- &bogus;",
  );
});

test("corpus: the prose filter keeps English sentences and drops code, tables, other scripts", () => {
  assert.ok(isProse("The act of abdicating; the renunciation of a high office."));
  assert.ok(isProse("If it ain't broke, don't fix it."));
  assert.ok(!isProse("See Abdicate.")); // too short to teach anything
  assert.ok(!isProse("0x1F, 0x2A, 0x3B, 0x4C, 0x5D, 0x6E"));
  assert.ok(!isProse("Chapter 1 Introduction .......... 12 and more"));
  assert.ok(
    !isProse(
      "\u042d\u0442\u043e \u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442 \u0437\u0434\u0435\u0441\u044c",
    ),
  );
  assert.ok(!isProse("Broken \ufffd text with a replacement character"));
});

test("corpus: exact paragraph dedup across documents and sources; the every-100th split", () => {
  const seen = new Set<string>();
  const a = filterDocs([["The first paragraph is here.", "The second paragraph is here."]], seen);
  const b = filterDocs([
    ["The second paragraph is here.", "A new paragraph is here too."],
    ["The first paragraph is here."], // only duplicates: the document goes
    ["tiny"],
  ], seen);
  assert.deepEqual(a.docs, [["The first paragraph is here.", "The second paragraph is here."]]);
  assert.deepEqual(b.docs, [["A new paragraph is here too."]]);
  assert.deepEqual([b.stats.droppedDuplicate, b.stats.droppedNotProse, b.stats.documents], [2, 1, 1]);
  assert.equal(b.stats.bytes, docsText(b.docs).length);
  assert.equal(docsText([["p1", "p2"], ["p3"]]), "p1\np2\n\np3\n\n");
  const held = [...Array(300).keys()].filter((i) => isValid(i));
  assert.deepEqual(held, [99, 199, 299]);
});

test("corpus: HTML pages become sections of paragraphs without code, tables or navigation", () => {
  const html = `<html><head><title>T</title><style>p {}</style></head><body>
    <div class="navheader"><table><tr><td>Prev</td></tr></table><p>Next: Somewhere, Up: Top</p></div>
    <h2 class="title">First section</h2><p>Some <em>inline</em> text &amp; more,
    over two lines.</p><pre class="programlisting">$ rm -rf /</pre>
    <ul><li>An item</li><li>Another item</li></ul><!-- a comment -->
    <h3>Second</h3><div class="para">Closing words<br/>after a break.</div>
    <ul class="docnav"><li>Prev</li></ul><table><tr><td>cell</td></tr></table></body></html>`;
  assert.deepEqual(htmlToDocs(html), [
    ["First section", "Some inline text & more, over two lines.", "An item", "Another item"],
    ["Second", "Closing words", "after a break."],
  ]);
});

test("corpus: GCIDE entries lose pronunciations, source tags and braces", () => {
  const entry = `Abdominal \\Ab*dom"i*nal\\, a. [Cf. F. abdominal.]
   1. Of or pertaining to the abdomen; ventral; as, the
      abdominal regions, muscles, cavity. [Webster 1913 Suppl.]
      [1913 Webster]

   {Abdominal ring} (Anat.), a fancied ringlike opening.
      [Obs.]
      [1913 Webster +PJC] Abdominous
`;
  assert.deepEqual(gcideDoc(entry), [
    "Abdominal, a. [Cf. F. abdominal.] 1. Of or pertaining to the abdomen; ventral; as, the abdominal regions, muscles, cavity.",
    "Abdominal ring (Anat.), a fancied ringlike opening. [Obs.]",
  ]);
  // Etymologies in GCIDE's Greek transliteration (backticks) go; Latin ones stay.
  assert.deepEqual(
    gcideDoc(`Apothegm \\Ap"o*thegm\\, n. [Gr.\n   'apo\`fqegma thing uttered.]\n   A short saying.`),
    [
      "Apothegm, n. A short saying.",
    ],
  );
  assert.equal(dictdNumber("Kj"), 10 * 64 + 35);
  assert.equal(dictdNumber("A"), 0);
});

test("corpus: dictd databases are read through their index (dictzip is gzip)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = "header block\nfirst entry text\nsecond entry\n";
    const gz = new Uint8Array(
      await new Response(new Blob([data]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer(),
    );
    await Deno.writeFile(`${dir}/x.dict.dz`, gz);
    // Offsets/lengths in dictd base 64: header at 0 (13 = "N"), first at 13 ("N") len 17 ("R"),
    // second at 30 ("e") len 13; an alias of the first entry must not duplicate it.
    await Deno.writeTextFile(
      `${dir}/x.index`,
      "00-database-info\tA\tN\nfirst\tN\tR\nalias\tN\tR\nsecond\te\tN\n",
    );
    assert.deepEqual(await dictdEntries(`${dir}/x.index`, `${dir}/x.dict.dz`), [
      "first entry text\n",
      "second entry\n",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("corpus: fortune cookies and Jargon File entries become documents", () => {
  assert.deepEqual(fortuneDocs("A wise\n  saying.\n%\nQ: Why?\n\nA: Because.\n%\n"), [
    ["A wise saying."],
    ["Q: Why?", "A: Because."],
  ]);
  const jargon = `Table of contents\n\nChapter 1. Hacker Slang\n\nSome prose about slang.\n\n` +
    `   :calculator: n.\n\n   Syn. for {bitty box}.\n\n   :cruft:\n\n   Excess; superfluous junk.\n\n   More.\n`;
  assert.deepEqual(jargonDocs(jargon), [
    ["Chapter 1. Hacker Slang", "Some prose about slang."],
    ["calculator n.: Syn. for bitty box."],
    ["cruft: Excess; superfluous junk.", "More."],
  ]);
});

test("corpus: a missing package is named with the install command", async () => {
  const missing = await missingSources("/nonexistent-root");
  assert.deepEqual(missing.map((m) => m.source.package), SOURCES.map((s) => s.package));
  assert.ok(missing[0].path.startsWith("/nonexistent-root/usr/share/dictd/"));
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../data/corpus/build.ts", import.meta.url).pathname,
      "--root",
      "/nonexistent-root",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 1);
  assert.match(err, /Missing Debian package\(s\):\n {2}dict-gcide \(gcide: .*gcide\.index not found\)/);
  assert.match(err, /Install with: apt-get install dict-gcide fortunes jargon-text gnu-standards/);
});

test("corpus: the committed sample is clean, deduplicated prose", async () => {
  const text = await Deno.readTextFile(new URL("../data/corpus/sample.txt", import.meta.url));
  const bytes = new TextEncoder().encode(text).length;
  assert.ok(bytes > 100_000 && bytes < 200_000, `sample is ${bytes} bytes`);
  assert.ok(text.endsWith("\n\n") && !text.includes("\n\n\n"));
  const paras = text.split("\n").filter((l) => l.length > 0);
  assert.equal(new Set(paras).size, paras.length, "duplicate paragraphs");
  for (const p of paras) assert.ok(isProse(p) && p === normalizeParagraph(p), p);
  assert.ok(!text.includes("[1913 Webster]") && !/\\[A-Za-z*"`]+\\/.test(text)); // GCIDE markup is gone
  const docs = text.split("\n\n").filter((d) => d.length > 0);
  assert.ok(docs.length > 500, `${docs.length} documents`);
});
