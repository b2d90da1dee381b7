// Video data (data/video/): VideoMAE's frame sampling, list files and SSv2 JSON, decoding through
// ffmpeg (clips generated here with ffmpeg's testsrc: a lossless .mkv, an .mp4, a .webm and a folder
// of PNG frames), clip assembly with one crop for all frames, test views, the decoded-clip cache (a
// second epoch starts no ffmpeg), the errors for bad inputs, and the built-in moving Fashion-MNIST.
// Needs Debian's ffmpeg (.ci/run installs it).

import { Rng } from "../compiler/core/random.ts";
import {
  clearProbeCache,
  decodeFrameFolder,
  decodeVideo,
  type Frames,
  probeVideo,
  videoToolRuns,
} from "../data/video/decode.ts";
import { LruCache } from "../data/cache.ts";
import { parseRandAugment } from "../data/image/augment.ts";
import { parseSsv2, parseVideoList } from "../data/video/labels.ts";
import {
  cropOffset,
  denseTestIndices,
  denseTrainIndices,
  ssv2TestIndices,
  ssv2TrainIndices,
  testViews,
} from "../data/video/sampling.ts";
import { averageViews, clipCache, videoSamples, videoViewSamples, writeClip } from "../data/video/clips.ts";
import { drawTrajectory, movingFashionSamples, renderClip } from "../data/video/moving_fmnist.ts";
import { DEFAULT_DATA_DIR, loadFashionMnist } from "../data/fashion_mnist.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";

function ffmpeg(...args: string[]): void {
  let r: Deno.CommandOutput;
  try {
    r = new Deno.Command("ffmpeg", { args: ["-v", "error", "-y", ...args], stderr: "piped" }).outputSync();
  } catch {
    throw new Error("these tests need ffmpeg on PATH (Debian: apt-get install ffmpeg; .ci/run installs it)");
  }
  assert.ok(r.success, new TextDecoder().decode(r.stderr));
}

/**
 * A temp dir with: testsrc 64×48, 20 frames at 10 fps as lossless ffv1 .mkv, .mp4, .webm and PNG frames;
 * a 3-frame short.mp4, an unreadable broken.mp4, and mixed/ with frames of two sizes. One ffmpeg call
 * writes them all (each call costs about half a second).
 */
function makeClips(): string {
  const d = Deno.makeTempDirSync({ prefix: "video_data_" });
  Deno.mkdirSync(`${d}/frames`);
  Deno.mkdirSync(`${d}/mixed`);
  const lavfi = (src: string) => ["-f", "lavfi", "-i", `testsrc=${src}`];
  ffmpeg(
    ...lavfi("size=64x48:rate=10:duration=2"),
    ...lavfi("size=64x48:rate=10:duration=0.3"),
    ...lavfi("size=64x48:rate=1:duration=1"),
    ...lavfi("size=32x32:rate=1:duration=1"),
    ...["-map", "0:v", "-c:v", "ffv1", "-pix_fmt", "bgr0", `${d}/a.mkv`],
    ...["-map", "0:v", "-pix_fmt", "yuv420p", `${d}/a.mp4`],
    ...["-map", "0:v", "-c:v", "libvpx-vp9", "-b:v", "200k", `${d}/a.webm`],
    ...["-map", "0:v", `${d}/frames/img_%d.png`], // img_1 .. img_20: numeric order differs from name order
    ...["-map", "1:v", "-pix_fmt", "yuv420p", `${d}/short.mp4`],
    ...["-map", "2:v", `${d}/mixed/1.png`],
    ...["-map", "3:v", `${d}/mixed/2.png`],
  );
  Deno.writeFileSync(`${d}/broken.mp4`, new Uint8Array(4096).map((_, i) => (i * 37) & 255));
  return d;
}

let dir: string | undefined;
const clips = () => (dir ??= makeClips());

