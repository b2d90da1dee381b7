// Labelled videos as Batcher samples: each sample is a clip [C, T, H, W] of floats, its frames chosen
// by VideoMAE's sampling (sampling.ts) and decoded on demand (decode.ts). Spatial processing is the
// same for every frame of a clip (one crop box, one flip decision), as VideoMAE's video transforms:
//   training (the Batcher passes an rng): optional RandAugment (timm's, the same ops and magnitudes for
//     every frame, as VideoMAE's create_random_augment on the frame list), random resized crop (area
//     8–100 %, aspect 3/4–4/3) of the
//     frames resized to short side `shortSide`, then bilinear to size×size; horizontal flip with
//     `flipProb` (0 by default: SSv2's classes depend on direction);
//   evaluation: crop `crop` of `crops` squares of side `shortSide` spaced along the long side (one:
//     centred), then bilinear to size×size.
// Test-time averaging: videoViewSamples lists every (clip, crop) view of every video consecutively,
// and averageViews turns the per-view logits into per-video scores.

import { Rng } from "../../compiler/core/random.ts";
import { randAugment, type RandAugmentConfig } from "../image/augment.ts";
import type { Samples } from "../batcher.ts";
import {
  decodeFrameFiles,
  decodeVideo,
  type Frames,
  listFrameFiles,
  probeVideo,
  VideoError,
} from "./decode.ts";
import type { VideoEntry } from "./labels.ts";
import { fileVersion, LruCache } from "../cache.ts";
import {
  cropOffset,
  denseTestIndices,
  denseTrainIndices,
  ssv2TestIndices,
  ssv2TrainIndices,
  testViews,
  type View,
} from "./sampling.ts";

/** ImageNet's RGB mean and std, VideoMAE's normalisation. */
export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
/** See IMAGENET_MEAN. */
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];

/** How clips are cut from videos. */
export interface ClipOptions {
  /** Frames per clip. */
  frames: number;
  /** Output side in pixels (square clips). */
  size: number;
  /** Output channels: 3 (RGB) or 1 (luma). */
  chans: 1 | 3;
  /** Temporal sampling: SSv2's segments, or Kinetics' dense windows of `stride`. */
  sampling: "segment" | "dense";
  /** Frame stride of dense sampling (VideoMAE's sampling_rate; default 4). */
  stride?: number;
  /** Frames are resized to this short side before cropping (default: size). */
  shortSide?: number;
  /** Horizontal flip probability in training (default 0: off, as for SSv2). */
  flipProb?: number;
  /** Per-channel mean of pixels in [0, 1] (default ImageNet's; luma: their average). */
  mean?: readonly number[];
  /** Per-channel std (default ImageNet's). */
  std?: readonly number[];
  /** Fewest frames a video may have (default: frames; 1 pads short videos as VideoMAE does). */
  minFrames?: number;
  /** RandAugment in training, the same draws for every frame of a clip (VideoMAE's SSv2: rand-m7-n4-mstd0.5-inc1). */
  randAugment?: RandAugmentConfig;
}

/**
 * RandAugment with one set of random draws for all frames (each frame replays the same rng state), so
 * the clip stays consistent in time; `rng` advances as for one image.
 */
export function randAugmentFrames(f: Frames, cfg: RandAugmentConfig, rng: Rng): Frames {
  const start = rng.state;
  let end = start;
  const frames = f.frames.map((data) => {
    const r = new Rng(0);
    r.state = start;
    const out = randAugment({ width: f.width, height: f.height, channels: 3, data }, cfg, r);
    end = r.state;
    return out.data;
  });
  rng.state = end;
  return { ...f, frames };
}

/** The short-side-`s` size of a w×h frame (aspect kept, even dimensions for ffmpeg's scaler). */
export function shortSideSize(w: number, h: number, s: number): { width: number; height: number } {
  const even = (v: number) => Math.max(2, 2 * Math.round(v / 2));
  return w <= h ? { width: s, height: even((h * s) / w) } : { width: even((w * s) / h), height: s };
}

