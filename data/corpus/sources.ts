// The Debian packages the corpus is made from, and how each one's files become documents. Every source
// names its package and the files it needs, so a missing package is reported by name before any work.
// Order matters: deduplication keeps a paragraph's first occurrence, and the held-out split counts
// documents in this order.

import { type Doc, htmlToDocs, paragraphs } from "./clean.ts";

/** One Debian package's contribution to the corpus. */
export interface Source {
  /** Short name used in the manifest. */
  name: string;
  /** The Debian package that provides the files. */
  package: string;
  /** The package's licence, as its copyright file states it (all are in Debian main). */
  license: string;
  /** What the text is. */
  description: string;
  /** Files (or directories) that must exist; the first missing one means the package is not installed. */
  requires: string[];
  /** The documents, in a fixed order. */
  read(root: string): Promise<Doc[]>;
}

/** Reads a gzip file (dictzip files are gzip too: the random-access table is an extra header field). */
export async function gunzip(path: string): Promise<Uint8Array> {
  const file = await Deno.open(path);
  const stream = file.readable.pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** A dictd index number: base 64, most significant digit first. */
export function dictdNumber(s: string): number {
  let n = 0;
  for (const ch of s) {
    const d = B64.indexOf(ch);
    if (d < 0) throw new Error(`bad dictd index number ${JSON.stringify(s)}`);
    n = n * 64 + d;
  }
  return n;
}

/**
 * The entries of a dictd database (.index + .dict.dz) in file order, one string per distinct definition
 * block; the database's own header entries ("00-database-info", "00-gcide-url", ...) are skipped.
 */
export async function dictdEntries(index: string, dict: string): Promise<string[]> {
  const data = await gunzip(dict);
  const blocks = new Map<number, number>();
  for (const line of (await Deno.readTextFile(index)).split("\n")) {
    const [word, off, len] = line.split("\t");
    if (!len || word.startsWith("00-") || word.startsWith("00database")) continue; // the database's own header entries
    blocks.set(dictdNumber(off), dictdNumber(len));
  }
  const dec = new TextDecoder();
  return [...blocks].sort((a, b) => a[0] - b[0]).map(([off, len]) =>
    dec.decode(data.subarray(off, off + len))
  );
}

/** GCIDE's source tags: [1913 Webster], [WordNet 1.5 +PJC], [Webster 1913 Suppl.], [Century Dict. 1906], ... */
const GCIDE_TAG = /\[(?:[^\]\n]*\b(?:Webster|WordNet|PJC|Century Dict)\b[^\]\n]*|AS|RDH)\]/;
const GCIDE_TAG_LINE = new RegExp(`^\\s*${GCIDE_TAG.source}`);
const GCIDE_TAGS = new RegExp(GCIDE_TAG.source, "g");

/**
 * One GCIDE entry as a document: the pronunciations (\Ab*di"cate\ and (ab"di*k[=a]t`)), source tags and etymologies written in
 * GCIDE's Greek transliteration (they hold a backtick) removed, cross-reference braces ({word}) unwrapped, one
 * paragraph per blank-line-separated block. A line that starts with a source tag is dropped whole: the dict
 * file sometimes repeats the next headword after the tag.
 */