test("video sampling: SSv2 segments, SSv2 test clips, Kinetics dense windows, crops", () => {
  const rng = new Rng(5);
  for (let r = 0; r < 20; r++) {
    const idx = ssv2TrainIndices(43, 4, rng); // segments of 10: [0,10) [10,20) [20,30) [30,40)
    idx.forEach((v, i) => assert.ok(v >= 10 * i && v < 10 * (i + 1), `${idx}`));
  }
  assert.deepEqual(ssv2TrainIndices(2, 4, rng), [0, 0, 0, 0]);
  const short = ssv2TrainIndices(6, 4, rng); // fewer frames than 2 per segment: sorted random frames
  assert.deepEqual(short, [...short].sort((a, b) => a - b));
  // tick 10: centres 5, 15, 25, 35 and starts 0, 10, 20, 30, sorted; clip k takes every other from k
  assert.deepEqual(ssv2TestIndices(40, 4, 0, 2), [0, 10, 20, 30]);
  assert.deepEqual(ssv2TestIndices(40, 4, 1, 2), [5, 15, 25, 35]);
  // dense: 25 frames at stride 4; clip 1 of 2 starts at (25 − 4)/1 = 21
  assert.deepEqual(denseTestIndices(100, 4, 4, 0, 2), [0, 4, 8, 12]);
  assert.deepEqual(denseTestIndices(100, 4, 4, 1, 2), [84, 88, 92, 96]);
  assert.deepEqual(denseTestIndices(6, 4, 4, 0, 1), [0, 4, 4, 4]);
  for (let r = 0; r < 20; r++) {
    const [s, ...rest] = denseTrainIndices(100, 4, 4, rng); // linspace(s, s + 16, 4), truncated
    assert.deepEqual(rest, [s + 5, s + 10, s + 15]);
    assert.ok(s >= 0 && s + 16 < 100);
  }
  assert.deepEqual(denseTrainIndices(10, 4, 4, rng), [0, 9, 9, 9]); // numpy: linspace(0, 10, 2) padded, clipped
  assert.deepEqual(testViews(2, 3).map((v) => `${v.clip}${v.crop}`), ["00", "01", "02", "10", "11", "12"]);
  assert.deepEqual([0, 1, 2].map((k) => cropOffset(320, 224, k, 3)), [0, 48, 96]);
  assert.equal(cropOffset(320, 224, 0, 1), 48);
  assertThrowsMsg(() => ssv2TestIndices(40, 4, 2, 2), "clip 2 of 2");
});

test("video labels: VideoMAE list files and SSv2 JSON; bad lines named", () => {
  const list = parseVideoList("a/b c.webm 3\n\nx.mp4 12\nframes/v1 40 7\n", "train.csv", "/data");
  assert.deepEqual(list, [
    { path: "/data/a/b c.webm", label: 3 },
    { path: "/data/x.mp4", label: 12 },
    { path: "/data/frames/v1", label: 7 },
  ]);
  assertThrowsMsg(() => parseVideoList("ok.mp4 1\nbad.mp4 x\n", "val.csv"), "val.csv:2", "integer label");
  const labels = { "Pushing something from left to right": "0", "Moving something up": "1" };
  const split = [
    { id: "17", template: "Moving [something] up", label: "moving a cup up" },
    { id: 3, template: "Pushing [something] from left to right" },
  ];
  assert.deepEqual(parseSsv2(split, labels, { split: "train.json", labels: "labels.json" }, "/v"), [
    { path: "/v/17.webm", label: 1 },
    { path: "/v/3.webm", label: 0 },
  ]);
  assertThrowsMsg(
    () =>
      parseSsv2(
        [{ id: "9", template: "Tearing [something]" }],
        labels,
        { split: "t.json", labels: "l.json" },
        "/v",
      ),
    "t.json: entry 0 (id 9)",
    "'Tearing [something]' is not in l.json",
  );
});

test("video decode: ffprobe sizes; mkv, mp4, webm and a PNG folder decode to the same frames in order", () => {
  const d = clips();
  assert.deepEqual(probeVideo(`${d}/a.mkv`), { width: 64, height: 48, frames: 20 });
  assert.deepEqual(probeVideo(`${d}/a.webm`).frames, 20);
  const mkv = decodeVideo(`${d}/a.mkv`);
  assert.equal(mkv.frames.length, 20);
  assert.equal(mkv.frames[0].length, 64 * 48 * 3);
  // the lossless video and the PNG frames agree exactly, frame by frame (img_2 before img_10)
  const png = decodeFrameFolder(`${d}/frames`, [0, 1, 9, 19, 1]);
  assert.deepEqual([png.width, png.height], [64, 48]);
  [0, 1, 9, 19, 1].forEach((k, i) => assert.deepEqual(png.frames[i], mkv.frames[k], `frame ${k}`));
  assert.notDeepEqual(mkv.frames[0], mkv.frames[1]); // testsrc moves
  // lossy codecs: close to the lossless frames on average
  for (const f of ["a.mp4", "a.webm"]) {
    const v = decodeVideo(`${d}/${f}`);
    assert.equal(v.frames.length, 20, f);
    let err = 0;
    for (let i = 0; i < v.frames[7].length; i++) err += Math.abs(v.frames[7][i] - mkv.frames[7][i]);
    assert.ok(err / v.frames[7].length < 20, `${f}: mean abs error ${err / v.frames[7].length}`);
  }
  const small = decodeVideo(`${d}/a.mkv`, { width: 32, height: 24 });
  assert.deepEqual([small.width, small.height, small.frames[0].length], [32, 24, 32 * 24 * 3]);
  // several frames of a folder come from one ffmpeg call (concat, then scale), byte for byte what one
  // call per frame gives
  const runs = videoToolRuns();
  const both = decodeFrameFolder(`${d}/frames`, [0, 9], { width: 32, height: 24 });
  assert.equal(videoToolRuns() - runs, 1, "one ffmpeg call for both frames (frame 0's probe is remembered)");
  const one = decodeFrameFolder(`${d}/frames`, [0], { width: 32, height: 24 });
  assert.deepEqual(both.frames[0], one.frames[0]);
  assert.deepEqual(both.frames[1], small.frames[9]);
});

