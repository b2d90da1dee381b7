// Mutation fuzzer for every parser of untrusted files (safetensors, .pth zip, data.pkl, IDX .gz,
// config.json, ModelNet .txt, HDF5):
//
//   deno run -A tests/fuzz/fuzz_parsers.ts --mutants N --seed S [--parser NAME] [--timeout-ms 5000] [--json]
//
// Each target's cases run in a Worker; a case that runs past the time limit is a hang (the worker is
// killed and a fresh one continues with the next case). Findings: crash (an error that is not the
// parser's own one-line refusal naming the file), hang, memory (process RSS over 1 GB), and
// accepted-corrupt (the target's oracle, see targets.ts). Prints a table; exits 1 on any finding.
// tests/fuzz.test.ts runs a bounded subset in CI, in a process of its own: the memory limit reads the
// process's RSS, which inside the parallel test runner would include every other test file's memory.

import { TARGETS } from "./targets.ts";

export interface FuzzOptions {
  mutants: number;
  seed: number;
  parsers?: string[];
  timeoutMs?: number;
  rssLimit?: number;
}

export interface FuzzRow {
  parser: string;
  mutants: number;
  accepted: number;
  rejected: number;
  crashes: number;
  hangs: number;
  memory: number;
  acceptedCorrupt: number;
  maxRssMb: number;
  seconds: number;
  /** First few findings: "case i (mutator): kind: message". */
  examples: string[];
}

function runTarget(name: string, opts: FuzzOptions, dir: string): Promise<FuzzRow> {
  const timeout = opts.timeoutMs ?? 5000, rssLimit = opts.rssLimit ?? 1024 ** 3;
  const row: FuzzRow = {
    parser: name,
    mutants: opts.mutants,
    accepted: 0,
    rejected: 0,
    crashes: 0,
    hangs: 0,
    memory: 0,
    acceptedCorrupt: 0,
    maxRssMb: 0,
    seconds: 0,
    examples: [],
  };
  const t0 = performance.now();
  const note = (i: number, how: string, kind: string, msg: string) => {
    if (row.examples.length < 5) row.examples.push(`case ${i} (${how}): ${kind}: ${msg.slice(0, 200)}`);
  };
  return new Promise((resolve) => {
    let worker: Worker | undefined, current = -1, how = "", started = 0, memFlagged = -1;
    const start = (from: number) => {
      if (from >= opts.mutants) return finish();
      worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
      worker.onmessage = (ev) => {
        const m = ev.data;
        if (m.type === "start") {
          current = m.i, how = m.how, started = performance.now();
        } else if (m.type === "result") {
          current = -1;
          if (m.outcome === "accepted") row.accepted++;
          else if (m.outcome === "rejected") row.rejected++;
          else if (m.outcome === "crash") row.crashes++, note(m.i, m.how, "crash", m.msg);
          else row.acceptedCorrupt++, note(m.i, m.how, "accepted-corrupt", m.msg);
        } else if (m.type === "done") {
          worker!.terminate();
          finish();
        }
      };
      worker.onerror = (e) => {
        e.preventDefault();
        row.crashes++, note(current, how, "crash (worker)", e.message);
        worker!.terminate();
        start(current + 1);
      };
      worker.postMessage({ target: name, seed: opts.seed, from, to: opts.mutants, dir });
    };
    const timer = setInterval(() => {
      const rss = Deno.memoryUsage().rss;
      row.maxRssMb = Math.max(row.maxRssMb, Math.round(rss / 2 ** 20));
      if (rss > rssLimit && current >= 0 && memFlagged !== current) {
        memFlagged = current;
        row.memory++, note(current, how, "memory", `rss ${Math.round(rss / 2 ** 20)} MB`);
      }
      if (current >= 0 && performance.now() - started > timeout) {
        row.hangs++, note(current, how, "hang", `> ${timeout} ms`);
        worker!.terminate();
        const next = current + 1;
        current = -1;
        start(next);
      }
    }, 100);
    const finish = () => {
      clearInterval(timer);
      row.seconds = Math.round((performance.now() - t0) / 100) / 10;
      resolve(row);
    };
    start(0);
  });
}

/** Runs every (or the named) target with `mutants` cases each. */
export async function runFuzz(opts: FuzzOptions): Promise<FuzzRow[]> {
  const rows: FuzzRow[] = [];
  const dir = await Deno.makeTempDir({ prefix: "fuzz-parsers-" });
  try {
    for (const t of TARGETS) {
      if (opts.parsers && !opts.parsers.includes(t.name)) continue;
      const sub = `${dir}/${t.name}`;
      await Deno.mkdir(sub);
      rows.push(await runTarget(t.name, opts, sub));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return rows;
}

/** Findings of a row (crashes + hangs + memory + accepted-corrupt). */
export function findings(r: FuzzRow): number {
  return r.crashes + r.hangs + r.memory + r.acceptedCorrupt;
}

export function table(rows: FuzzRow[]): string {
  const head = [
    "parser",
    "mutants",
    "accepted",
    "rejected",
    "crashes",
    "hangs",
    "memory",
    "acc-corrupt",
    "max rss MB",
    "s",
  ];
  const lines = rows.map((r) =>
    [
      r.parser,
      r.mutants,
      r.accepted,
      r.rejected,
      r.crashes,
      r.hangs,
      r.memory,
      r.acceptedCorrupt,
      r.maxRssMb,
      r.seconds,
    ].map(String)
  );
  const w = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (l: string[]) => l.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join("  ");
  const out = [fmt(head), ...lines.map(fmt)];
  for (const r of rows) for (const e of r.examples) out.push(`  ${r.parser}: ${e}`);
  return out.join("\n");
}

if (import.meta.main) {
  const arg = (name: string, dflt?: string) => {
    const i = Deno.args.indexOf(`--${name}`);
    return i >= 0 ? Deno.args[i + 1] : dflt;
  };
  const opts: FuzzOptions = {
    mutants: Number(arg("mutants", "1000")),
    seed: Number(arg("seed", "1")),
    parsers: arg("parser")?.split(","),
    timeoutMs: Number(arg("timeout-ms", "5000")),
  };
  if (!Number.isInteger(opts.mutants) || opts.mutants < 1) {
    console.error(`--mutants must be a positive integer`);
    Deno.exit(2);
  }
  const rows = await runFuzz(opts);
  // --json: one JSON line with the rows, for tests/fuzz.test.ts, which runs this file as its own process.
  console.log(Deno.args.includes("--json") ? JSON.stringify(rows) : table(rows));
  Deno.exit(rows.some((r) => findings(r) > 0) ? 1 : 0);
}
