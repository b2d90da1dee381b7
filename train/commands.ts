// The train and eval commands (examples/train_vit.ts, train_points.ts and eval.ts are their entry
// points): flags from the one table in train/flags.ts, the run's lines and a progress bar on stderr,
// the summary on stdout. Bad flags exit with status 2 and a message naming the flag; failed runs
// (missing data, foreign checkpoints, ...) with status 1 and one line.

import { getGpu } from "../compiler/runtime/device.ts";
import { findCheckpoint, readCheckpointState } from "../io/checkpoint.ts";
import type { Split } from "../data/fashion_mnist.ts";
import type { PointBertConfig } from "../models/pointbert.ts";
import { type FlagSpec, parseBytes, parseFlags } from "./cli.ts";
import {
  checkRunOptions,
  defaultOf,
  FlagError,
  flagsOf,
  parseFlagValue,
  resumedOptions,
  type TrainFlag,
} from "./flags.ts";
import { CheckpointError } from "../io/weights.ts";
import { type RunConfig, type RunOptions, runTraining } from "./run.ts";
import { type TaskName, TASKS } from "./tasks.ts";
import { evaluateCheckpoint } from "./evaluate.ts";

/** The deno task that trains each task. */
export const TRAIN_TASK_NAMES: Readonly<Record<TaskName, string>> = {
  image: "train",
  points: "train-points",
  video: "train-video",
};

/** Default output directory of each task. */
const DEFAULT_OUT: Record<TaskName, string> = { image: "out/vit", points: "out/points", video: "out/video" };

function helpOf(f: TrainFlag, task: TaskName): { help: string; defaultText?: string } {
  const own = f.taskDefault?.[task];
  let help = f.help;
  if (f.flag === "model") help += `: ${Object.keys(TASKS[task].presets).join(" | ")}`;
  if (f.flag === "out") return { help };
  const d = defaultOf(f, task);
  return { help, defaultText: d === undefined || d === "" ? undefined : own?.[1] ? `${d}: ${own[1]}` : d };
}

/** The command-line spec of a task's train command (for parseFlags and --help). */
export function trainFlagSpec(task: TaskName): FlagSpec {
  const spec: FlagSpec = {};
  for (const f of flagsOf(task)) spec[f.flag] = { type: "string", ...helpOf(f, task) };
  spec.quiet = { type: "boolean", help: "print only the summary line (no progress bar, no run lines)" };
  if (task === "image") {
    spec["skip-bad"] = { type: "boolean", help: "skip corrupt images (a warning each, a count at the end)" };
  }
  return spec;
}

/**
 * RunOptions from parsed command-line strings (absent: the flag's default for the task). Throws a
 * FlagError naming the first bad flag.
 */
export function trainOptionsFromFlags(task: TaskName, raw: Record<string, string | undefined>): RunOptions {
  const o: Record<string, unknown> = { task };
  const shape: Record<string, number> = {};
  for (const f of flagsOf(task)) {
    const text = raw[f.flag] ?? defaultOf(f, task, raw.recipe);
    if (text === undefined) continue;
    const v = parseFlagValue(f, text);
    if (f.shape) shape[f.key] = v as number;
    else o[f.key] = v;
  }
  const presets = TASKS[task].presets;
  const name = o.modelName as string;
  if (!presets[name]) {
    throw new FlagError(
      `--model: unknown '${name}' for this task; one of ${Object.keys(presets).join(", ")}`,
    );
  }
  const custom = Object.entries(shape).some(([k, v]) =>
    (presets[name] as unknown as PointBertConfig)[k as "dim"] !== v
  );
  o.model = { ...presets[name], ...shape };
  if (custom) o.modelName = "custom";
  o.out ??= DEFAULT_OUT[task];
  if (o.init === "") o.init = undefined;
  if (o.resume === "") o.resume = undefined;
  return o as unknown as RunOptions;
}

