// Progress for long runs: a one-line bar on a TTY (step, loss, throughput, ETA), plain lines
// otherwise (CI logs), and JSONL metrics for machines.

/** A progress line on stderr: a redrawn bar on a terminal, a line every few seconds otherwise. */
export class Progress {
  private start = performance.now();
  private lastDraw = 0;
  private readonly tty: boolean;
  /** `start0`: the step a resumed run starts from (throughput and ETA count from there). */
  constructor(
    readonly total: number,
    readonly unit = "it",
    private readonly start0 = 0,
    private readonly out = Deno.stderr,
  ) {
    this.tty = out.isTerminal();
  }

  /** step is 1-based; items is how many `unit`s this run has processed so far. */
  update(step: number, fields: Record<string, number | string>, items: number, force = false): void {
    const now = performance.now();
    // a TTY redraws at most 10 times a second; plain logs get a line when forced or every 5 s
    const gap = this.tty ? 100 : 5000;
    if (!force && now - this.lastDraw < gap && step < this.total) return;
    this.lastDraw = now;
    const secs = (now - this.start) / 1000;
    const rate = items / Math.max(secs, 1e-9);
    const done = step - this.start0;
    const eta = done > 0 ? (secs / done) * (this.total - step) : 0;
    const f = Object.entries(fields).map(([k, v]) => `${k} ${typeof v === "number" ? fmt(v) : v}`).join("  ");
    const text = `${String(step).padStart(String(this.total).length)}/${this.total}  ${f}  ${
      rate.toFixed(1)
    } ${this.unit}/s  ETA ${clock(eta)}`;
    if (this.tty) {
      const w = 24, filled = Math.round((w * step) / this.total);
      const bar = "█".repeat(filled) + "░".repeat(w - filled);
      this.write(`\r\x1b[2K${bar} ${text}`);
      if (step >= this.total) this.write("\n");
    } else {
      this.write(text + "\n");
    }
  }

  /** Writes to the output stream without a newline. */
  private write(s: string): void {
    this.out.writeSync(new TextEncoder().encode(s));
  }
}

function fmt(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : v.toFixed(4);
}

function clock(s: number): string {
  s = Math.max(0, Math.round(s));
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  return h ? `${h}h${String(m % 60).padStart(2, "0")}m` : `${m}:${String(s % 60).padStart(2, "0")}`;
}

/** Appends one JSON object per line (metrics.jsonl). */
export class Metrics {
  private readonly file: Deno.FsFile;
  /** append: continue an existing file (a resumed run) instead of starting a new one. */
  constructor(path: string, append = false) {
    this.file = Deno.openSync(path, { create: true, write: true, truncate: !append, append });
  }
  /** Writes one record as a line. */
  log(record: Record<string, unknown>): void {
    this.file.writeSync(new TextEncoder().encode(JSON.stringify(record) + "\n"));
  }
  /** Closes the file. */
  close(): void {
    this.file.close();
  }
}

/** One metrics.jsonl record: a loss read (`loss`), an evaluation (`test_accuracy`) or the `final` summary. */
export type MetricsRecord = Record<string, unknown> & { step?: number; final?: boolean };

/** Reads a metrics.jsonl file (an absent file reads as no records; a torn last line is skipped). */
export async function readMetrics(path: string): Promise<MetricsRecord[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  const out: MetricsRecord[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // a line cut short by a crash: the records before it still count
    }
  }
  return out;
}

/**
 * Prepares `to` (metrics.jsonl of a resumed run) from `from` (the run it continues; the same file or
 * another run directory's): keeps the records up to the resumed `step` and drops `final` summaries
 * (the resumed run writes its own), so the file and the chart cover the whole run once.
 */
export async function resumeMetrics(from: string, to: string, step: number): Promise<void> {
  const kept = (await readMetrics(from)).filter((r) => !r.final && (r.step ?? 0) <= step);
  await Deno.writeTextFile(to, kept.map((r) => JSON.stringify(r) + "\n").join(""));
}
