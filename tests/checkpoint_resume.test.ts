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

/** Copies directory `from` to `to` (synchronously: inside a crash hook nothing else may run). */
function copyTreeSync(from: string, to: string) {
  Deno.mkdirSync(to, { recursive: true });
  for (const e of Deno.readDirSync(from)) {
    if (e.isDirectory) copyTreeSync(`${from}/${e.name}`, `${to}/${e.name}`);
    else Deno.copyFileSync(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

let baseline: Promise<Uint8Array[]> | undefined;
/**
 * The uninterrupted run's final bytes (computed once). On the way, at every crash point of its second
 * save, the run directory is copied to `${tmp}/crash-POINT`: the files exactly as a kill at that
 * instant would leave them (no cleanup runs), without running the first steps again per point; and
 * after its first save to `${tmp}/step2` (a finished checkpoint at step 2 of 6).
 */
function uninterrupted(tmp: string): Promise<Uint8Array[]> {
  baseline ??= (async () => {
    const run = `${tmp}/baseline`;
    let saves = 0;
    checkpointCrashHook.at = (p) => {
      if (p === "model.safetensors") saves++;
      if (saves === 1 && p === "done") copyTreeSync(run, `${tmp}/step2`);
      if (saves === 2) copyTreeSync(run, `${tmp}/crash-${p}`);
    };
    try {
      await runTraining(tinyRun(run));
    } finally {
      checkpointCrashHook.at = undefined;
    }
    return finalBytes(run);
  })();
  return baseline;
}

const tmpRoot = await Deno.makeTempDir({ prefix: "checkpoint-test-" });
globalThis.addEventListener("unload", () => Deno.removeSync(tmpRoot, { recursive: true }));

test("checkpoint: a crash at every write and rename of the second save leaves a run that resumes exactly", async () => {
  const want = await uninterrupted(tmpRoot);
  for (const point of CHECKPOINT_CRASH_POINTS) {
    const run = `${tmpRoot}/crash-${point}`; // the baseline's directory as a crash at `point` left it
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

test("checkpoint: a crash in the first save leaves nothing to resume, and says so", async () => {
  const run = `${tmpRoot}/crash-first`;
  checkpointCrashHook.at = (p) => {
    if (p === "state.json") throw new InjectedCrash(`crash at ${p}`);
  };
  try {
    await assertRejectsMsg(() => runTraining(tinyRun(run, { epochs: 1 })), "crash at state.json");
  } finally {
    checkpointCrashHook.at = undefined;
  }
  await assertRejectsMsg(() => findCheckpoint(run), run, "no finished checkpoint yet", "without --resume");
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

/** Rewrites `file` of checkpoint `ck` with `edit`, and its manifest entry to match (a "valid" forgery). */
async function forge(ck: string, file: string, edit: (b: Uint8Array) => Uint8Array, manifestStep?: number) {
  const bytes = edit(await Deno.readFile(`${ck}/${file}`));
  await Deno.writeFile(`${ck}/${file}`, bytes);
  const m = JSON.parse(await Deno.readTextFile(`${ck}/manifest.json`));
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  m.files[file] = {
    bytes: bytes.length,
    sha256: Array.from(d, (b) => b.toString(16).padStart(2, "0")).join(""),
  };
  if (manifestStep !== undefined) m.step = manifestStep;
  await Deno.writeTextFile(`${ck}/manifest.json`, JSON.stringify(m));
}

const text = (s: string) => new TextEncoder().encode(s);

test("checkpoint: resume refuses a bad step, a NaN weight, another --seed/--batch, naming file and field", async () => {
  await uninterrupted(tmpRoot);
  const src = `${tmpRoot}/step2`; // a checkpoint at step 2 of 6
  let k = 0;
  const copy = async () => {
    const run = `${tmpRoot}/forged-${k++}`;
    await Deno.mkdir(`${run}/checkpoint`, { recursive: true });
    for await (const f of Deno.readDir(`${src}/checkpoint`)) {
      await Deno.copyFile(`${src}/checkpoint/${f.name}`, `${run}/checkpoint/${f.name}`);
    }
    return run;
  };
  const state = async (run: string, step: unknown, manifestStep: number) => {
    await forge(`${run}/checkpoint`, "state.json", (b) => {
      const st = JSON.parse(new TextDecoder().decode(b));
      return text(JSON.stringify({ ...st, step, optimizerStep: typeof step === "number" ? step : 2 }));
    }, manifestStep);
    return run;
  };
  const resume = (run: string, extra: Partial<RunOptions> = {}) => () =>
    runTraining(tinyRun(run, { resume: run, ...extra }));
  // step beyond the run, negative, a string
  await assertRejectsMsg(
    resume(await state(await copy(), 500, 500)),
    "state.json",
    "field 'step'",
    "500",
    "6 steps",
  );
  await assertRejectsMsg(resume(await state(await copy(), -3, -3)), "state.json", "field 'step'", "-3");
  await assertRejectsMsg(resume(await state(await copy(), "5", 5)), "state.json", "field 'step'", '"5"');
  // a step the optimizer's count disagrees with
  const skew = await copy();
  await forge(`${skew}/checkpoint`, "state.json", (b) => {
    const st = JSON.parse(new TextDecoder().decode(b));
    return text(JSON.stringify({ ...st, optimizerStep: 3 }));
  });
  await assertRejectsMsg(resume(skew), "state.json", "field 'optimizerStep'");
  // an edit the manifest does not know of: refused as corrupt, naming the file
  const tampered = await copy(), cut = await copy();
  const st = await Deno.readTextFile(`${tampered}/checkpoint/state.json`);
  assert.ok(st.includes('"step": 2'));
  await Deno.writeTextFile(`${tampered}/checkpoint/state.json`, st.replace('"step": 2', '"step": 4'));
  await assertRejectsMsg(resume(tampered), `${tampered}/checkpoint/state.json`, "SHA-256");
  await Deno.writeTextFile(`${cut}/checkpoint/state.json`, st.slice(0, 18));
  await assertRejectsMsg(resume(cut), `${cut}/checkpoint/state.json`, "18 bytes", "incomplete");
  // a NaN weight (the first f32 of the data section)
  const nan = await copy();
  await forge(`${nan}/checkpoint`, "model.safetensors", (b) => {
    const headLen = Number(new DataView(b.buffer).getBigUint64(0, true));
    new DataView(b.buffer).setFloat32(8 + headLen, NaN, true);
    return b;
  });
  await assertRejectsMsg(resume(nan), `${nan}/checkpoint/model.safetensors`, "NaN", "element 0");
  // another seed or batch than the run had
  const ok = await copy();
  await assertRejectsMsg(resume(ok, { seed: 2 }), "--seed", "state.json", "field 'run'");
  await assertRejectsMsg(resume(ok, { batch: 2 }), "--batch", "state.json", "field 'run'");
  // a stored setting that is out of range
  const badRun = await copy();
  await forge(`${badRun}/checkpoint`, "state.json", (b) => {
    const st = JSON.parse(new TextDecoder().decode(b));
    return text(JSON.stringify({ ...st, run: { ...st.run, batch: -1 } }));
  });
  await assertRejectsMsg(resume(badRun), "state.json", "field 'run'", "--batch");
  // the untouched copy resumes
  assert.equal(await runTraining(tinyRun(ok, { resume: ok })).then((r) => r.steps), 6);
});

test("checkpoint: messages name their file: truncated state.json, a full disk, an empty split; --log-every 0", async () => {
  const dir = `${tmpRoot}/truncated`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/state.json`, '{"step": 3, "run": {"task": "ima\n');
  await assertRejectsMsg(() => readCheckpointState(dir), `${dir}/state.json`, "not valid JSON");
  await assertRejectsMsg(() => writeFileSynced("/dev/full", "x".repeat(10)), "/dev/full", "No space left");
  const empty = { n: 0, labels: [], sampleSize: 4, write() {} };
  assertThrowsMsg(
    () => new Batcher(empty, { batchSize: 2, seed: 0, augment: false, name: "the train split of data/x" }),
    "the train split of data/x",
    "empty",
  );
  assertThrowsMsg(() => checkRunOptions(trainOptionsFromFlags("image", { "log-every": "0" })), "--log-every");
});

test("checkpoint: a diverging run stops at its first bad step and keeps the last good checkpoint", async () => {
  // lr 1e3 diverges at step 7 (of 2-step epochs); the loss is never read before, but the flag is.
  // The usual dropout (as in every other run here): the same kernels, none compiled for this test alone
  const runs = [];
  for (const logEvery of [1, 100]) {
    const run = `${tmpRoot}/diverge-${logEvery}`;
    const e = await assertRejectsMsg(
      () => runTraining(tinyRun(run, { lr: 1e3, epochs: 10, logEvery })),
      "training diverged",
      "the last good checkpoint (step 6",
    );
    runs.push(e.message.match(/first at step (\d+)/)![1]);
    const where = await findCheckpoint(run);
    assert.equal(where.step, 6);
    assert.deepEqual((await entries(run)).filter((x) => x.startsWith("checkpoint")), ["checkpoint"]);
  }
  assert.deepEqual(runs, ["7", "7"]);
});
