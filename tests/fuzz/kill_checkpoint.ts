// kill -9 at random instants of training runs (issue 11 item 3): every killed run must resume with
// `train --resume RUN_DIR` (the CLI, examples/train_vit.ts) and end with the same final weights and
// optimizer moments, byte for byte, as an uninterrupted run. A kill before the first checkpoint leaves
// nothing to resume: the run is then started again, as a user would.
//
//   deno run -A tests/fuzz/kill_checkpoint.ts [--trials 20] [--seed 1] [--keep DIR]
//
// Each trial starts the run, kills it (SIGKILL) a random delay after its training began (between 0
// and the uninterrupted run's training time, so kills land in steps, evaluations and checkpoint saves
// alike), then resumes it until it finishes (a resume may itself be killed, with probability 1/3).
// With `--child OUT` the script is instead one tiny training run (tests/checkpoint_resume.test.ts
// uses it as a process that a crash point can end).

import { Rng } from "../../compiler/core/random.ts";
import type { RunOptions } from "../../train/run.ts";
import { DEFAULT_DATA_DIR } from "../../data/fashion_mnist.ts";
import { findCheckpoint } from "../../io/checkpoint.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const TRAIN = `${ROOT}examples/train_vit.ts`;
/** The run: the default small ViT, no LLM, 2 steps per epoch, 8 epochs (16 steps, 8 checkpoints). */
const RUN_FLAGS = [
  "--model=fmnist",
  "--llm=none",
  "--epochs=8",
  "--batch=8",
  "--train-limit=16",
  "--eval-limit=16",
  "--eval-batch=16",
  "--log-every=3",
  "--quiet",
];

/** A tiny run: ViT with one block of width 8, 8 training images, batch 4: 2 steps per epoch, 3 epochs. */
export function tinyRun(out: string, extra: Partial<RunOptions> = {}): RunOptions {
  return {
    task: "image",
    model: { img: 28, patch: 14, chans: 1, dim: 8, depth: 1, heads: 1, classes: 10 },
    modelName: "custom",
    llm: "none",
    llmLayers: "last",
    epochs: 3,
    steps: 0,
    batch: 4,
    lr: 1e-2,
    warmup: 0,
    weightDecay: 0.05,
    labelSmoothing: 0,
    dropout: 0.1,
    clip: 0,
    data: DEFAULT_DATA_DIR,
    out,
    seed: 1,
    logEvery: 2,
    evalBatch: 8,
    trainLimit: 8,
    evalLimit: 8,
    ...extra,
  };
}

/**
 * Runs the CLI; with killAfterMs, kills it (SIGKILL) that long after training started (the run's
 * metrics.jsonl appeared: start-up and compilation are over), so kills land in steps, evaluations
 * and checkpoint saves. Returns how it ended and how long it trained (ms).
 */
async function train(
  args: string[],
  run: string,
  killAfterMs?: number,
): Promise<{ code: number; killed: boolean; err: string; trainedMs: number }> {
  const metrics = `${run}/metrics.jsonl`;
  const before = await mtime(metrics);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TRAIN, ...args],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let killed = false, done = false, started = NaN;
  const watch = (async () => {
    while (!done && Number.isNaN(started)) {
      const m = await mtime(metrics);
      if (m !== undefined && m !== before) started = performance.now();
      else await new Promise((r) => setTimeout(r, 10));
    }
    if (done || killAfterMs === undefined) return;
    await new Promise((r) => setTimeout(r, killAfterMs));
    if (!done) {
      killed = true;
      child.kill("SIGKILL");
    }
  })();
  const out = await child.output();
  done = true;
  await watch;
  return {
    code: out.code,
    killed: killed && out.code !== 0,
    err: new TextDecoder().decode(out.stderr).trim(),
    trainedMs: performance.now() - started,
  };
}

async function mtime(path: string): Promise<number | undefined> {
  try {
    return (await Deno.stat(path)).mtime?.getTime() ?? 0;
  } catch {
    return undefined;
  }
}

async function finalBytes(run: string): Promise<string> {
  const parts = [];
  for (const f of ["model.safetensors", "optimizer.safetensors"]) {
    const d = await crypto.subtle.digest("SHA-256", await Deno.readFile(`${run}/checkpoint/${f}`));
    parts.push(Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join(""));
  }
  return parts.join(" ");
}