test("video clips: one crop for every frame; flip mirrors; luma; test views averaged", () => {
  // a synthetic 2-frame 4×2 clip: identity crop at its own size reproduces the pixels exactly
  const frame = (k: number) => Uint8Array.from({ length: 4 * 2 * 3 }, (_, i) => (i * 10 + k * 7) % 256);
  const f: Frames = { path: "mem", width: 4, height: 2, frames: [frame(0), frame(1)] };
  const out = new Float32Array(3 * 2 * 2 * 2);
  // a 2×2 crop at x=1 (no resampling at the same size)
  writeClip(f, { x: 1, y: 0, w: 2, h: 2 }, 2, 3, [0, 0, 0], [1, 1, 1], false, out, 0);
  const at = (t: number, y: number, x: number, c: number) => f.frames[t][(y * 4 + x) * 3 + c] / 255;
  for (let c = 0; c < 3; c++) {
    for (let t = 0; t < 2; t++) {
      for (let y = 0; y < 2; y++) {
        for (let x = 0; x < 2; x++) {
          assert.ok(Math.abs(out[((c * 2 + t) * 2 + y) * 2 + x] - at(t, y, x + 1, c)) < 1e-6);
        }
      }
    }
  }
  const flipped = new Float32Array(out.length);
  writeClip(f, { x: 1, y: 0, w: 2, h: 2 }, 2, 3, [0, 0, 0], [1, 1, 1], true, flipped, 0);
  assert.ok(Math.abs(flipped[0] - out[1]) < 1e-6 && Math.abs(flipped[1] - out[0]) < 1e-6);
  const luma = new Float32Array(2 * 2 * 2);
  writeClip(f, { x: 1, y: 0, w: 2, h: 2 }, 2, 1, [0], [1], false, luma, 0);
  assert.ok(
    Math.abs(luma[0] - (0.299 * at(0, 0, 1, 0) + 0.587 * at(0, 0, 1, 1) + 0.114 * at(0, 0, 1, 2))) < 1e-6,
  );

  const d = clips();
  const entries = [{ path: `${d}/a.mp4`, label: 1 }, { path: `${d}/frames`, label: 0 }];
  const opts = { frames: 8, size: 32, chans: 3 as const, sampling: "segment" as const, shortSide: 40 };
  const s = videoSamples(entries, opts);
  assert.equal(s.sampleSize, 3 * 8 * 32 * 32);
  const a = new Float32Array(s.sampleSize), b = new Float32Array(s.sampleSize);
  s.write(0, a, 0);
  s.write(0, b, 0);
  assert.deepEqual(a, b, "evaluation views are deterministic");
  s.write(0, b, 0, new Rng(3));
  assert.notDeepEqual(a, b, "training clips are augmented");
  assert.ok(b.every(Number.isFinite));
  const views = videoViewSamples(entries, opts, 2, 3);
  assert.equal(views.n, 12);
  assert.equal(views.views, 6);
  assert.deepEqual(Array.from(views.labels).slice(4, 8), [1, 1, 0, 0]);
  const v0 = new Float32Array(s.sampleSize), v1 = new Float32Array(s.sampleSize);
  views.write(0, v0, 0);
  views.write(1, v1, 0);
  assert.notDeepEqual(v0, v1, "two crops differ");
  assert.deepEqual(averageViews(Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8), 2, 2), Float32Array.of(2, 3, 6, 7));
});