/** A crop box in pixels of the resized frames. */
export interface Box {
  /** Left edge. */
  x: number;
  /** Top edge. */
  y: number;
  /** Width. */
  w: number;
  /** Height. */
  h: number;
}

/** torchvision's RandomResizedCrop.get_params (10 tries, then the centre crop of clamped aspect). */
export function randomResizedBox(
  W: number,
  H: number,
  rng: Rng,
  scale = [0.08, 1],
  ratio = [3 / 4, 4 / 3],
): Box {
  const area = W * H;
  for (let i = 0; i < 10; i++) {
    const a = area * (scale[0] + rng.next() * (scale[1] - scale[0]));
    const r = Math.exp(Math.log(ratio[0]) + rng.next() * (Math.log(ratio[1]) - Math.log(ratio[0])));
    const w = Math.round(Math.sqrt(a * r)), h = Math.round(Math.sqrt(a / r));
    if (w > 0 && h > 0 && w <= W && h <= H) return { x: rng.int(W - w + 1), y: rng.int(H - h + 1), w, h };
  }
  const r = W / H;
  const [w, h] = r < ratio[0]
    ? [W, Math.round(W / ratio[0])]
    : r > ratio[1]
    ? [Math.round(H * ratio[1]), H]
    : [W, H];
  return { x: Math.floor((W - w) / 2), y: Math.floor((H - h) / 2), w, h };
}

/**
 * Writes frames[k] cropped to `box`, bilinear-resized to size×size (half-pixel centres, edges clamped),
 * optionally flipped, normalised, as [C, T, size, size] at out[offset].
 */
export function writeClip(
  f: Frames,
  box: Box,
  size: number,
  chans: 1 | 3,
  mean: readonly number[],
  std: readonly number[],
  flip: boolean,
  out: Float32Array,
  offset: number,
): void {
  const T = f.frames.length, W = f.width, H = f.height, plane = size * size;
  const pixel = (fr: Uint8Array, y: number, x: number, c: number) => fr[(y * W + x) * 3 + c];
  for (let t = 0; t < T; t++) {
    const fr = f.frames[t];
    for (let oy = 0; oy < size; oy++) {
      const sy = Math.min(Math.max(box.y + ((oy + 0.5) * box.h) / size - 0.5, 0), H - 1);
      const y0 = Math.floor(sy), y1 = Math.min(y0 + 1, H - 1), wy = sy - y0;
      for (let ox = 0; ox < size; ox++) {
        const ux = flip ? size - 1 - ox : ox;
        const sx = Math.min(Math.max(box.x + ((ux + 0.5) * box.w) / size - 0.5, 0), W - 1);
        const x0 = Math.floor(sx), x1 = Math.min(x0 + 1, W - 1), wx = sx - x0;
        const rgb = [0, 1, 2].map((c) => {
          const top = pixel(fr, y0, x0, c) * (1 - wx) + pixel(fr, y0, x1, c) * wx;
          const bot = pixel(fr, y1, x0, c) * (1 - wx) + pixel(fr, y1, x1, c) * wx;
          return top * (1 - wy) + bot * wy;
        });
        const o = oy * size + ox;
        if (chans === 1) {
          const v = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
          out[offset + t * plane + o] = (v / 255 - mean[0]) / std[0];
        } else {
          for (let c = 0; c < 3; c++) {
            out[offset + (c * T + t) * plane + o] = (rgb[c] / 255 - mean[c]) / std[c];
          }
        }
      }
    }
  }
}

/**
 * Decoded frames kept between samples, so that an epoch that revisits a video, or the test views of one
 * video, decode it once: a video file's frames at a short side, or one frame file of a folder at a size,
 * keyed by the file's version (cache.ts) and that geometry. Bounded to 256 MiB of frames by default (set
 * `maxBytes`; 0 turns it off), least recently used evicted first. Clips share the cached frame arrays,
 * so nothing here writes to decoded frames (randAugmentFrames makes new ones).
 */
