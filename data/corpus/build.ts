// Builds the English pretraining corpus from installed Debian packages (see README.md here):
//
//   deno run -A data/corpus/build.ts [--out .data/corpus] [--sample [data/corpus/sample.txt]]
//
// Writes OUT/train.txt, OUT/valid.txt (documents separated by a blank line, one paragraph per line) and
// OUT/manifest.json (sources, package versions, counts, bytes, sha256). Deterministic: the same package
// versions give the same bytes. --sample also writes a ~150 KB sample (evenly spaced whole documents) for tests.

import { type Doc, docsText, filterDocs, isValid, type SourceStats } from "./clean.ts";
import { missingSources, SOURCES } from "./sources.ts";

const HELP = `Usage: deno run -A data/corpus/build.ts [options]
  --out DIR          output directory (default .data/corpus)
  --sample [FILE]    also write a ~150 KB sample (default data/corpus/sample.txt)
  --sample-bytes N   sample size in bytes (default 150000)
  --valid-every N    every N-th document is held out for validation (default 100)
  --root DIR         prefix for the package paths (default: the installed system)`;

interface Args {
  out: string;
  sample: string | null;
  sampleBytes: number;
  validEvery: number;
  root: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    out: ".data/corpus",
    sample: null,
    sampleBytes: 150_000,
    validEvery: 100,
    root: "",
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === "--help" || flag === "-h") {
      console.log(HELP);
      Deno.exit(0);
    } else if (flag === "--out") a.out = value();
    else if (flag === "--root") a.root = value();
    else if (flag === "--valid-every") a.validEvery = Number(value());
    else if (flag === "--sample-bytes") a.sampleBytes = Number(value());
    else if (flag === "--sample") {
      a.sample = argv[i + 1] && !argv[i + 1].startsWith("--")
        ? argv[++i]
        : new URL("./sample.txt", import.meta.url).pathname;
    } else throw new Error(`unknown flag ${flag}\n${HELP}`);
  }
  if (!(a.validEvery >= 2)) throw new Error("--valid-every must be at least 2");
  return a;
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function packageVersion(pkg: string): Promise<string | null> {
  try {
    const r = await new Deno.Command("dpkg-query", { args: ["-W", "-f=${Version}", pkg], stderr: "null" })
      .output();
    return r.success ? new TextDecoder().decode(r.stdout).trim() : null;
  } catch {
    return null;
  }
}

/** Evenly spaced whole documents totalling about `bytes`. */
function sampleDocs(docs: readonly Doc[], totalBytes: number, bytes: number): Doc[] {
  const stride = Math.max(1, Math.ceil(totalBytes / bytes));
  return docs.filter((_, i) => i % stride === 0);
}

async function main() {
  const args = parseArgs(Deno.args);
  const missing = await missingSources(args.root);
  if (missing.length) {
    const lines = missing.map(({ source, path }) =>
      `  ${source.package} (${source.name}: ${path} not found)`
    );
    const pkgs = missing.map(({ source }) => source.package).join(" ");
    console.error(`Missing Debian package(s):\n${lines.join("\n")}\nInstall with: apt-get install ${pkgs}`);
    Deno.exit(1);
  }

  const seen = new Set<string>();
  const all: Doc[] = [];
  const sources: (SourceStats & Record<string, unknown>)[] = [];
  for (const s of SOURCES) {
    const t0 = performance.now();
    const { docs, stats } = filterDocs(await s.read(args.root), seen);
    all.push(...docs);
    sources.push({
      name: s.name,
      package: s.package,
      version: await packageVersion(s.package),
      license: s.license,
      description: s.description,
      files: s.requires,
      ...stats,
    });
    console.log(
      `${s.name.padEnd(17)} ${String(stats.documents).padStart(7)} docs ${
        (stats.bytes / 1e6).toFixed(2).padStart(6)
      } MB` +
        `  (dropped: ${stats.droppedNotProse} not prose, ${stats.droppedDuplicate} duplicate paragraphs)` +
        `  ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  }

  const train = all.filter((_, i) => !isValid(i, args.validEvery));
  const valid = all.filter((_, i) => isValid(i, args.validEvery));
  await Deno.mkdir(args.out, { recursive: true });
  const enc = new TextEncoder();
  const split = async (name: string, docs: Doc[]) => {
    const bytes = enc.encode(docsText(docs));
    await Deno.writeFile(`${args.out}/${name}`, bytes);
    return { file: name, documents: docs.length, bytes: bytes.length, sha256: await sha256(bytes) };
  };
  const manifest = {
    description: "English text from Debian packages, cleaned and deduplicated (data/corpus/README.md)",
    format: "UTF-8; one paragraph per line; a blank line ends each document",
    split: `document i (0-based, corpus order) is in valid.txt when i % ${args.validEvery} == ${
      args.validEvery - 1
    }`,
    dedup: "exact paragraph match after cleaning, across all sources; the first occurrence is kept",
    sources,
    train: await split("train.txt", train),
    valid: await split("valid.txt", valid),
  };
  await Deno.writeTextFile(`${args.out}/manifest.json`, JSON.stringify(manifest, null, 2) + "\n");
  const mb = (n: number) => (n / 1e6).toFixed(2) + " MB";
  console.log(
    `train ${mb(manifest.train.bytes)} (${train.length} docs), valid ${
      mb(manifest.valid.bytes)
    } (${valid.length} docs)` +
      ` -> ${args.out}`,
  );

  if (args.sample) {
    const total = manifest.train.bytes + manifest.valid.bytes;
    const text = docsText(sampleDocs(all, total, args.sampleBytes));
    await Deno.writeTextFile(args.sample, text);
    console.log(`sample ${(enc.encode(text).length / 1e3).toFixed(0)} KB -> ${args.sample}`);
  }
}

if (import.meta.main) await main();
