// The video task through the one runner (train-video): its flags (shape overrides, choices, ranges,
// the reference's middle LLM layer), a moving Fashion-MNIST run with a frozen LLaMA layer, drop path
// and layer decay that resumes exactly, a VideoMAE .pth as --init, listed videos (ffmpeg-made) with
// RandAugment scored per video over test clips × crops, and RandAugment consistent across frames.
// Numerics are proven by the video parity tests.

import "../mod.ts";
import { type RunOptions, runTraining } from "../train/run.ts";
import { trainOptionsFromFlags } from "../train/commands.ts";
import { AccuracyCounter } from "../train/scores.ts";
import { DEFAULT_DATA_DIR } from "../data/fashion_mnist.ts";
import { videoDataKind } from "../data/video/dataset.ts";
import { randAugmentFrames } from "../data/video/clips.ts";
import { videoToolRuns } from "../data/video/decode.ts";
import { parseRandAugment, randAugment } from "../data/image/augment.ts";
import { Rng } from "../compiler/core/random.ts";
import { parseLayerSelection } from "../io/config.ts";
import { readCheckpointState } from "../io/checkpoint.ts";
import type { VideoConfig } from "../models/video.ts";
import { assert, assertRejectsMsg, assertThrowsMsg, test } from "./testing.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;

/** The shape of tests/fixtures/video/*.pth (gen_video.py), with moving Fashion-MNIST's 8 classes. */
const MODEL: VideoConfig = {
  frames: 4,
  tubelet: 2,
  img: 28,
  patch: 7,
  chans: 1,
  dim: 32,
  depth: 2,
  heads: 2,
  classes: 8,
  initValues: 0.1,
};

function options(out: string, extra: Partial<RunOptions> = {}): RunOptions {
  return {
    task: "video",
    model: MODEL,
    modelName: "custom",
    llm: "random",
    llmLayers: "middle",
    epochs: 2,
    steps: 0,
    batch: 2, // the listed-videos run's shapes: its kernels are compiled once for both
    lr: 2e-3,
    warmup: 2,
    weightDecay: 0.05,
    labelSmoothing: 0.1,
    dropout: 0,
    clip: 1,
    data: DEFAULT_DATA_DIR,
    out,
    seed: 3,
    logEvery: 1,
    evalBatch: 3, // a padded last batch
    trainLimit: 6, // 3 steps per epoch
    evalLimit: 7,
    sampling: "segment",
    stride: 4,
    testClips: 1,
    testCrops: 1,
    dropPath: 0.1,
    layerDecay: 0.7,
    ...extra,
  };
}

test("train-video flags: preset, shape overrides, choices and ranges, the middle LLM layer", () => {
  const o = trainOptionsFromFlags("video", {});
  assert.equal(o.modelName, "mfmnist");
  assert.deepEqual(
    { ...o.model },
    {
      frames: 8,
      tubelet: 2,
      img: 28,
      patch: 7,
      chans: 1,
      dim: 64,
      depth: 2,
      heads: 4,
      classes: 8,
      initValues: 0,
    },
  );
  assert.equal(o.llmLayers, "middle");
  assert.equal(o.out, "out/video");
  assert.deepEqual([o.sampling, o.stride, o.testClips, o.testCrops, o.layerDecay], ["segment", 4, 1, 1, 1]);
  const c = trainOptionsFromFlags("video", { frames: "4", "init-values": "0.1", sampling: "dense" });
  assert.equal(c.modelName, "custom");
  assert.equal((c.model as VideoConfig).frames, 4);
  assert.equal((c.model as VideoConfig).initValues, 0.1);
  assert.equal(c.sampling, "dense");
  assertThrowsMsg(
    () => trainOptionsFromFlags("video", { sampling: "random" }),
    "--sampling: expected one of segment, dense, got 'random'",
  );
  assertThrowsMsg(
    () => trainOptionsFromFlags("video", { "layer-decay": "1.5" }),
    "--layer-decay: expected a number in (0, 1], got '1.5'",
  );
  // the reference's LLaMA-7B layer 15 of 32; llama-tiny's layer 1 of 3
  assert.deepEqual(parseLayerSelection("middle", 32), [15]);
  assert.deepEqual(parseLayerSelection("middle", 3), [1]);
});