export const clipCache: LruCache<Frames> = new LruCache<Frames>(
  256 * 2 ** 20,
  (f) => f.frames.reduce((n, fr) => n + fr.byteLength, 0),
);

/** A video's frames at short side `s`: the indices chosen from its frame count. */
function readClip(
  e: VideoEntry,
  opts: ClipOptions,
  pick: (total: number) => number[],
): Frames {
  const s = opts.shortSide ?? opts.size, min = opts.minFrames ?? opts.frames;
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(e.path);
  } catch {
    throw new VideoError(e.path, "no such file or directory (listed with label " + e.label + ")");
  }
  const tooFew = (n: number) => new VideoError(e.path, `has ${n} frames, fewer than the ${min} a clip needs`);
  if (info.isDirectory) {
    const files = listFrameFiles(e.path);
    if (files.length < min) throw tooFew(files.length);
    return readFolderClip(e.path, files, s, pick(files.length));
  }
  const key = `${fileVersion(e.path, info)}\u0000short side ${s}`;
  let all = clipCache.get(key);
  if (!all) {
    const p = probeVideo(e.path, false);
    all = decodeVideo(e.path, shortSideSize(p.width, p.height, s));
    clipCache.set(key, all);
  }
  if (all.frames.length < min) throw tooFew(all.frames.length);
  const frames = all.frames;
  return { ...all, frames: pick(frames.length).map((i) => frames[i]) };
}

/** Frames `indices` of a frame folder at short side `s`, decoding (in one call) only those not cached. */
function readFolderClip(dir: string, files: string[], s: number, indices: number[]): Frames {
  const first = probeVideo(files[0], false);
  const size = shortSideSize(first.width, first.height, s);
  const keys = new Map<number, string>();
  for (const i of indices) {
    if (keys.has(i)) continue;
    let version = `${files[i]}\u0000gone`; // a file removed since the listing: decoding names it
    try {
      version = fileVersion(files[i], Deno.statSync(files[i]));
    } catch { /* see above */ }
    keys.set(i, `${version}\u0000${size.width}×${size.height}`);
  }
  const got = new Map<number, Uint8Array>();
  const missing: number[] = [];
  for (const [i, key] of keys) {
    const hit = clipCache.get(key);
    if (hit) got.set(i, hit.frames[0]);
    else missing.push(i);
  }
  if (missing.length) {
    const decoded = decodeFrameFiles(files, missing, first, size);
    missing.forEach((i, k) => {
      const frame = decoded[k].slice(); // its own buffer: the cache counts the bytes it holds alive
      got.set(i, frame);
      clipCache.set(keys.get(i)!, { path: files[i], ...size, frames: [frame] });
    });
  }
  return { path: dir, ...size, frames: indices.map((i) => got.get(i)!) };
}

function resolved(opts: ClipOptions) {
  const { frames, size, chans } = opts;
  if (!Number.isInteger(frames) || frames < 1) {
    throw new Error(`video clips: frames must be ≥ 1, got ${frames}`);
  }
  if (!Number.isInteger(size) || size < 1) throw new Error(`video clips: size must be ≥ 1, got ${size}`);
  if (chans !== 1 && chans !== 3) throw new Error(`video clips: chans must be 1 or 3, got ${chans}`);
  const shortSide = opts.shortSide ?? size;
  if (shortSide < size) {
    throw new Error(`video clips: short side ${shortSide} is smaller than the clip size ${size}`);
  }
  const avg = (a: readonly number[]) => [a.reduce((x, y) => x + y, 0) / a.length];
  const mean = opts.mean ?? (chans === 1 ? avg(IMAGENET_MEAN) : IMAGENET_MEAN);
  const std = opts.std ?? (chans === 1 ? avg(IMAGENET_STD) : IMAGENET_STD);
  if (mean.length !== chans || std.length !== chans || !std.every((v) => v > 0)) {
    throw new Error(`video clips: mean and std need ${chans} value(s) each, std > 0`);
  }
  return { shortSide, mean, std, stride: opts.stride ?? 4, flipProb: opts.flipProb ?? 0 };
}

