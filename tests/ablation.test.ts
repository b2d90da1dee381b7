// The ablation grid's bookkeeping (train/ablation.ts) and the arm flags: finished cells are found
// again (resumable grid), the table's mean ± std and columns, and the --arm / --llm-position /
// --llm-lr-scale flags: parsed, refused when the arm has no LLM to take its shape from, and runs stored
// before the flags existed resume as the defaults.

import "../compiler/ops/mod.ts";
import { type AblationCell, ablationTable, meanStd, readCell, writeCell } from "../train/ablation.ts";
import { checkRunOptions, conflictingOption, FlagError } from "../train/flags.ts";
import { trainOptionsFromFlags } from "../train/commands.ts";
import type { RunConfig } from "../train/config.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";

const cell = (arm: string, seed: number, top1: number): AblationCell => ({
  arm,
  seed,
  top1,
  seconds: 2,
  steps: 10,
  perSecond: 80,
  trainable: 100,
  frozen: arm === "frozen" ? 50 : 0,
  out: `x/${arm}-seed${seed}`,
});

test("ablation: finished cells are stored and found again; an unfinished cell reads as undefined", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    assert.equal(await readCell(`${tmp}/none-seed0`), undefined);
    await Deno.mkdir(`${tmp}/none-seed0/checkpoint`, { recursive: true }); // interrupted: no result.json
    assert.equal(await readCell(`${tmp}/none-seed0`), undefined);
    await writeCell(`${tmp}/none-seed0`, cell("none", 0, 0.5));
    assert.deepEqual(await readCell(`${tmp}/none-seed0`), cell("none", 0, 0.5));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

test("ablation: the table has mean ± std (sample std), per-seed values, parameter counts and throughput", () => {
  assert.deepEqual(meanStd([1, 2, 3]), { mean: 2, std: 1 });
  assert.deepEqual(meanStd([4]), { mean: 4, std: 0 });
  const t = ablationTable("T", ["none", "frozen", "mlp"], [
    cell("frozen", 1, 0.8),
    cell("none", 0, 0.7),
    cell("frozen", 0, 0.9),
  ], "img");
  const lines = t.split("\n");
  assert.equal(
    lines[2],
    "| arm | top-1 % (mean ± std) | per seed | trainable params | frozen params | img/s |",
  );
  assert.equal(lines[4], "| none | 70.00 ± 0.00 | 70.00 | 100 | 0 | 80 |");
  assert.equal(lines[5], "| frozen | 85.00 ± 7.07 | 90.00, 80.00 | 100 | 50 | 80 |");
  assert.equal(lines[6], "| mlp | – | – | – | – | – |");
});

test("flags: --arm, --llm-position, --llm-lr-scale parse, check, and old runs resume as the defaults", () => {
  const o = trainOptionsFromFlags("image", {
    arm: "finetune",
    "llm-position": "middle",
    "llm-lr-scale": "0.1",
  });
  assert.deepEqual([o.arm, o.llmPosition, o.llmLrScale], ["finetune", "middle", 0.1]);
  const d = trainOptionsFromFlags("image", {});
  assert.deepEqual([d.arm, d.llmPosition, d.llmLrScale], ["frozen", "tail", 1]);
  const e1 = assertThrowsMsg(() => trainOptionsFromFlags("image", { arm: "lora" }), "--arm: expected one of");
  const e2 = assertThrowsMsg(() => checkRunOptions({ ...d, llm: "none", arm: "mlp" }), "--arm mlp", "--llm");
  assert.ok(e1 instanceof FlagError && e2 instanceof FlagError);
  checkRunOptions({ ...d, llm: "none", arm: "none" });
  // a run stored before the flags existed: no arm, position or lr scale — the defaults
  const stored = { ...d } as RunConfig;
  delete stored.arm;
  delete stored.llmPosition;
  delete stored.llmLrScale;
  assert.equal(conflictingOption(d, stored), undefined);
  assert.match(conflictingOption({ ...d, arm: "mlp" }, stored) ?? "", /--arm: .*"frozen", not "mlp"/);
});

test("ablate --table-only: tabulates the finished cells of a grid, runs nothing, names the missing ones", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await writeCell(`${tmp}/none-seed0`, cell("none", 0, 0.7));
    await writeCell(`${tmp}/none-seed1`, cell("none", 1, 0.8));
    await writeCell(`${tmp}/frozen-seed1`, cell("frozen", 1, 0.9));
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "examples/ablate.ts", "--arms", "none,frozen", "--seeds", "2", "--table-only"]
        .concat(["--llm", "random", "--out", tmp]),
      cwd: new URL("..", import.meta.url),
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, err);
    assert.match(err, /not finished yet: frozen seed 0\n/);
    const table = (await Deno.readTextFile(`${tmp}/table.md`)).split("\n");
    assert.equal(table[4], "| none | 75.00 ± 7.07 | 70.00, 80.00 | 100 | 0 | 80 |");
    assert.equal(table[5], "| frozen | 90.00 ± 0.00 | 90.00 | 100 | 50 | 80 |");
    assert.equal(await readCell(`${tmp}/frozen-seed0`), undefined, "a cell was run");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
