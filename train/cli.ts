// Command-line parsing for the examples and the train/eval commands. JSR's @std/cli is not reachable
// on our machines, so this wraps node:util's parseArgs; moving to @std/cli later changes this file only.
// These helpers print and exit on bad input: they are for command lines, not for library code.

import { parseArgs } from "node:util";

/** Flags of a command: each one's type, default and help line. */
export type FlagSpec = Record<
  string,
  {
    /** "string" flags take a value; "boolean" flags do not. */
    type: "string" | "boolean";
    /** The value when the flag is not given. */
    default?: string | boolean;
    /** One line of --help. */
    help: string;
    /** How --help shows the default when it is not `default` itself (e.g. it depends on the task). */
    defaultText?: string;
  }
>;

/** The usage text: `usage`, then one line per flag with its help and default. */
export function usageText(usage: string, spec: FlagSpec): string {
  return usage + "\n\nflags:\n" +
    Object.entries(spec).map(([k, v]) => {
      const d = v.defaultText ??
        (v.default !== undefined && v.default !== "" ? String(v.default) : undefined);
      return `  --${k.padEnd(18)} ${v.help}${d !== undefined ? ` (default ${d})` : ""}`;
    }).join("\n");
}

/** Parses Deno.args against `spec`; prints usage and exits on --help or an unknown flag. */
export function parseFlags<S extends FlagSpec>(
  usage: string,
  spec: S,
  args: string[] = Deno.args,
): { [K in keyof S]: S[K]["type"] extends "boolean" ? boolean : string } {
  const help = () => usageText(usage, spec);
  const options: Record<string, { type: "string" | "boolean"; default?: string | boolean }> = {
    help: { type: "boolean", default: false },
  };
  for (const [k, v] of Object.entries(spec)) options[k] = { type: v.type, default: v.default };
  let values: Record<string, unknown>;
  try {
    values = parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${help()}`);
    Deno.exit(2);
  }
  if (values.help) {
    console.log(help());
    Deno.exit(0);
  }
  return values as never;
}

/** Parses a numeric flag, with an error naming the flag (prints and exits on a bad value). */
export function num(name: string, v: string | undefined): number {
  const x = Number(v);
  if (v === undefined || v.trim() === "" || !Number.isFinite(x)) {
    console.error(`--${name}: expected a number, got '${v}'`);
    Deno.exit(2);
  }
  return x;
}

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/**
 * Parses a memory size: a byte count (`600000000`) or a number with a unit (`600MB`, `1.5 GiB`;
 * KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB of 1024; case-insensitive). Returns undefined when
 * the text is not a size.
 */
export function parseBytes(s: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d*)?|\.\d+)(?:e(\d+))?\s*([a-z]*)\s*$/i.exec(s);
  if (!m) return undefined;
  const unit = m[3].toLowerCase() || "b";
  if (!(unit in UNITS)) return undefined;
  const v = Number(m[1]) * 10 ** Number(m[2] ?? 0) * UNITS[unit];
  return Number.isFinite(v) ? Math.round(v) : undefined;
}

/** Parses a memory-size flag (see parseBytes), with an error naming the flag (prints and exits). */
export function bytes(name: string, v: string | undefined): number {
  const x = v === undefined ? undefined : parseBytes(v);
  if (x === undefined) {
    console.error(`--${name}: expected a size such as 600MB or 1.5GiB, got '${v}'`);
    Deno.exit(2);
  }
  return x;
}
