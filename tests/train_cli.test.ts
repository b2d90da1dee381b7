// The training commands' one flag table: defaults per task, bad values refused up front with the flag
// named (command line and library alike), memory sizes with units, resuming with the stored settings
// (conflicting flags refused by name), and the run chart (markers, sane ranges and ticks, run-name title).

import { assert, assertThrowsMsg, test } from "./testing.ts";
import { trainOptionsFromFlags } from "../train/commands.ts";
import { checkRunOptions, conflictingOption, resumedOptions } from "../train/flags.ts";
import { parseBytes } from "../train/cli.ts";
import { lineChart, niceTicks } from "../train/chart.ts";
import { runConfigOf } from "../train/run.ts";
import { DEFAULT_LLM, POINT_PRESETS, RANDOM_LLM, VIT_PRESETS } from "../models/presets.ts";
import { closeRunLlm, openRunLlm } from "../train/loop.ts";

test("train flags: one table, the same defaults for the same idea, task recipes where stated", () => {
  const img = trainOptionsFromFlags("image", {});
  assert.deepEqual(img.model, VIT_PRESETS.fmnist);
  assert.equal(img.modelName, "fmnist");
  assert.deepEqual(
    [img.epochs, img.batch, img.lr, img.warmup, img.clip, img.labelSmoothing, img.evalBatch, img.logEvery],
    [1, 64, 1e-3, 20, 1, 0.1, 200, 10],
  );
  assert.deepEqual([img.out, img.llm, img.gpuMemory, img.resume, img.init], [
    "out/vit",
    "default",
    0,
    undefined,
    undefined,
  ]);
  const pts = trainOptionsFromFlags("points", {});
  assert.deepEqual(pts.model, POINT_PRESETS["fmnist-points"]);
  // the same flags mean the same; the points recipe's own defaults are the table's stated ones
  assert.deepEqual([pts.lr, pts.warmup, pts.epochs, pts.logEvery, pts.evalBatch], [1e-3, 20, 1, 10, 200]);
  assert.deepEqual([pts.clip, pts.labelSmoothing, pts.batch, pts.steps, pts.evalLimit], [
    10,
    0.2,
    16,
    60,
    200,
  ]);
  const custom = trainOptionsFromFlags("points", { dim: "32", heads: "2" });
  assert.deepEqual(custom.model, { ...POINT_PRESETS["fmnist-points"], dim: 32, heads: 2 });
  assert.equal(custom.modelName, "custom");
  const vit = trainOptionsFromFlags("image", { model: "tiny", dim: "64", depth: "2", heads: "2" });
  assert.deepEqual(vit.model, { ...VIT_PRESETS.tiny, dim: 64, depth: 2, heads: 2 });
  assert.equal(vit.modelName, "custom");
  // memory sizes take units, everywhere the same parser
  assert.equal(trainOptionsFromFlags("image", { "gpu-memory": "600MB" }).gpuMemory, 600e6);
  assert.deepEqual(
    ["600MB", "1.5GiB", "512 KiB", "0", "123", "2e3mb", "600XB", "-1MB", "MB"].map(parseBytes),
    [600e6, 1.5 * 2 ** 30, 512 * 1024, 0, 123, 2e9, undefined, undefined, undefined],
  );
});

test("train flags: bad values are refused up front, naming the flag", () => {
  const bad: [string, string, string][] = [
    ["batch", "0", "integer ≥ 1"],
    ["eval-batch", "0", "integer ≥ 1"],
    ["lr", "-5", "> 0"],
    ["lr", "0", "> 0"],
    ["log-every", "0", "integer ≥ 1"],
    ["epochs", "0", "integer ≥ 1"],
    ["batch", "2.5", "integer"],
    ["warmup", "-1", "≥ 0"],
    ["clip", "abc", "number"],
    ["label-smoothing", "1", "[0, 1)"],
    ["gpu-memory", "lots", "600MB"],
    ["seed", "", "integer"],
  ];
  for (const [flag, v, why] of bad) {
    assertThrowsMsg(() => trainOptionsFromFlags("image", { [flag]: v }), `--${flag}:`, why, `'${v}'`);
  }
  assertThrowsMsg(() => trainOptionsFromFlags("points", { dropout: "1" }), "--dropout:", "[0, 1)");
  assertThrowsMsg(() => trainOptionsFromFlags("points", { groups: "0" }), "--groups:");
  assertThrowsMsg(
    () => trainOptionsFromFlags("image", { model: "fmnist-points" }),
    "--model:",
    "fmnist, tiny-28",
  );
  // the library checks its options against the same table
  const ok = trainOptionsFromFlags("image", {});
  checkRunOptions(ok);
  assertThrowsMsg(() => checkRunOptions({ ...ok, batch: 0 }), "--batch:", "integer ≥ 1");
  assertThrowsMsg(() => checkRunOptions({ ...ok, evalBatch: NaN }), "--eval-batch:");
  assertThrowsMsg(() => checkRunOptions({ ...ok, lr: -5 }), "--lr:", "> 0");
});

