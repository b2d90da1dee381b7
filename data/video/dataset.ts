// A video dataset's split as Batcher samples, from what `--data` points at:
//   - a Fashion-MNIST directory (the bundled subset by default): moving Fashion-MNIST clips generated
//     from its images (moving_fmnist.ts; the test split from a fixed seed, so every run sees the same);
//   - a VideoMAE list directory: train.csv and val.csv or test.csv (`path label` lines, as VideoMAE's
//     --data_path), paths relative to the video root;
//   - an SSv2 labels directory: labels.json, train.json and validation.json, videos `<root>/<id>.webm`.
// The test split of a list dataset gives every (clip, crop) view when more than one is asked for
// (ViewSamples: the evaluator averages the views of each video).

import type { Samples } from "../batcher.ts";
import { firstSamples, loadFashionMnist, type Split } from "../fashion_mnist.ts";
import { type ClipOptions, videoSamples, videoViewSamples, type ViewSamples } from "./clips.ts";
import { readSsv2, readVideoList, type VideoEntry } from "./labels.ts";
import { MOTION_CLASSES, movingFashionSamples } from "./moving_fmnist.ts";

/** Seed of the moving Fashion-MNIST test clips (fixed: every run evaluates on the same clips). */
export const MOVING_TEST_SEED = 54321;

/** The kinds of video data `--data` can point at. */
export type VideoDataKind = "moving-fmnist" | "videomae-list" | "ssv2";

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** What a data directory holds: SSv2 labels, VideoMAE lists, or (otherwise) Fashion-MNIST. */
export function videoDataKind(dir: string): VideoDataKind {
  const d = dir.replace(/\/+$/, "") || "/";
  if (isFile(`${d}/labels.json`) && isFile(`${d}/train.json`)) return "ssv2";
  if (isFile(`${d}/train.csv`)) return "videomae-list";
  return "moving-fmnist";
}

/** How a split is cut into clips. */
export interface VideoSplitOptions extends ClipOptions {
  /** Classes of the model (labels must be below it). */
  classes: number;
  /** Seed of the moving Fashion-MNIST training clips. */
  seed: number;
  /** Where the listed videos are (default: the data directory). */
  root?: string;
  /** Test-time clips per video (default 1). */
  testClips?: number;
  /** Test-time crops per clip (default 1). */
  testCrops?: number;
}

/** The entries of a list dataset's split (train: train.csv / train.json; test: val/test, validation.json). */
export async function videoEntries(dir: string, split: Split, root?: string): Promise<VideoEntry[]> {
  const d = dir.replace(/\/+$/, "") || "/", r = root || d;
  if (videoDataKind(d) === "ssv2") {
    const file = `${d}/${split === "train" ? "train" : "validation"}.json`;
    return await readSsv2(file, `${d}/labels.json`, r);
  }
  const file = split === "train"
    ? `${d}/train.csv`
    : isFile(`${d}/val.csv`)
    ? `${d}/val.csv`
    : `${d}/test.csv`;
  return await readVideoList(file, r);
}

/**
 * A split of the video data in `dir` (see the top of this file) as samples: its first `limit` videos
 * (0: all). Training samples augment with the Batcher's rng; the test split of a list dataset is a
 * ViewSamples when testClips · testCrops > 1. Throws naming the data when it does not fit the options.
 */
export async function videoSplit(
  dir: string,
  split: Split,
  limit: number,
  o: VideoSplitOptions,
): Promise<Samples | ViewSamples> {
  const kind = videoDataKind(dir);
  if (kind === "moving-fmnist") {
    if (o.classes !== MOTION_CLASSES.length || o.chans !== 1) {
      throw new Error(
        `data: moving Fashion-MNIST (${dir}) has ${MOTION_CLASSES.length} motion classes and 1 channel, ` +
          `the model has ${o.classes} classes and ${o.chans} channel(s) (--classes, --chans or --model mfmnist)`,
      );
    }
    const d = firstSamples(await loadFashionMnist(dir, split), limit);
    return movingFashionSamples(d, {
      frames: o.frames,
      size: o.size,
      object: Math.round(o.size / 2),
      seed: split === "train" ? o.seed : MOVING_TEST_SEED,
    });
  }
  let entries = await videoEntries(dir, split, o.root);
  if (limit > 0) entries = entries.slice(0, limit);
  const bad = entries.find((e) => e.label >= o.classes);
  if (bad) {
    throw new Error(
      `data: ${bad.path} has label ${bad.label}, but the model has ${o.classes} classes (--classes)`,
    );
  }
  const clips = o.testClips ?? 1, crops = o.testCrops ?? 1;
  if (split === "test" && clips * crops > 1) return videoViewSamples(entries, o, clips, crops);
  return videoSamples(entries, o);
}