/** Whether the killed run left a finished checkpoint (else, as the refusal says, it starts again). */
async function hasCheckpoint(run: string): Promise<boolean> {
  try {
    await findCheckpoint(run);
    return true;
  } catch (e) {
    if (/no finished checkpoint yet|not found|no checkpoint here/.test((e as Error).message)) return false;
    throw e; // a killed run must never leave a broken one
  }
}

async function main() {
  const arg = (name: string) => {
    const i = Deno.args.indexOf(`--${name}`);
    return i >= 0 ? Deno.args[i + 1] : undefined;
  };
  const a = { trials: arg("trials"), seed: arg("seed"), keep: arg("keep"), child: arg("child") };
  if (a.child) {
    // one tiny run in this process (see the header)
    await import("../../mod.ts");
    const { runTraining } = await import("../../train/run.ts");
    await runTraining(tinyRun(a.child));
    return;
  }
  const trials = Number(a.trials ?? 20);
  const rng = new Rng(Number(a.seed ?? 1));
  const dir = a.keep ?? await Deno.makeTempDir({ prefix: "kill-checkpoint-" });
  await Deno.mkdir(dir, { recursive: true });
  // the uninterrupted run, twice (the first may fill caches): kills land within its shortest training
  let wall = Infinity, want = "";
  for (const k of [0, 1]) {
    const ref = await train([...RUN_FLAGS, `--out=${dir}/ref${k}`], `${dir}/ref${k}`);
    if (ref.code !== 0) throw new Error(`the uninterrupted run failed: ${ref.err}`);
    wall = Math.min(wall, ref.trainedMs);
    const got = await finalBytes(`${dir}/ref${k}`);
    if (want && got !== want) throw new Error("two uninterrupted runs ended with different weights");
    want = got;
  }
  console.log(`uninterrupted run: ${(wall / 1000).toFixed(1)} s of training; final ${want.slice(0, 16)}…`);
  const tally = { same: 0, differ: 0, failed: 0, kills: 0, beforeFirst: 0, resumes: 0 };
  for (let t = 0; t < trials; t++) {
    const run = `${dir}/t${t}`;
    const delay = rng.next() * wall;
    let r = await train([...RUN_FLAGS, `--out=${run}`], run, delay);
    const notes = [`kill at ${(delay / 1000).toFixed(2)} s${r.killed ? "" : " (finished first)"}`];
    let ok = true;
    for (let round = 0; r.code !== 0 && round < 10; round++) {
      if (!r.killed) {
        notes.push(`failed: ${r.err.split("\n").find((l) => l.trim()) ?? `exit ${r.code}`}`);
        ok = false;
        break;
      }
      tally.kills++;
      let resumable: boolean;
      try {
        resumable = await hasCheckpoint(run);
      } catch (e) {
        notes.push(`broken: ${(e as Error).message}`);
        ok = false;
        break;
      }
      if (!resumable) tally.beforeFirst++;
      else tally.resumes++;
      const again = resumable ? ["--resume", run] : [...RUN_FLAGS, `--out=${run}`];
      const killAgain = rng.next() < 1 / 3 ? rng.next() * wall : undefined;
      r = await train(again, run, killAgain);
      notes.push(
        `${resumable ? "resumed" : "restarted (no checkpoint yet)"}${r.killed ? " (killed again)" : ""}`,
      );
    }
    if (!ok || r.code !== 0) {
      tally.failed++;
    } else if (await finalBytes(run) === want) {
      tally.same++;
    } else {
      tally.differ++;
      notes.push("FINAL WEIGHTS DIFFER");
    }
    console.log(`trial ${t + 1}/${trials}: ${notes.join(", ")}`);
  }
  console.log(
    `${trials} trials: ${tally.same} same final weights, ${tally.differ} different, ${tally.failed} failed; ` +
      `${tally.kills} kills (${tally.beforeFirst} before the first checkpoint), ${tally.resumes} resumes`,
  );
  if (!a.keep) await Deno.remove(dir, { recursive: true });
  if (tally.differ || tally.failed) Deno.exit(1);
}

if (import.meta.main) await main();