test("train flags: a resumed run reuses every stored setting and refuses conflicting flags by name", () => {
  const stored = runConfigOf(
    trainOptionsFromFlags("image", { lr: "2e-3", batch: "32", llm: "none", epochs: "3" }),
  );
  const given = (flags: Record<string, string>) => ({
    opts: trainOptionsFromFlags("image", { resume: "runs/a", ...flags }),
    set: new Set(Object.keys(flags).concat("resume")),
  });
  // only --resume: everything comes from the run, and --out is the run's directory
  const a = given({});
  const r = resumedOptions(a.opts, a.set, stored, "runs/a");
  assert.deepEqual([r.lr, r.batch, r.llm, r.epochs, r.out, r.resume], [
    2e-3,
    32,
    "none",
    3,
    "runs/a",
    "runs/a",
  ]);
  // the same values retyped are fine; another value is refused naming the flag
  const same = given({ lr: "0.002", llm: "none" });
  assert.equal(resumedOptions(same.opts, same.set, stored, "runs/a").lr, 2e-3);
  for (
    const [flag, v] of [["lr", "1e-3"], ["batch", "64"], ["llm", "default"], ["model", "tiny-28"], [
      "epochs",
      "1",
    ]]
  ) {
    const g = given({ [flag]: v });
    assertThrowsMsg(() => resumedOptions(g.opts, g.set, stored, "runs/a"), `--${flag}:`, "trained with");
  }
  // per-invocation settings may change: data location, evaluation batch, output directory
  const moved = given({ data: "/elsewhere", "eval-batch": "50", out: "runs/b" });
  const m = resumedOptions(moved.opts, moved.set, stored, "runs/a");
  assert.deepEqual([m.data, m.evalBatch, m.out, m.lr], ["/elsewhere", 50, "runs/b", 2e-3]);
  const init = given({ init: "w.safetensors" });
  assertThrowsMsg(() => resumedOptions(init.opts, init.set, stored, "runs/a"), "--init:");
  // the runner's own check (library callers that pass full options)
  assert.equal(conflictingOption({ ...stored }, stored), undefined);
  assert.match(conflictingOption({ ...stored, lr: 1e-3 }, stored)!, /^--lr: .*trained with 0\.002/);
  assert.match(
    conflictingOption({ ...stored, model: { ...stored.model, dim: 48 } }, stored)!,
    /^--dim: .*trained with 32, not 48/,
  );
  assert.match(conflictingOption({ ...stored, model: { ...stored.model, chans: 3 } }, stored)!, /^--chans:/);
  const pts = given({});
  assertThrowsMsg(
    () => resumedOptions({ ...pts.opts, task: "points" }, pts.set, stored, "runs/a"),
    "--resume:",
    "image run",
  );
});

test("train chart: one-point series get markers, accuracy spans 0..1 with nice ticks, the title is escaped", () => {
  assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(-0.087, 0.913), [-0.2, 0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(2.31, 2.58), [2.3, 2.4, 2.5, 2.6]);
  assert.deepEqual(niceTicks(0.5, 0.5), [0.44, 0.46, 0.48, 0.5, 0.52, 0.54, 0.56]);
  const svg = lineChart("run <a>", [
    { ylabel: "training loss", series: [{ name: "loss", color: "#00f", points: [[1, 2.3], [2, 2.1]] }] },
    {
      ylabel: "test accuracy",
      range: [0, 1],
      series: [{ name: "accuracy", color: "#f00", points: [[78, 0.413]] }],
    },
  ]);
  assert.match(svg, /<circle [^>]*fill="#f00"><title>accuracy 0\.413 at step 78<\/title>/);
  assert.equal((svg.match(/<circle/g) ?? []).length, 3);
  const yTicks = [...svg.matchAll(/text-anchor="end">([-0-9.]+)</g)].map((m) => Number(m[1]));
  assert.deepEqual(yTicks.slice(-6), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  const xTicks = [...svg.matchAll(/text-anchor="middle">(\d+)</g)].map((m) => Number(m[1]));
  assert.deepEqual(xTicks, [0, 20, 40, 60, 80]);
  assert.ok(svg.includes("run &lt;a&gt;"));
});

test("train command: a bad flag exits with status 2 and a message naming it (before any GPU work)", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "examples/train_vit.ts", "--eval-batch", "0"],
    cwd: new URL("..", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  assert.match(
    new TextDecoder().decode(out.stderr),
    /^train: --eval-batch: expected an integer ≥ 1, got '0'/,
  );
});

test("--llm default is the bundled text-pretrained lm-default, --llm random the random llama-tiny; summaries say so", async () => {
  const d = await openRunLlm("default");
  try {
    assert.equal(d.ck!.dir, DEFAULT_LLM);
    assert.deepEqual([d.ck!.cfg.hidden, d.ck!.cfg.layers, d.ck!.cfg.vocab], [256, 6, 4096]);
    assert.match(d.what, /lm-default .*pretrained on English text.*hidden 256, 6 layers/);
    assert.equal(d.ck!.src.info("model.layers.5.mlp.down_proj.weight").dtype, "BF16");
  } finally {
    closeRunLlm(d);
  }
  // lm-default is what pretraining wrote: a BPE tokenizer beside bf16 weights
  const tok = JSON.parse(await Deno.readTextFile(`${DEFAULT_LLM}/tokenizer.json`));
  assert.equal(tok.model.type, "BPE");
  const r = await openRunLlm("random");
  try {
    assert.equal(r.ck!.dir, RANDOM_LLM);
    assert.deepEqual([r.ck!.cfg.hidden, r.ck!.cfg.layers], [64, 3]);
    assert.match(r.what, /llama-tiny .*random, not text-pretrained/);
  } finally {
    closeRunLlm(r);
  }
  assert.equal(trainOptionsFromFlags("image", {}).llm, "default");
});