/** Runs the train command of `task` on `args`; prints the run's lines and its summary. */
export async function trainCommand(task: TaskName, args: string[] = Deno.args): Promise<void> {
  const name = TRAIN_TASK_NAMES[task];
  const raw = parseFlags(`usage: deno task ${name} [flags]`, trainFlagSpec(task), args) as Record<
    string,
    string | boolean | undefined
  >;
  const quiet = raw.quiet === true;
  const given = new Set(
    Object.keys(raw).filter((k) => raw[k] !== undefined && k !== "quiet" && k !== "help" && k !== "skip-bad"),
  );
  const log = quiet ? undefined : (line: string) => console.error(line);
  try {
    let opts = trainOptionsFromFlags(task, raw as Record<string, string | undefined>);
    if (opts.resume) {
      const where = await findCheckpoint(opts.resume);
      const file = `${where.checkpoint}/state.json`;
      const stored = (await readCheckpointState(where.checkpoint)).run as RunConfig | undefined;
      if (stored) {
        try {
          opts = resumedOptions(opts, given, stored, where.runDir);
        } catch (e) {
          // a conflicting flag: say where the run's own setting is stored
          if (e instanceof FlagError) throw new FlagError(`${e.message} (stored in ${file}, field 'run')`);
          throw e;
        }
        try {
          checkRunOptions(opts); // the flags were checked already: a bad value here is a stored one
        } catch (e) {
          throw new CheckpointError(file, `field 'run' holds a bad setting: ${(e as Error).message}`);
        }
      } else if (!given.has("out")) opts.out = where.runDir;
    }
    const gpu = await getGpu({ quiet: true });
    log?.(`webgpu adapter: ${gpu.adapterName}`);
    const s = await runTraining({ ...opts, log, progress: !quiet, skipBad: raw["skip-bad"] === true });
    const wrote = s.checkpoint
      ? "metrics.jsonl, chart.svg and checkpoint/"
      : opts.resume
      ? "metrics.jsonl and chart.svg (the run had already finished: checkpoint/ unchanged)"
      : "metrics.jsonl and chart.svg (no step ran, so no checkpoint)";
    console.log(
      `test accuracy ${(100 * s.testAccuracy).toFixed(2)}% after ${s.steps} steps in ${
        s.seconds.toFixed(1)
      } s on ` +
        `${s.adapter}; frozen LLM: ${s.llm}; ${wrote} in ${opts.out}`,
    );
  } catch (e) {
    console.error(`${name}: ${(e as Error).message}`);
    Deno.exit(e instanceof FlagError ? 2 : 1);
  }
}

/** The eval command's flags. */
export const EVAL_FLAGS: FlagSpec = {
  checkpoint: { type: "string", help: "a run directory (or its checkpoint/) to evaluate (required)" },
  data: { type: "string", help: "dataset directory", defaultText: "the run's" },
  split: { type: "string", default: "test", help: "split: test (= val, an ImageFolder's val/) | train" },
  limit: { type: "string", default: "0", help: "evaluate the first N samples (0: all)" },
  batch: { type: "string", help: "evaluation batch size", defaultText: "the run's --eval-batch" },
  "gpu-memory": {
    type: "string",
    default: "0",
    help: "GPU memory budget for frozen LLM weights, e.g. 600MB (0: unlimited)",
  },
};

/** Runs the eval command on `args`: prints top-1 (and top-5) accuracy of a checkpoint on a split. */
export async function evalCommand(args: string[] = Deno.args): Promise<void> {
  const f = parseFlags("usage: deno task eval --checkpoint RUN_DIR [flags]", EVAL_FLAGS, args) as Record<
    string,
    string | undefined
  >;
  try {
    if (!f.checkpoint) {
      throw new FlagError("--checkpoint: which run to evaluate? (a run directory such as out/vit)");
    }
    if (f.split === "val") f.split = "test"; // ImageFolder's and CIFAR's name of it
    if (f.split !== "test" && f.split !== "train") {
      throw new FlagError(`--split: expected test (or val) or train, got '${f.split}'`);
    }
    const int = (flag: string, min: number) => {
      const v = f[flag] === undefined ? undefined : Number(f[flag]);
      if (v !== undefined && !(f[flag]!.trim() !== "" && Number.isInteger(v) && v >= min)) {
        throw new FlagError(`--${flag}: expected an integer ≥ ${min}, got '${f[flag]}'`);
      }
      return v;
    };
    const gpuMemory = parseBytes(f["gpu-memory"]!);
    if (gpuMemory === undefined) {
      throw new FlagError(`--gpu-memory: expected a size such as 600MB or 1.5GiB, got '${f["gpu-memory"]}'`);
    }
    const r = await evaluateCheckpoint({
      checkpoint: f.checkpoint,
      data: f.data,
      split: f.split as Split,
      limit: int("limit", 0),
      batch: int("batch", 1),
      gpuMemory,
    });
    const pct = (a: number) => `${(100 * a).toFixed(2)}%`;
    console.log(
      `${r.checkpoint} (step ${r.step}, ${TASKS[r.run.task].describe(r.run)}) on the ${r.split} split of ` +
        `${r.run.data} (${r.n} samples): top-1 accuracy ${pct(r.top1)}` +
        (r.top5 !== undefined ? `, top-5 accuracy ${pct(r.top5)}` : ""),
    );
  } catch (e) {
    console.error(`eval: ${(e as Error).message}`);
    Deno.exit(e instanceof FlagError ? 2 : 1);
  }
}