test("video clip cache: a second epoch starts no ffmpeg and gives the same clips; rewrites seen; bounded", () => {
  const d = clips();
  const entries = [{ path: `${d}/a.mkv`, label: 0 }, { path: `${d}/frames`, label: 1 }];
  const opts = {
    frames: 4,
    size: 24,
    chans: 3 as const,
    sampling: "segment" as const,
    shortSide: 32,
    randAugment: parseRandAugment("rand-m7-n4-mstd0.5-inc1"),
  };
  const s = videoSamples(entries, opts);
  // an epoch: every video augmented (its rng from `seed`), then its evaluation view
  const epoch = (seed: number) => {
    const rng = new Rng(seed), out: Float32Array[] = [];
    for (let i = 0; i < s.n; i++) {
      out.push(new Float32Array(s.sampleSize), new Float32Array(s.sampleSize));
      s.write(i, out[out.length - 2], 0, rng);
      s.write(i, out[out.length - 1], 0);
    }
    return out;
  };
  const runs = (f: () => unknown) => {
    const before = videoToolRuns();
    f();
    return videoToolRuns() - before;
  };
  const maxBytes = clipCache.maxBytes;
  try {
    clipCache.clear();
    clearProbeCache();
    let first: Float32Array[] = [], second: Float32Array[] = [];
    // the .mkv: its probe and one decode; the folder: its first frame's probe, then one ffmpeg call per
    // sample for the frames not decoded yet (the training clip's 4, the evaluation clip's 3 others)
    assert.equal(runs(() => (first = epoch(7))), 5, "first epoch");
    assert.equal(runs(() => (second = epoch(7))), 0, "the second epoch starts no ffmpeg or ffprobe");
    assert.deepEqual(second, first, "cached clips are the decoded ones");
    assert.ok(first.every((x) => x.every(Number.isFinite)));
    assert.notDeepEqual(first[0], first[1], "augmented and evaluation clips differ");
    // other random frames of the video file come from the cache too
    assert.equal(runs(() => s.write(0, new Float32Array(s.sampleSize), 0, new Rng(99))), 0);
    // room for one video (20 frames of 42×32: 80,640 bytes): reading b.mkv evicts a.mkv
    clipCache.maxBytes = 100_000;
    Deno.copyFileSync(`${d}/a.mp4`, `${d}/b.mkv`);
    const b = videoSamples([{ path: `${d}/b.mkv`, label: 0 }], opts);
    const before = new Float32Array(s.sampleSize), after = new Float32Array(s.sampleSize);
    b.write(0, before, 0);
    assert.ok(clipCache.bytes >= 80_640 && clipCache.bytes <= 100_000, `${clipCache.bytes} bytes`);
    // a file rewritten in place is decoded again: now it holds a.mkv's frames
    Deno.copyFileSync(`${d}/a.mkv`, `${d}/b.mkv`);
    assert.equal(runs(() => b.write(0, after, 0)), 2, "the rewritten file is probed and decoded again");
    assert.deepEqual(after, first[1], "a decode afresh equals the cached clip of the same frames");
    assert.notDeepEqual(after, before);
    assert.equal(runs(() => s.write(0, new Float32Array(s.sampleSize), 0)), 1, "a.mkv was evicted");
  } finally {
    clipCache.maxBytes = maxBytes; // b.mkv goes with the temp dir
  }
  // the LRU itself: recency, the byte and entry bounds, values too large to keep
  const lru = new LruCache<number[]>(10, (v) => v.length, 3);
  lru.set("a", [1, 2, 3]);
  lru.set("b", [1, 2, 3]);
  lru.set("c", [1, 2, 3]);
  lru.get("a"); // now b is the least recently used
  lru.set("d", [1]);
  assert.deepEqual([lru.get("b"), lru.size, lru.bytes], [undefined, 3, 7]);
  lru.set("e", [1, 2, 3, 4, 5, 6, 7]); // 14 bytes > 10: c, then a go
  assert.deepEqual([lru.get("c"), lru.get("a"), lru.get("d"), lru.bytes], [undefined, undefined, [1], 8]);
  lru.set("big", new Array(11).fill(0));
  assert.equal(lru.get("big"), undefined);
});

