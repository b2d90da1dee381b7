// A bounded run of the parser fuzzer (tests/fuzz/fuzz_parsers.ts runs the big one): a few mutants per
// parser, each in a worker with a time limit; any crash, hang, memory blow-up or accepted-though-corrupt
// file fails the test with the cases that did it.

import { assert, test } from "./testing.ts";
import { findings, runFuzz, table } from "./fuzz/fuzz_parsers.ts";

const MUTANTS = Number(Deno.env.get("FUZZ_MUTANTS") ?? 120);

test(`fuzz: ${MUTANTS} mutants per parser, no crash / hang / memory blow-up / accepted-corrupt`, async () => {
  const rows = await runFuzz({ mutants: MUTANTS, seed: 20240611, timeoutMs: 5000 });
  assert(rows.length === 7, table(rows));
  for (const r of rows) {
    assert(r.accepted + r.rejected + findings(r) >= r.mutants - r.hangs, table(rows));
    assert(r.rejected > 0, `${r.parser}: no mutant was refused — the fuzzer is not reaching the parser`);
  }
  assert(rows.every((r) => findings(r) === 0), "\n" + table(rows));
});