export function gcideDoc(entry: string): Doc {
  const text = entry
    .split("\n")
    .filter((line) => !GCIDE_TAG_LINE.test(line))
    .join("\n")
    .replace(GCIDE_TAGS, "")
    .replace(/\\[^\\\n]*\\/g, "")
    .replace(/ ?\((?=[^()]*(?:`|\*|\[[a-z=.^,'"~]{1,5}\]))[^()]*\)/g, "") // (a*b[a^]s`[i^]) pronunciations
    .replace(/\[[^[\]]*`[^[\]]*\]/g, "")
    .replace(/(?<=\p{L})[`*"](?=\p{L})/gu, "") // accent and syllable marks inside words: A`ble-bod"ied*ness
    .replace(/[{}]/g, "")
    .replace(/ +([,.;:])/g, "$1");
  return paragraphs(text);
}

/** Fortune cookie files: one document per cookie (cookies are separated by a line holding "%"). */
export function fortuneDocs(text: string): Doc[] {
  return text.split(/^%[ \t]*$/m).map(paragraphs).filter((d) => d.length > 0);
}

/**
 * The Jargon File's text edition as documents: its chapters and one per glossary entry. An entry's
 * ":term: pronunciation" line is joined to the first paragraph of its definition.
 */
export function jargonDocs(text: string): Doc[] {
  const start = text.search(/^Chapter 1\./m);
  const body = (start >= 0 ? text.slice(start) : text).replace(/[{}]/g, "");
  const parts = body.split(/^(?=Chapter \d+\.|Appendix [A-Z]\.|Glossary$| {3}:[^:\n]+:)/m);
  return parts.map((part) => {
    const paras = paragraphs(part);
    const head = paras[0]?.match(/^:([^:]+):\s*(.*)$/);
    if (head && paras.length > 1) {
      const term = head[2] ? `${head[1]} ${head[2]}` : head[1];
      return [`${term}: ${paras[1]}`, ...paras.slice(2)];
    }
    return paras;
  }).filter((d) => d.length > 0);
}

async function filesIn(dir: string, accept: (name: string) => boolean): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.isFile && accept(e.name)) names.push(e.name);
  return names.sort().map((n) => `${dir}/${n}`);
}

async function htmlFiles(paths: string[]): Promise<Doc[]> {
  const docs: Doc[] = [];
  for (const p of paths) docs.push(...htmlToDocs(await Deno.readTextFile(p)));
  return docs;
}

/** The sources, in corpus order. `root` prefixes every path ("" for the installed system). */
export const SOURCES: readonly Source[] = [
  {
    name: "gcide",
    package: "dict-gcide",
    license: "GPL-3+",
    description:
      "GNU Collaborative International Dictionary of English (Webster 1913 + WordNet), with literary quotations",
    requires: ["/usr/share/dictd/gcide.index", "/usr/share/dictd/gcide.dict.dz"],
    async read(root) {
      const entries = await dictdEntries(root + this.requires[0], root + this.requires[1]);
      return entries.map(gcideDoc).filter((d) => d.length > 0);
    },
  },
  {
    name: "fortunes",
    package: "fortunes",
    license: "BSD-4-clause (fortune-mod); the cookie files are public domain collections",
    description: "fortune(6) cookie files: quotations, jokes, literature",
    requires: ["/usr/share/games/fortunes/fortunes"],
    async read(root) {
      const dir = root + "/usr/share/games/fortunes";
      // Plain cookie files only: not the .dat indexes, not the .u8 links, not ASCII art.
      const files = await filesIn(dir, (n) => !n.includes(".") && n !== "ascii-art");
      const docs: Doc[] = [];
      for (const f of files) docs.push(...fortuneDocs(await Deno.readTextFile(f)));
      return docs;
    },
  },
  {
    name: "jargon",
    package: "jargon-text",
    license: "public domain",
    description: "The Jargon File 4.4.7 (hacker slang lexicon and essays)",
    requires: ["/usr/share/doc/jargon-text/jargon.txt.gz"],
    async read(root) {
      return jargonDocs(new TextDecoder().decode(await gunzip(root + this.requires[0])));
    },
  },
  {
    name: "gnu-standards",
    package: "gnu-standards",
    license: "GFDL-1.3+ (no invariant sections)",
    description: "GNU Coding Standards and Information for Maintainers of GNU Software",
    requires: ["/usr/share/doc/gnu-standards/standards.html", "/usr/share/doc/gnu-standards/maintain.html"],
    read(root) {
      return htmlFiles(this.requires.map((p) => root + p));
    },
  },
  {
    name: "debian-reference",
    package: "debian-reference-en",
    license: "GPL-2+",
    description: "Debian Reference (English HTML)",
    requires: ["/usr/share/debian-reference/index.en.html"],
    async read(root) {
      return htmlFiles(await filesIn(root + "/usr/share/debian-reference", (n) => n.endsWith(".en.html")));
    },
  },
  {
    name: "debian-handbook",
    package: "debian-handbook",
    license: "GPL-2+ or CC-BY-SA-3.0",
    description: "The Debian Administrator's Handbook (English HTML only)",
    requires: ["/usr/share/doc/debian-handbook/html/en-US/index.html"],
    async read(root) {
      return htmlFiles(
        await filesIn(root + "/usr/share/doc/debian-handbook/html/en-US", (n) => n.endsWith(".html")),
      );
    },
  },
];

/** The sources whose required files are missing, with the first missing path of each. */
export async function missingSources(
  root: string,
  sources = SOURCES,
): Promise<{ source: Source; path: string }[]> {
  const missing: { source: Source; path: string }[] = [];
  for (const s of sources) {
    for (const p of s.requires) {
      try {
        await Deno.stat(root + p);
      } catch {
        missing.push({ source: s, path: root + p });
        break;
      }
    }
  }
  return missing;
}
