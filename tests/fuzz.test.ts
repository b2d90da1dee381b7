// A bounded run of the parser fuzzer (tests/fuzz/fuzz_parsers.ts runs the big one): a few mutants per
// parser, each in a worker with a time limit; any crash, hang, memory blow-up or accepted-though-corrupt
// file fails the test with the cases that did it. The fuzzer runs as its own process so that its memory
// check (process RSS over 1 GB) sees the parsers' memory alone, not the other test files running beside it.

import { assert, test } from "./testing.ts";
import { findings, type FuzzRow, table } from "./fuzz/fuzz_parsers.ts";

const MUTANTS = Number(Deno.env.get("FUZZ_MUTANTS") ?? 120);

test(`fuzz: ${MUTANTS} mutants per parser, no crash / hang / memory blow-up / accepted-corrupt`, async () => {
  const script = new URL("./fuzz/fuzz_parsers.ts", import.meta.url).pathname;
  const args = [
    "run",
    "-A",
    script,
    "--mutants",
    String(MUTANTS),
    "--seed",
    "20240611",
    "--timeout-ms",
    "5000",
  ];
  const out = await new Deno.Command(Deno.execPath(), { args: [...args, "--json"], stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout).trim();
  const err = new TextDecoder().decode(out.stderr);
  assert(text.startsWith("["), `the fuzzer printed no result (exit ${out.code}):\n${text}\n${err}`);
  const rows = JSON.parse(text.split("\n").at(-1)!) as FuzzRow[];
  assert(rows.length === 7, table(rows));
  for (const r of rows) {
    assert(r.accepted + r.rejected + findings(r) >= r.mutants - r.hangs, table(rows));
    assert(r.rejected > 0, `${r.parser}: no mutant was refused — the fuzzer is not reaching the parser`);
    assert(r.maxRssMb > 0, `${r.parser}: the memory watch never ran`);
  }
  assert(rows.every((r) => findings(r) === 0), "\n" + table(rows));
  assert(out.code === 0, `the fuzzer exited ${out.code}:\n${err}`);
});
