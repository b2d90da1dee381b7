// Point-cloud datasets on disk, as Point-BERT's fine-tuning reads them, and its resampling:
//
// - ScanObjectNN h5 (`main_split/training_objectdataset.h5` = objectbg, `main_split_nobg/...` =
//   objectonly, `training_objectdataset_augmentedrot_scale75.h5` = hardest; test_* alongside);
// - ModelNet40's h5 release (ply_data_train*.h5 / ply_data_test*.h5, listed in train_files.txt);
// - ModelNet40's `modelnet40_normal_resampled` text release (modelnet40_shape_names.txt, ...).
//
// Resampling follows the reference's runner (LM4VisualEncoding tools/runner_BERT_finetune.py): in
// training the cloud's points are shuffled (the dataset's __getitem__), farthest point sampling picks
// `pool` of them (1200 for 1024 points), a random `points` of those are kept and scale-and-translate
// is applied; the test split takes FPS(cloud, points) from the first point; voting averages the logits
// of V views, each a random `points` of FPS(cloud, pool) with scale-and-translate.

import { Rng } from "../compiler/core/random.ts";
import { mixSeed, type Samples } from "./batcher.ts";
import { loadModelNet, loadPointH5, pcNormalize, type PointSet, scaleAndTranslate } from "./point_data.ts";

/** The point-cloud file formats `--data` may point at. */
export type PointFileKind = "scanobjectnn" | "modelnet40-h5" | "modelnet40-txt";