/** Floats per clip: chans · frames · size². */
export function clipSize(opts: ClipOptions): number {
  return opts.chans * opts.frames * opts.size * opts.size;
}

/** One evaluation view of a video (clip `view.clip` of `clips`, crop `view.crop` of `crops`). */
function writeView(
  e: VideoEntry,
  opts: ClipOptions,
  view: View,
  clips: number,
  crops: number,
  out: Float32Array,
  offset: number,
): void {
  const r = resolved(opts);
  const f = readClip(
    e,
    opts,
    (total) =>
      opts.sampling === "segment"
        ? ssv2TestIndices(total, opts.frames, view.clip, clips)
        : denseTestIndices(total, opts.frames, r.stride, view.clip, clips),
  );
  const side = Math.min(f.width, f.height);
  const box = f.width >= f.height
    ? { x: cropOffset(f.width, side, view.crop, crops), y: 0, w: side, h: side }
    : { x: 0, y: cropOffset(f.height, side, view.crop, crops), w: side, h: side };
  writeClip(f, box, opts.size, opts.chans, r.mean, r.std, false, out, offset);
}

/**
 * Videos as Batcher samples (training and validation): augmented with the Batcher's rng (random
 * temporal sample, random resized crop, flip), else the first test view (clip 0, centre crop).
 */
export function videoSamples(entries: readonly VideoEntry[], opts: ClipOptions): Samples {
  const r = resolved(opts);
  if (!entries.length) throw new Error("video clips: no videos");
  return {
    n: entries.length,
    labels: entries.map((e) => e.label),
    sampleSize: clipSize(opts),
    write(i, out, offset, rng) {
      const e = entries[i];
      if (!rng) return writeView(e, opts, { clip: 0, crop: 0 }, 1, 1, out, offset);
      let f = readClip(
        e,
        opts,
        (total) =>
          opts.sampling === "segment"
            ? ssv2TrainIndices(total, opts.frames, rng)
            : denseTrainIndices(total, opts.frames, r.stride, rng),
      );
      if (opts.randAugment) f = randAugmentFrames(f, opts.randAugment, rng);
      const box = randomResizedBox(f.width, f.height, rng);
      const flip = rng.next() < r.flipProb;
      writeClip(f, box, opts.size, opts.chans, r.mean, r.std, flip, out, offset);
    },
  };
}

/** Every test view of every video, as samples; sample j is view j % views of video ⌊j / views⌋. */
export interface ViewSamples extends Samples {
  /** Views per video (clips · crops). */
  views: number;
}

/** Test-time multi-clip × multi-crop samples (VideoMAE's --test_num_segment × --test_num_crop). */
export function videoViewSamples(
  entries: readonly VideoEntry[],
  opts: ClipOptions,
  clips: number,
  crops: number,
): ViewSamples {
  resolved(opts);
  const views = testViews(clips, crops);
  const V = views.length;
  return {
    n: entries.length * V,
    views: V,
    labels: entries.flatMap((e) => new Array(V).fill(e.label)),
    sampleSize: clipSize(opts),
    write(j, out, offset) {
      writeView(entries[Math.floor(j / V)], opts, views[j % V], clips, crops, out, offset);
    },
  };
}

/** Per-video scores: the mean of each video's `views` consecutive rows of logits [n·views, classes]. */
export function averageViews(logits: Float32Array, classes: number, views: number): Float32Array {
  const n = logits.length / (classes * views);
  if (!Number.isInteger(n)) {
    throw new Error(`averageViews: ${logits.length} logits are not whole videos of ${views} views`);
  }
  const out = new Float32Array(n * classes);
  for (let i = 0; i < n * views; i++) {
    const v = Math.floor(i / views);
    for (let c = 0; c < classes; c++) out[v * classes + c] += logits[i * classes + c] / views;
  }
  return out;
}
