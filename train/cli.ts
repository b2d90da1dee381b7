// The one place examples get command-line parsing from. JSR's @std/cli is not reachable on our
// machines, so this wraps node:util's parseArgs; moving to @std/cli later changes this file only.

import { parseArgs } from "node:util";

export type FlagSpec = Record<
  string,
  { type: "string" | "boolean"; default?: string | boolean; help: string }
>;

/** Parses Deno.args against `spec`; prints usage and exits on --help or an unknown flag. */
export function parseFlags<S extends FlagSpec>(
  usage: string,
  spec: S,
  args: string[] = Deno.args,
): { [K in keyof S]: S[K]["type"] extends "boolean" ? boolean : string } {
  const help = () =>
    usage + "\n\nflags:\n" +
    Object.entries(spec).map(([k, v]) =>
      `  --${k.padEnd(18)} ${v.help}${v.default !== undefined ? ` (default ${v.default})` : ""}`
    )
      .join("\n");
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

/** Parses a numeric flag, with an error naming the flag. */
export function num(name: string, v: string | undefined): number {
  const x = Number(v);
  if (v === undefined || v === "" || !Number.isFinite(x)) {
    console.error(`--${name}: expected a number, got '${v}'`);
    Deno.exit(2);
  }
  return x;
}