/** Where a point-cloud dataset's splits are. */
export interface PointFiles {
  /** Its format. */
  kind: PointFileKind;
  /** What it is, for messages ("ScanObjectNN hardest", "ModelNet40 (h5)"). */
  what: string;
  /** The directory (txt release) or the h5 files of each split. */
  train: string[];
  /** The test split's files (as `train`). */
  test: string[];
  /** Number of classes (ScanObjectNN 15, ModelNet40 40). */
  classes: number;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** ScanObjectNN's variant of a training file: hardest (augmentedrot_scale75), objectonly (a *nobg dir), objectbg. */
function scanVariant(file: string): string {
  if (/augmentedrot_scale75/.test(file)) return "hardest";
  return /nobg/.test(file) ? "objectonly" : "objectbg";
}

function scanFiles(train: string): PointFiles {
  const slash = train.lastIndexOf("/");
  const test = train.slice(0, slash + 1) + train.slice(slash + 1).replace(/^training_/, "test_");
  return {
    kind: "scanobjectnn",
    what: `ScanObjectNN ${scanVariant(train)}`,
    train: [train],
    test: [test],
    classes: 15,
  };
}

/** ModelNet40 h5 files of a split: the list file's names (taken relative to `dir`), else ply_data_<split>*.h5. */
async function modelNetH5Split(dir: string, names: string[], split: "train" | "test"): Promise<string[]> {
  const list = `${dir}/${split}_files.txt`;
  if (await exists(list)) {
    const lines = (await Deno.readTextFile(list)).split("\n").map((l) => l.trim()).filter((l) => l);
    if (!lines.length) throw new Error(`${list}: empty (no h5 files listed)`);
    return lines.map((l) => `${dir}/${l.slice(l.lastIndexOf("/") + 1)}`);
  }
  const own = names.filter((n) => new RegExp(`^ply_data_${split}\\d*\\.h5$`).test(n)).sort();
  if (!own.length) throw new Error(`${dir}: no ${split}_files.txt and no ply_data_${split}*.h5 files`);
  return own.map((n) => `${dir}/${n}`);
}

/**
 * The point-cloud dataset at `path`, by its files; undefined when it holds none (e.g. a Fashion-MNIST
 * directory). `path` is a directory, or a ScanObjectNN training file (which picks the variant when a
 * directory holds several, as main_split does: objectbg and hardest). Errors name the path.
 */
export async function detectPointFiles(path: string): Promise<PointFiles | undefined> {
  const base = path.slice(path.lastIndexOf("/") + 1);
  if (/\.h5$/.test(base)) {
    if (!/^training_objectdataset.*\.h5$/.test(base)) {
      throw new Error(`${path}: name a ScanObjectNN training_objectdataset*.h5 file or a dataset directory`);
    }
    if (!(await exists(path))) throw new Error(`${path}: not found`);
    return scanFiles(path);
  }
  let names: string[];
  try {
    names = [];
    for await (const e of Deno.readDir(path)) names.push(e.name);
  } catch {
    return undefined;
  }
  if (names.includes("modelnet40_shape_names.txt")) {
    return { kind: "modelnet40-txt", what: "ModelNet40 (txt)", train: [path], test: [path], classes: 40 };
  }
  if (names.includes("train_files.txt") || names.some((n) => /^ply_data_train\d*\.h5$/.test(n))) {
    return {
      kind: "modelnet40-h5",
      what: "ModelNet40 (h5)",
      train: await modelNetH5Split(path, names, "train"),
      test: await modelNetH5Split(path, names, "test"),
      classes: 40,
    };
  }
  const scans = names.filter((n) => /^training_objectdataset.*\.h5$/.test(n)).sort();
  if (scans.length > 1) {
    throw new Error(
      `${path}: holds several ScanObjectNN variants (${scans.join(", ")}); name one, e.g. ` +
        `--data ${path}/${scans[0]}`,
    );
  }
  return scans.length ? scanFiles(`${path}/${scans[0]}`) : undefined;
}

/** Whether `path` looks like a point-cloud dataset of detectPointFiles (a quick synchronous check, for titles). */
export function hasPointFiles(path: string): boolean {
  if (/\.h5$/.test(path)) return true;
  try {
    for (const e of Deno.readDirSync(path)) {
      if (
        /^(modelnet40_shape_names\.txt|train_files\.txt|ply_data_train\d*\.h5|training_objectdataset.*\.h5)$/
          .test(e.name)
      ) {
        return true;
      }
    }
  } catch {
    // not a directory: not point files
  }
  return false;
}

/** Points kept from each file before resampling: the reference's point_all (1200 for 1024 points). */
export function poolPoints(points: number): number {
  return points <= 4096 ? Math.round(points * 1200 / 1024) : points;
}

/**
 * Loads a split as one PointSet: h5 files back to back (every file must have the same points per
 * cloud), or the txt release's first `txtPoints` points of each shape, normalised (pc_normalize) as
 * the reference's ModelNet dataset does.
 */
export async function loadPointFiles(
  files: PointFiles,
  split: "train" | "test",
  txtPoints: number,
): Promise<PointSet> {
  const paths = split === "train" ? files.train : files.test;
  if (files.kind === "modelnet40-txt") {
    const s = await loadModelNet(paths[0], split, txtPoints);
    for (let i = 0; i < s.n; i++) pcNormalize(s.clouds, i * s.P * 3, s.P);
    return s;
  }
  const sets: PointSet[] = [];
  for (const p of paths) sets.push(await loadPointH5(p));
  if (sets.length === 1) return sets[0];
  const P = sets[0].P;
  const bad = sets.findIndex((s) => s.P !== P);
  if (bad >= 0) throw new Error(`${paths[bad]}: ${sets[bad].P} points per cloud, ${paths[0]} has ${P}`);
  const n = sets.reduce((a, s) => a + s.n, 0);
  const clouds = new Float32Array(n * P * 3), labels = new Int32Array(n);
  let at = 0;
  for (const s of sets) {
    clouds.set(s.clouds, at * P * 3);
    labels.set(s.labels, at);
    at += s.n;
  }
  return { clouds, labels, n, P };
}

/**
 * Farthest point sampling as pointnet2's furthest_point_sample: `m` indices into `cloud` ([P, 3] at
 * `offset`, visited in the order `order`, default 0..P−1), the first being order[0]; each next one the
 * point farthest (squared distance) from those picked, the first such on ties. As the CUDA kernel
 * (sampling_gpu.cu), points within √1e-3 of the origin are never picked after the first (and when
 * no point is left, the first visited one repeats).
 */
export function farthestPoints(
  cloud: Float32Array,
  P: number,
  m: number,
  offset = 0,
  order?: Int32Array,
): Int32Array {
  if (m > P) throw new Error(`farthestPoints: ${m} of ${P} points`);
  const idx = (k: number) => order ? order[k] : k;
  const dist = new Float32Array(P).fill(1e10);
  const out = new Int32Array(m);
  let last = 0;
  for (let j = 0; j < m; j++) {
    out[j] = idx(last);
    const o = offset + 3 * idx(last);
    const x = cloud[o], y = cloud[o + 1], z = cloud[o + 2];
    let best = -1, bestK = 0;
    for (let k = 0; k < P; k++) {
      const q = offset + 3 * idx(k);
      if (cloud[q] * cloud[q] + cloud[q + 1] * cloud[q + 1] + cloud[q + 2] * cloud[q + 2] <= 1e-3) continue;
      const dx = cloud[q] - x, dy = cloud[q + 1] - y, dz = cloud[q + 2] - z;
      const d = Math.min(dist[k], dx * dx + dy * dy + dz * dz);
      dist[k] = d;
      if (d > best) {
        best = d;
        bestK = k;
      }
    }
    last = bestK;
  }
  return out;
}

/** `m` distinct entries of `from`, in random order (numpy's choice without replacement, in law). */
function choose(from: Int32Array, m: number, rng: Rng): Int32Array {
  const a = from.slice();
  for (let i = 0; i < m; i++) {
    const j = i + Math.floor(rng.next() * (a.length - i));
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a.subarray(0, m);
}

function gather(set: PointSet, c: number, idx: Int32Array, out: Float32Array, offset: number): void {
  const base = c * set.P * 3;
  for (let i = 0; i < idx.length; i++) {
    const s = base + 3 * idx[i], d = offset + 3 * i;
    out[d] = set.clouds[s];
    out[d + 1] = set.clouds[s + 1];
    out[d + 2] = set.clouds[s + 2];
  }
}

/** Options of resampledPointSamples. */
export interface ResampleOptions {
  /** Points per sample (the model's). */
  points: number;
  /** The training split (random resampling + augmentation) or the test split. */
  train: boolean;
  /** Test-time votes: each cloud becomes this many views whose logits are averaged (default 1: none). */
  votes?: number;
  /** Seed of the votes' draws. */
  seed?: number;
}

/**
 * A point set as Batcher samples of `points` points, resampled as the reference does (see the file
 * comment). Training draws from the Batcher's rng per sample: P shuffle draws, `points` choices, then
 * scale-and-translate's 6. Test clouds are computed once and kept. With votes V > 1 the samples are
 * n·V views, cloud-major (`views` = V, what train/scores.ts averages).
 */
export function resampledPointSamples(set: PointSet, opts: ResampleOptions): Samples & { views?: number } {
  const { P } = set, M = opts.points, V = opts.votes ?? 1;
  if (P < M) throw new Error(`data: clouds have ${P} points, fewer than the model's ${M} (--points)`);
  const pool = Math.min(poolPoints(M), P);
  const cl = M * 3;
  const cache = new Map<number, Int32Array>();
  const fpsOf = (c: number, m: number) => {
    let f = cache.get(c);
    if (!f) cache.set(c, f = farthestPoints(set.clouds, P, m, c * P * 3));
    return f;
  };
  if (opts.train) {
    return {
      n: set.n,
      labels: set.labels,
      sampleSize: cl,
      write(i, out, offset, rng) {
        rng ??= new Rng(mixSeed(opts.seed ?? 0, i));
        const order = choose(Int32Array.from({ length: P }, (_, k) => k), P, rng);
        const picked = choose(farthestPoints(set.clouds, P, pool, i * P * 3, order), M, rng);
        gather(set, i, picked, out, offset);
        scaleAndTranslate(out.subarray(offset, offset + cl), rng, M);
      },
    };
  }
  if (V <= 1) {
    return {
      n: set.n,
      labels: set.labels,
      sampleSize: cl,
      write: (i, out, offset) => gather(set, i, fpsOf(i, M), out, offset),
    };
  }
  const labels = new Int32Array(set.n * V);
  for (let i = 0; i < set.n; i++) labels.fill(set.labels[i], i * V, (i + 1) * V);
  return {
    n: set.n * V,
    labels,
    sampleSize: cl,
    views: V,
    write(j, out, offset) {
      const c = Math.floor(j / V);
      const rng = new Rng(mixSeed(opts.seed ?? 0, j));
      gather(set, c, choose(fpsOf(c, pool), M, rng), out, offset);
      scaleAndTranslate(out.subarray(offset, offset + cl), rng, M);
    },
  };
}