test("train-video: moving Fashion-MNIST with a frozen LLaMA layer, drop path and layer decay resumes exactly", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const full = await runTraining(options(`${tmp}/full`));
    assert.equal(full.losses.length, 6);
    assert.ok(full.losses.every((l) => Number.isFinite(l.loss)));
    const first = await runTraining(options(`${tmp}/part`, { stopAfter: 4 }));
    const rest = await runTraining(options(`${tmp}/part`, { resume: `${tmp}/part` }));
    assert.deepEqual(first.losses, full.losses.slice(0, 4));
    assert.deepEqual(rest.losses, full.losses.slice(4));
    assert.equal(rest.testAccuracy, full.testAccuracy);
    const st = await readCheckpointState(`${tmp}/full/checkpoint`);
    const run = st.run as RunOptions;
    assert.deepEqual([run.task, run.llmLayers, run.dropPath, run.layerDecay, run.sampling], [
      "video",
      "middle",
      0.1,
      0.7,
      "segment",
    ]);
    // a resumed run keeps its recipe
    await assertRejectsMsg(
      () => runTraining(options(`${tmp}/part`, { resume: `${tmp}/part`, layerDecay: 0.9 })),
      "--layer-decay",
    );
    // a VideoMAE fine-tuning checkpoint (174-class head) initialises everything but the head and mappers
    const lines: string[] = [];
    await runTraining(
      options(`${tmp}/init`, {
        llm: "none",
        stopAfter: 0,
        init: `${FIXTURES}video/videomae-finetune.pth`,
        log: (l) => lines.push(l),
      }),
    );
    const init = lines.find((l) => l.startsWith("init:")) ?? "";
    assert.match(
      init,
      /^init: 34 tensors from .*videomae-finetune\.pth; 3 skipped \(pos_embed: .*head\.weight: \[174,32\]/,
    );
    assert.match(init, /2 keep their init/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

function ffmpeg(...args: string[]): void {
  const r = new Deno.Command("ffmpeg", { args: ["-v", "error", "-y", ...args], stderr: "piped" })
    .outputSync();
  assert.ok(r.success, new TextDecoder().decode(r.stderr));
}

test("train-video on listed videos: VideoMAE lists, ffmpeg decoding, scores averaged over clips × crops", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    // two 12-frame 40×32 videos, one per class (one ffmpeg call); paths relative to --video-root
    await Deno.mkdir(`${tmp}/videos`);
    const list = ["v0.mkv 0", "v1.mkv 1"];
    ffmpeg(
      ...["-f", "lavfi", "-i", "rgbtestsrc=size=40x32:rate=12:duration=1"],
      ...["-f", "lavfi", "-i", "testsrc=size=40x32:rate=12:duration=1"],
      ...["-map", "0:v", "-c:v", "ffv1", `${tmp}/videos/v0.mkv`],
      ...["-map", "1:v", "-c:v", "ffv1", `${tmp}/videos/v1.mkv`],
    );
    await Deno.mkdir(`${tmp}/lists`);
    await Deno.writeTextFile(`${tmp}/lists/train.csv`, list.join("\n") + "\n");
    await Deno.writeTextFile(`${tmp}/lists/val.csv`, list.join("\n") + "\n");
    assert.equal(videoDataKind(`${tmp}/lists`), "videomae-list");
    // the moving Fashion-MNIST run's model and batch but RGB: only the patch embedding compiles anew
    const model: VideoConfig = { ...MODEL, chans: 3 };
    const lines: string[] = [];
    const runs = videoToolRuns();
    const s = await runTraining(
      options(`${tmp}/run`, {
        model,
        epochs: 1,
        trainLimit: 0,
        evalLimit: 0,
        data: `${tmp}/lists`,
        videoRoot: `${tmp}/videos`,
        testClips: 2,
        testCrops: 2,
        aa: "rand-m7-n4-mstd0.5-inc1", // VideoMAE's SSv2 setting
        log: (l) => lines.push(l),
      }),
    );
    assert.equal(s.steps, 1);
    // each video probed and decoded once, for its training clip and its 4 test views (clipCache)
    assert.equal(videoToolRuns() - runs, 4, "ffmpeg / ffprobe runs");
    // accuracy over 2 videos (4 views averaged per video), not over the 8 views: a multiple of 1/2
    assert.ok(Number.isInteger(s.testAccuracy * 2), `accuracy ${s.testAccuracy}`);
    assert.match(lines.join("\n"), /video ViT custom on .*lists/);
    // a label beyond the model's classes is named
    await Deno.writeTextFile(`${tmp}/lists/train.csv`, "v0.mkv 9\n");
    await assertRejectsMsg(
      () =>
        runTraining(
          options(`${tmp}/bad`, { model, data: `${tmp}/lists`, videoRoot: `${tmp}/videos` }),
        ),
      "has label 9, but the model has 8 classes",
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

test("AccuracyCounter: per sample, and per video over consecutive views", () => {
  // 2 videos × 3 views, 2 classes: video 0 (label 0) wins on average though one view says 1
  const views = { n: 6, views: 3, labels: [0, 0, 0, 1, 1, 1], sampleSize: 1, write() {} };
  const acc = new AccuracyCounter(views, 2);
  acc.add([0.9, 0.1, 0.2, 0.8, 0.7, 0.3, 0, 1], [0, 0, 0, 1], 3); // a padded batch: 3 valid rows
  acc.add([0.6, 0.4, 0.4, 0.6, 0.3, 0.7], [1, 1, 1], 3);
  assert.deepEqual(acc.accuracies(), [1]);
  assert.equal(acc.n, 2);
  const plain = new AccuracyCounter({ ...views, views: undefined } as never, 2);
  plain.add([0.9, 0.1, 0.2, 0.8, 0.7, 0.3], [0, 0, 0], 3);
  plain.add([0.6, 0.4, 0.4, 0.6, 0.3, 0.7], [1, 1, 1], 3);
  assert.deepEqual(plain.accuracies(), [4 / 6]);
  const short = new AccuracyCounter(views, 2);
  short.add([1, 0], [0], 1);
  assertThrowsMsg(() => short.accuracies(), "1 of 6 view rows");
});

test("RandAugment of a clip: the same ops and magnitudes on every frame; the rng advances as for one image", () => {
  const W = 16, H = 12;
  const frame = (k: number) => Uint8Array.from({ length: W * H * 3 }, (_, i) => (i * 7 + k * 31) & 255);
  const clip = { path: "x", width: W, height: H, frames: [frame(0), frame(0), frame(1)] };
  const cfg = parseRandAugment("rand-m9-n3-p1-mstd0.5-inc1");
  const rng = new Rng(5), one = new Rng(5);
  const out = randAugmentFrames(clip, cfg, rng);
  assert.deepEqual(out.frames[0], out.frames[1]); // equal frames stay equal
  const alone = randAugment({ width: W, height: H, channels: 3, data: frame(1) }, cfg, one);
  assert.deepEqual(out.frames[2], alone.data); // frame 2 got exactly one image's draws
  assert.equal(rng.state, one.state);
  assert.notDeepEqual(out.frames[2], frame(1));
});