test("video data: missing, unreadable and short videos and mixed frame sizes give errors naming the file", () => {
  const d = clips();
  const opts = { frames: 8, size: 32, chans: 3 as const, sampling: "segment" as const };
  const one = (path: string) => {
    const s = videoSamples([{ path, label: 0 }], opts);
    s.write(0, new Float32Array(s.sampleSize), 0);
  };
  assertThrowsMsg(() => one(`${d}/nope.mp4`), `${d}/nope.mp4: no such file or directory`);
  assertThrowsMsg(() => one(`${d}/broken.mp4`), `${d}/broken.mp4: ffprobe cannot read it`);
  assertThrowsMsg(() => one(`${d}/short.mp4`), `${d}/short.mp4: has 3 frames, fewer than the 8 a clip needs`);
  assertThrowsMsg(
    () => decodeFrameFolder(`${d}/mixed`, [0, 1]),
    `${d}/mixed/2.png: frame is 32×32`,
    "first is 64×48",
  );
  assertThrowsMsg(() => decodeFrameFolder(`${d}/frames`, [20]), "frame 20 requested, the folder has 20");
  // without ffmpeg on PATH the error says what to install
  const path = Deno.env.get("PATH") ?? "";
  Deno.env.set("PATH", "/nonexistent");
  try {
    assertThrowsMsg(
      () => probeVideo(`${d}/a.mp4`),
      `${d}/a.mp4`,
      "'ffprobe' is not installed (apt-get install ffmpeg)",
    );
  } finally {
    Deno.env.set("PATH", path);
  }
});

test("moving Fashion-MNIST: deterministic clips whose class is the motion, time-reversal pairs", async () => {
  const data = await loadFashionMnist(DEFAULT_DATA_DIR, "test");
  const s = movingFashionSamples(data, { seed: 1, count: 64 });
  assert.equal(s.sampleSize, 8 * 28 * 28);
  assert.deepEqual(Array.from(s.labels).slice(0, 10), [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]);
  const a = new Float32Array(s.sampleSize), b = new Float32Array(s.sampleSize);
  s.write(5, a, 0);
  movingFashionSamples(data, { seed: 1, count: 64 }).write(5, b, 0);
  assert.deepEqual(a, b, "same seed, same clip");
  movingFashionSamples(data, { seed: 2, count: 64 }).write(5, b, 0);
  assert.notDeepEqual(a, b);
  // the motion: centroid moves right/left/down/up, mass grows/shrinks
  const stats = (clip: Float32Array, f: number) => {
    let m = 0, mx = 0, my = 0;
    const bg = clip[0];
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const v = clip[f * 784 + y * 28 + x] - bg;
        m += v, mx += v * x, my += v * y;
      }
    }
    return { m, x: mx / m, y: my / m };
  };
  for (let k = 0; k < 64; k++) {
    s.write(k, a, 0);
    const first = stats(a, 0), last = stats(a, 7), cls = k % 8;
    const want =
      [last.x > first.x + 3, last.x < first.x - 3, last.y > first.y + 3, last.y < first.y - 3][cls] ??
        (cls === 6 ? last.m > 1.5 * first.m : cls === 7 ? last.m < first.m / 1.5 : true);
    assert.ok(want, `sample ${k} (class ${cls}): ${JSON.stringify({ first, last })}`);
  }
  // each class is the time reverse of its pair: the reversed trajectory renders the frames reversed
  const img = data.images.subarray(0, 784);
  for (const cls of [0, 2, 4, 6]) {
    const t = drawTrajectory(cls, 0, 28, 14, new Rng(cls + 9));
    const r = { ...t, x0: t.x1, x1: t.x0, y0: t.y1, y1: t.y0, a0: t.a1, a1: t.a0, s0: t.s1, s1: t.s0 };
    const norm = { mean: 0, std: 1 };
    const fw = new Float32Array(8 * 784), bw = new Float32Array(8 * 784);
    renderClip(img, 28, t, 8, 28, 14, norm, fw, 0);
    renderClip(img, 28, r, 8, 28, 14, norm, bw, 0);
    for (let f = 0; f < 8; f++) {
      for (let i = 0; i < 784; i++) assert.ok(Math.abs(fw[f * 784 + i] - bw[(7 - f) * 784 + i]) < 1e-9);
    }
  }
  // rotation: clockwise on screen (y down) — the garment's top-centre pixel moves to the right
  const up = new Float32Array(2 * 784);
  const bar = new Uint8Array(784);
  for (let y = 2; y < 14; y++) bar[y * 28 + 14] = 255; // a vertical bar above the centre
  renderClip(
    bar,
    28,
    { image: 0, x0: 14, y0: 14, x1: 14, y1: 14, a0: 0, a1: Math.PI / 2, s0: 1, s1: 1 },
    2,
    28,
    28,
    {
      mean: 0,
      std: 1,
    },
    up,
    0,
  );
  const end = stats(up, 1);
  assert.ok(end.x > 16 && Math.abs(end.y - 14) < 2, `after a quarter turn clockwise: ${JSON.stringify(end)}`);
  assertThrowsMsg(
    () => movingFashionSamples(data, { seed: 1, object: 24 }),
    "24-pixel garment",
    "28-pixel canvas",
  );
});

globalThis.addEventListener("unload", () => {
  if (dir) Deno.removeSync(dir, { recursive: true });
});
