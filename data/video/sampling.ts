// Which frames of a video make a clip, as VideoMAE's loaders choose them (ssv2.py / kinetics.py,
// loadvideo_decord and the test-time views of __getitem__). Pure index arithmetic: the decoders
// (decode.ts) read the frames, clips.ts crops them.

import type { Rng } from "../../compiler/core/random.ts";

/** A test-time view: temporal clip `clip` of `clips`, spatial crop `crop` of `crops`. */
export interface View {
  /** Temporal clip index (VideoMAE's chunk_nb). */
  clip: number;
  /** Spatial crop index (VideoMAE's split_nb). */
  crop: number;
}

function checkCount(what: string, n: number, min = 1): void {
  if (!Number.isInteger(n) || n < min) {
    throw new Error(`video sampling: ${what} must be an integer ≥ ${min}, got ${n}`);
  }
}

/**
 * SSv2 training (segment-based): the video's `total` frames split into `frames` equal segments, one
 * random frame from each; shorter videos take sorted random frames, or frame 0 repeated.
 */
export function ssv2TrainIndices(total: number, frames: number, rng: Rng): number[] {
  checkCount("frame count", total);
  checkCount("frames per clip", frames);
  const avg = Math.floor(total / frames);
  if (avg > 0) return Array.from({ length: frames }, (_, i) => i * avg + rng.int(avg));
  if (total > frames) return Array.from({ length: frames }, () => rng.int(total)).sort((a, b) => a - b);
  return new Array(frames).fill(0);
}

/**
 * SSv2 evaluation: segment centres and segment starts, sorted (`frames`·max(2, clips) indices after
 * padding with the last); clip k takes every other index starting at k (VideoMAE: buffer[k::2]).
 */
export function ssv2TestIndices(total: number, frames: number, clip: number, clips: number): number[] {
  checkCount("frame count", total);
  checkCount("frames per clip", frames);
  checkCount("test clips", clips);
  if (!Number.isInteger(clip) || clip < 0 || clip >= clips) {
    throw new Error(`video sampling: clip ${clip} of ${clips}`);
  }
  const tick = total / frames;
  const all: number[] = [];
  for (let x = 0; x < frames; x++) all.push(Math.floor(tick / 2 + tick * x));
  for (let x = 0; x < frames; x++) all.push(Math.floor(tick * x));
  while (all.length < frames * clips) all.push(all[all.length - 1]);
  all.sort((a, b) => a - b);
  const out: number[] = [];
  for (let i = clip; i < all.length && out.length < frames; i += 2) out.push(all[i]);
  while (out.length < frames) out.push(out[out.length - 1]);
  return out;
}

/** NumPy's linspace(start, stop, num) (endpoint included). */
function linspace(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  return Array.from({ length: num }, (_, i) => start + i * step);
}

/**
 * Kinetics training (dense sampling): `frames` frames `stride` apart from a random start (VideoMAE's
 * clip_len and frame_sample_rate, one segment); a video shorter than the span is spread over what it has
 * and padded with its last frame.
 */
export function denseTrainIndices(total: number, frames: number, stride: number, rng: Rng): number[] {
  checkCount("frame count", total);
  checkCount("frames per clip", frames);
  checkCount("sampling stride", stride);
  const span = frames * stride;
  if (total <= span) {
    const idx = linspace(0, total, Math.floor(total / stride));
    while (idx.length < frames) idx.push(total);
    return idx.slice(0, frames).map((v) => Math.min(Math.max(Math.trunc(v), 0), total - 1));
  }
  const end = span + rng.int(total - span); // numpy randint(span, total)
  const start = end - span;
  return linspace(start, end, frames).map((v) => Math.min(Math.max(Math.trunc(v), start), end - 1));
}

/**
 * Kinetics evaluation: every `stride`-th frame (padded with the last up to `frames`), and clip k of
 * `clips` is the window of `frames` starting at int(k · max((n − frames)/(clips − 1), 0)).
 */
export function denseTestIndices(
  total: number,
  frames: number,
  stride: number,
  clip: number,
  clips: number,
): number[] {
  checkCount("frame count", total);
  checkCount("frames per clip", frames);
  checkCount("sampling stride", stride);
  checkCount("test clips", clips);
  if (!Number.isInteger(clip) || clip < 0 || clip >= clips) {
    throw new Error(`video sampling: clip ${clip} of ${clips}`);
  }
  const all: number[] = [];
  for (let i = 0; i < total; i += stride) all.push(i);
  while (all.length < frames) all.push(all[all.length - 1]);
  const step = clips > 1 ? Math.max((all.length - frames) / (clips - 1), 0) : 0;
  const start = Math.trunc(clip * step);
  return all.slice(start, start + frames);
}

/** Every view of `clips` temporal clips × `crops` spatial crops, clip-major (VideoMAE's test order per video). */
export function testViews(clips: number, crops: number): View[] {
  checkCount("test clips", clips);
  checkCount("test crops", crops);
  const out: View[] = [];
  for (let clip = 0; clip < clips; clip++) for (let crop = 0; crop < crops; crop++) out.push({ clip, crop });
  return out;
}

/**
 * Offset of spatial crop `crop` of `crops` along an axis of `length` for a window of `size`: evenly
 * spaced from one end to the other (VideoMAE: int(crop · (length − size)/(crops − 1))); one crop is centred.
 */
export function cropOffset(length: number, size: number, crop: number, crops: number): number {
  if (size > length) throw new Error(`video sampling: a crop of ${size} does not fit in ${length}`);
  if (crops === 1) return Math.floor((length - size) / 2);
  return Math.trunc((crop * (length - size)) / (crops - 1));
}
