// Text cleaning for the pretraining corpus: markup removal, whitespace and punctuation normalisation, the
// English-prose filter, exact paragraph deduplication and the train/valid split. Pure functions of their
// input, so the corpus is the same on every machine that has the same package versions.

/** A document: its paragraphs, each one line of cleaned text. */
export type Doc = string[];

/** Typographic characters replaced by their ASCII spelling (a small vocabulary spends no merges on them). */
const TYPOGRAPHY: [RegExp, string][] = [
  [/[\u2018\u2019\u201b\u2032]/g, "'"],
  [/[\u201c\u201d\u201f\u2033]/g, '"'],
  [/[\u2010\u2011\u2012\u2013\u2212]/g, "-"],
  [/[\u2014\u2015]/g, "--"],
  [/\u2026/g, "..."],
  [/[\u00a0\u2000-\u200a\u202f\u205f\u3000]/g, " "],
  [/[\u00ad\u200b-\u200d\u2060\ufeff]/g, ""], // soft hyphen, zero-width characters, BOM
];

/**
 * One paragraph as one line: NFC, typographic punctuation to ASCII, control characters removed, every run
 * of whitespace (line breaks included) to one space, trimmed.
 */
export function normalizeParagraph(text: string): string {
  let s = text.normalize("NFC");
  for (const [re, to] of TYPOGRAPHY) s = s.replace(re, to);
  // deno-lint-ignore no-control-regex
  s = s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/g, "");
  return s.replace(/\s+/g, " ").trim();
}

/**
 * Whether a cleaned paragraph is English prose worth keeping: at least 4 words and 20 characters; letters
 * at least 60% of the non-space characters (drops code, tables, numbers); at most 5% non-ASCII characters
 * (drops other languages and scripts); no run of 5 identical punctuation characters (drops rules, ASCII art
 * and dotted table-of-contents lines); no U+FFFD (text that was not valid UTF-8).
 */
export function isProse(p: string): boolean {
  if (p.length < 20 || p.includes("\ufffd")) return false;
  if (p.split(" ").length < 4) return false;
  let letters = 0, nonSpace = 0, nonAscii = 0;
  for (const ch of p) {
    if (ch !== " ") nonSpace++;
    if (ch.codePointAt(0)! > 0x7e) nonAscii++;
    if (/\p{L}/u.test(ch)) letters++;
  }
  if (letters < 0.6 * nonSpace || nonAscii > 0.05 * nonSpace) return false;
  return !/([^\p{L}\p{N}\s])\1{4,}/u.test(p);
}

/** Splits text at blank lines and normalises each paragraph; empty ones are dropped (no prose filter). */
export function paragraphs(text: string): string[] {
  return text.split(/\n[ \t]*\n/).map(normalizeParagraph).filter((p) => p.length > 0);
}

const ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: " ",
  ndash: "-",
  mdash: "--",
  hellip: "...",
  lsquo: "'",
  rsquo: "'",
  ldquo: '"',
  rdquo: '"',
  copy: "(c)",
  reg: "(R)",
  trade: "(TM)",
  laquo: '"',
  raquo: '"',
  shy: "",
};

/** Decodes HTML character references (numeric, and the named ones documentation pages use). */
export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (all, e: string) => {
    if (e[0] === "#") {
      const cp = e[1] === "x" || e[1] === "X" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return cp > 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff) ? String.fromCodePoint(cp) : "";
    }
    return ENTITIES[e.toLowerCase()] ?? all;
  });
}

/**
 * The documents of an HTML page: its text split at headings h1–h4 (one document per section), with
 * paragraphs at block elements. Code blocks, tables, scripts, styles and navigation are removed; inline
 * markup is dropped and its text kept.
 */
export function htmlToDocs(html: string): Doc[] {
  let s = html.replace(/<!--[\s\S]*?-->/g, " ");
  for (const tag of ["head", "script", "style", "pre", "table", "nav"]) {
    s = s.replace(new RegExp(`<${tag}\\b[\\s\\S]*?</${tag}>`, "gi"), "\n\n");
  }
  // Navigation bars (DocBook navheader/navfooter and docnav, Texinfo header/nav-panel): links only, and
  // they nest no element of their own kind.
  s = s.replace(/<div class="(?:navheader|navfooter|header|nav-panel)"[\s\S]*?<\/div>/gi, "\n\n");
  s = s.replace(/<ul class="docnav"[\s\S]*?<\/ul>/gi, "\n\n");
  s = s.replace(/<h[1-4]\b/gi, "\u0001$&"); // section boundary marker, removed below
  s = s.replace(/<\/?(?:p|div|li|ul|ol|dl|dt|dd|br|h[1-6]|blockquote|section|tr|td|th|hr)\b[^>]*>/gi, "\n\n");
  s = s.replace(/<[^>]*>/g, "");
  return s.split("\u0001").map((sec) => paragraphs(decodeEntities(sec))).filter((d) => d.length > 0);
}

/** Statistics of one source after filtering and deduplication. */
export interface SourceStats {
  documents: number;
  paragraphs: number;
  bytes: number;
  droppedNotProse: number;
  droppedDuplicate: number;
}

/**
 * Keeps the prose paragraphs of each document that were not seen before (exact match after cleaning,
 * across all sources, `seen` carrying the paragraphs of earlier sources); documents left empty are dropped.
 */
export function filterDocs(docs: Iterable<Doc>, seen: Set<string>): { docs: Doc[]; stats: SourceStats } {
  const out: Doc[] = [];
  const stats: SourceStats = {
    documents: 0,
    paragraphs: 0,
    bytes: 0,
    droppedNotProse: 0,
    droppedDuplicate: 0,
  };
  const enc = new TextEncoder();
  for (const doc of docs) {
    const kept: string[] = [];
    for (const p of doc) {
      if (!isProse(p)) stats.droppedNotProse++;
      else if (seen.has(p)) stats.droppedDuplicate++;
      else {
        seen.add(p);
        kept.push(p);
      }
    }
    if (kept.length === 0) continue;
    out.push(kept);
    stats.documents++;
    stats.paragraphs += kept.length;
    stats.bytes += enc.encode(kept.join("\n")).length + 2;
  }
  return { docs: out, stats };
}

/** Text of documents as written to train.txt/valid.txt: one paragraph per line, a blank line after each document. */
export function docsText(docs: readonly Doc[]): string {
  return docs.map((d) => d.join("\n") + "\n\n").join("");
}

/** The held-out rule: document i (0-based, in corpus order) is validation text when i % every == every - 1. */
export function isValid(index: number, every = 100): boolean {
  return index % every === every - 1;
}
