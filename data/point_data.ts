// Point clouds (Point-BERT-style): clouds sampled from Fashion-MNIST images (the real 10-class task we
// have), readers for users' ModelNet40 text files and ScanObjectNN / ModelNet40 HDF5 files (via
// h5wasm), Point-BERT's scale-and-translate augmentation, and point sets as samples of data/batcher.ts.
//
// Every cloud is a Float32Array of [P, 3] xyz; a set of clouds is [n, P, 3]. Every random draw comes
// from a seeded Rng, so a cloud, a batch order or an augmentation is reproducible from its seed.

import { Rng } from "../compiler/core/random.ts";
import type { FashionMnist } from "./fashion_mnist.ts";
import { mixSeed, type Samples } from "./batcher.ts";

// ---------------------------------------------------------------------------------------------------------
// Fashion-MNIST → point clouds

/**
 * Normalises a cloud [P, 3] in place to the unit sphere (Point-BERT's pc_normalize): subtracts the
 * centroid and divides by the largest norm (a cloud whose points all coincide becomes all zeros).
 */
export function pcNormalize(points: Float32Array, offset = 0, nPoints = (points.length - offset) / 3): void {
  let cx = 0, cy = 0, cz = 0;
  for (let i = 0; i < nPoints; i++) {
    const o = offset + 3 * i;
    cx += points[o];
    cy += points[o + 1];
    cz += points[o + 2];
  }
  cx /= nPoints;
  cy /= nPoints;
  cz /= nPoints;
  let m = 0;
  for (let i = 0; i < nPoints; i++) {
    const o = offset + 3 * i;
    const x = points[o] - cx, y = points[o + 1] - cy, z = points[o + 2] - cz;
    m = Math.max(m, Math.sqrt(x * x + y * y + z * z));
  }
  const s = m > 0 ? 1 / m : 0;
  for (let i = 0; i < nPoints; i++) {
    const o = offset + 3 * i;
    points[o] = (points[o] - cx) * s;
    points[o + 1] = (points[o + 1] - cy) * s;
    points[o + 2] = (points[o + 2] - cz) * s;
  }
}

/**
 * A point cloud [nPoints, 3] from image `index` of `images` ([n, rows, cols] bytes): nPoints pixels
 * drawn with replacement, with probability proportional to intensity (uniformly if the image is all
 * zeros); each point is (col + u, row + v, intensity / 255) with u, v ~ U[0, 1) jitter inside the
 * pixel (x right, y down, in pixel units), then the cloud is normalised to the unit sphere
 * (pcNormalize). Draws exactly 3·nPoints numbers from `rng` (pixel, u, v per point), so the result
 * depends only on the rng state.
 */
export function fashionToPoints(
  images: Uint8Array,
  index: number,
  rows: number,
  cols: number,
  nPoints: number,
  rng: Rng,
  out: Float32Array = new Float32Array(nPoints * 3),
  outOffset = 0,
): Float32Array {
  const hw = rows * cols;
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) {
    throw new Error(`fashionToPoints: bad image size ${rows}×${cols}`);
  }
  if (!Number.isInteger(nPoints) || nPoints < 1) throw new Error(`fashionToPoints: bad nPoints ${nPoints}`);
  if (!Number.isInteger(index) || index < 0 || (index + 1) * hw > images.length) {
    throw new Error(
      `fashionToPoints: image ${index} is out of range (${Math.floor(images.length / hw)} images)`,
    );
  }
  if (outOffset + nPoints * 3 > out.length) {
    throw new Error(`fashionToPoints: output of ${out.length} floats cannot hold ${nPoints} points`);
  }
  const img = images.subarray(index * hw, (index + 1) * hw);
  const cdf = new Float64Array(hw);
  let total = 0;
  for (let p = 0; p < hw; p++) cdf[p] = total += img[p];
  const uniform = total === 0;
  for (let i = 0; i < nPoints; i++) {
    const u = rng.next();
    let p: number;
    if (uniform) {
      p = Math.min(hw - 1, Math.floor(u * hw));
    } else {
      // first pixel whose cumulative intensity exceeds u·total (zero pixels are never picked)
      const t = u * total;
      let lo = 0, hi = hw - 1;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (cdf[mid] > t) hi = mid;
        else lo = mid + 1;
      }
      p = lo;
    }
    const r = Math.floor(p / cols), c = p - r * cols;
    const o = outOffset + 3 * i;
    out[o] = c + rng.next();
    out[o + 1] = r + rng.next();
    out[o + 2] = img[p] / 255;
  }
  pcNormalize(out, outOffset, nPoints);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Point sets

/** A labelled set of n clouds of P points each, in memory. */
export interface PointSet {
  /** [n, P, 3] xyz. */
  clouds: Float32Array;
  /** [n] class indices. */
  labels: Int32Array | Uint8Array;
  /** Number of clouds. */
  n: number;
  /** Points per cloud. */
  P: number;
}

/** A labelled set of clouds made on demand (cloud i is the same every time it is asked for). */
export interface PointSource {
  /** Number of clouds. */
  n: number;
  /** Points per cloud. */
  P: number;
  /** [n] class indices. */
  labels: Int32Array | Uint8Array;
  /** Writes cloud i ([P, 3]) into out at offset. */
  cloudInto(i: number, out: Float32Array, offset: number): void;
}

/**
 * A lazily generated point set for a Fashion-MNIST split: cloud i is fashionToPoints of image i with
 * an Rng seeded from (seed, i), so it does not depend on the order clouds are asked for. Use this for
 * the full 60k split (an eager [60000, 1024, 3] set would be 737 MB).
 */
export function fashionPointSource(data: FashionMnist, nPoints: number, seed: number): PointSource {
  if (!Number.isInteger(nPoints) || nPoints < 1) {
    throw new Error(`fashionPointSource: bad nPoints ${nPoints}`);
  }
  if (data.images.length !== data.n * data.rows * data.cols || data.labels.length !== data.n) {
    throw new Error(
      `fashionPointSource: data sizes disagree (n=${data.n}, ${data.rows}×${data.cols}, ` +
        `${data.images.length} pixels, ${data.labels.length} labels)`,
    );
  }
  const s = seed >>> 0;
  const rng = new Rng(1);
  return {
    n: data.n,
    P: nPoints,
    labels: data.labels,
    cloudInto(i, out, offset) {
      rng.state = mixSeed(s, i);
      fashionToPoints(data.images, i, data.rows, data.cols, nPoints, rng, out, offset);
    },
  };
}

/** The clouds of fashionPointSource built eagerly into a PointSet (identical clouds). */
export function fashionPointSet(data: FashionMnist, nPoints: number, seed: number): PointSet {
  const src = fashionPointSource(data, nPoints, seed);
  const clouds = new Float32Array(data.n * nPoints * 3);
  for (let i = 0; i < data.n; i++) src.cloudInto(i, clouds, i * nPoints * 3);
  return { clouds, labels: new Int32Array(data.labels), n: data.n, P: nPoints };
}

function isSource(d: PointSet | PointSource): d is PointSource {
  return typeof (d as PointSource).cloudInto === "function";
}

// ---------------------------------------------------------------------------------------------------------
// ModelNet40 text (modelnet40_normal_resampled)

async function readText(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${path}: not found`);
    throw new Error(`${path}: cannot read (${(e as Error).message})`);
  }
}

/**
 * Reads one ModelNet40 `modelnet40_normal_resampled` shape file (lines "x,y,z,nx,ny,nz") and returns
 * the xyz as [n, 3]. With nPoints, only the first nPoints lines are parsed and used (the file must have
 * at least that many). Errors (each naming the file): empty file, a line without exactly 6
 * comma-separated columns (with its line number), a non-numeric value, too few points.
 */
export async function readModelNetTxt(path: string, nPoints?: number): Promise<Float32Array> {
  if (nPoints !== undefined && (!Number.isInteger(nPoints) || nPoints < 1)) {
    throw new Error(`${path}: bad nPoints ${nPoints}`);
  }
  const text = await readText(path);
  const lines = text.split("\n");
  // drop trailing blank lines (a final newline), keep line numbers for the rest
  let end = lines.length;
  while (end > 0 && lines[end - 1].trim() === "") end--;
  if (end === 0) throw new Error(`${path}: empty ModelNet40 point file (no points)`);
  const want = nPoints ?? end;
  if (want > end) throw new Error(`${path}: has ${end} points, fewer than the ${want} requested`);
  const out = new Float32Array(want * 3);
  for (let i = 0; i < want; i++) {
    const cols = lines[i].split(",");
    if (cols.length !== 6) {
      throw new Error(
        `${path}: line ${i + 1} has ${cols.length} columns, expected 6 (x,y,z,nx,ny,nz)` +
          (lines[i].trim() === "" ? " (blank line)" : ""),
      );
    }
    for (let c = 0; c < 6; c++) {
      const s = cols[c].trim();
      const v = s === "" ? NaN : Number(s);
      if (!Number.isFinite(v)) {
        throw new Error(`${path}: line ${i + 1}, column ${c + 1}: '${s}' is not a finite number`);
      }
      if (!Number.isFinite(Math.fround(v))) {
        throw new Error(`${path}: line ${i + 1}, column ${c + 1}: '${s}' overflows a 32-bit float`);
      }
      if (c < 3) out[3 * i + c] = v;
    }
  }
  return out;
}

export interface ModelNetItem {
  /** e.g. "airplane_0001". */
  name: string;
  /** e.g. "<dir>/airplane/airplane_0001.txt". */
  path: string;
  label: number;
}

export interface ModelNetIndex {
  /** Class names from modelnet40_shape_names.txt, indexed by label. */
  classes: string[];
  items: ModelNetItem[];
}

/** Non-blank lines of a text file, trimmed, with their 1-based line numbers. */
function listLines(text: string): { s: string; line: number }[] {
  const out: { s: string; line: number }[] = [];
  text.split("\n").forEach((l, i) => {
    const s = l.trim();
    if (s !== "") out.push({ s, line: i + 1 });
  });
  return out;
}

/**
 * Reads the index of a `modelnet40_normal_resampled` directory: class names from
 * modelnet40_shape_names.txt and the shapes of modelnet40_{train,test}.txt ("airplane_0001" →
 * `<dir>/airplane/airplane_0001.txt`, label = the class's line in shape_names). Does not open the
 * shape files. Errors name the file: missing, empty, duplicate class, a name not "<class>_<digits>",
 * a class not in shape_names.
 */
export async function readModelNetIndex(dir: string, split: "train" | "test"): Promise<ModelNetIndex> {
  if (split !== "train" && split !== "test") throw new Error(`unknown split '${split}' (train or test)`);
  const d = dir.replace(/\/+$/, "") || "/";
  const namesPath = `${d}/modelnet40_shape_names.txt`;
  const classes = listLines(await readText(namesPath)).map((x) => x.s);
  if (classes.length === 0) throw new Error(`${namesPath}: empty (no class names)`);
  const labelOf = new Map<string, number>();
  classes.forEach((c, i) => {
    if (labelOf.has(c)) throw new Error(`${namesPath}: class '${c}' is listed twice`);
    labelOf.set(c, i);
  });
  const splitPath = `${d}/modelnet40_${split}.txt`;
  const entries = listLines(await readText(splitPath));
  if (entries.length === 0) throw new Error(`${splitPath}: empty (no shapes)`);
  const items = entries.map(({ s, line }) => {
    const m = /^(.+)_(\d+)$/.exec(s);
    if (!m) throw new Error(`${splitPath}: line ${line}: '${s}' is not a shape name like 'airplane_0001'`);
    const label = labelOf.get(m[1]);
    if (label === undefined) {
      throw new Error(`${splitPath}: line ${line}: class '${m[1]}' of '${s}' is not in ${namesPath}`);
    }
    // a class name is a directory under `dir`: one that is not a plain name ('../../etc', 'a/b') would
    // make the shape path escape it
    if (!/^[\w.+-]+$/.test(m[1]) || m[1] === "." || m[1] === "..") {
      throw new Error(
        `${splitPath}: line ${line}: class '${m[1]}' of '${s}' is not a plain directory name ` +
          `(letters, digits, _ . + -): it would make the shape path escape ${d}`,
      );
    }
    return { name: s, path: `${d}/${m[1]}/${s}.txt`, label };
  });
  return { classes, items };
}

/** Loads a whole ModelNet40 split (the first nPoints points of each shape) as a PointSet. */
export async function loadModelNet(
  dir: string,
  split: "train" | "test",
  nPoints: number,
): Promise<PointSet & { classes: string[] }> {
  const { classes, items } = await readModelNetIndex(dir, split);
  const clouds = new Float32Array(items.length * nPoints * 3);
  const labels = new Int32Array(items.length);
  for (let i = 0; i < items.length; i++) {
    clouds.set(await readModelNetTxt(items[i].path, nPoints), i * nPoints * 3);
    labels[i] = items[i].label;
  }
  return { clouds, labels, n: items.length, P: nPoints, classes };
}

// ---------------------------------------------------------------------------------------------------------
// HDF5 (ScanObjectNN, ModelNet40 ply_data_*.h5) via h5wasm

type H5wasm = typeof import("h5wasm").default;
type H5Module = Awaited<H5wasm["ready"]>;
let h5Loaded: Promise<{ h5: H5wasm; M: H5Module }> | undefined;

/**
 * h5wasm, loaded on first use (its wasm is a few MB, so importing this module does not load it), with
 * HDF5's error stack turned into thrown errors instead of stderr output.
 */
export function loadH5wasm(): Promise<{ h5: H5wasm; M: H5Module }> {
  h5Loaded ??= (async () => {
    // Catch the wasm instance's exports on the way (h5wasm does not expose its stack functions), for
    // h5Cleanup below; the wrapper is in place only while h5wasm instantiates.
    const wasm = WebAssembly as unknown as { instantiate: (...a: unknown[]) => Promise<unknown> };
    const orig = wasm.instantiate;
    wasm.instantiate = async (...a: unknown[]) => {
      const r = await orig.apply(WebAssembly, a) as WebAssembly.Instance | { instance: WebAssembly.Instance };
      const inst = r instanceof WebAssembly.Instance ? r : r.instance;
      if (typeof inst.exports.emscripten_stack_get_current === "function") h5Exports = inst.exports;
      return r;
    };
    try {
      const h5 = (await import("h5wasm")).default;
      const M = await h5.ready;
      M.activate_throwing_error_handler();
      return { h5, M };
    } finally {
      wasm.instantiate = orig;
    }
  })();
  return h5Loaded;
}

let h5Exports: WebAssembly.Exports | undefined;

/**
 * HDF5 errors reach JS as exceptions thrown from inside its C error handler, which skips the C code
 * after the throw: the wasm stack pointer is never restored and the handler's tmpfile() stream stays
 * open. After ~2,256 failed opens the stack had run into the heap and every later call, valid files
 * included, failed with "memory access out of bounds". Call this before a synchronous run of h5wasm
 * calls; the function it returns (call it in a finally, with no wasm frame active) closes the streams
 * opened since and puts the stack pointer back.
 */
function h5Cleanup(M: H5Module): () => void {
  const fs = M.FS as unknown as { streams: ({ fd: number } | null)[]; close(s: unknown): void };
  const open = new Set(fs.streams.flatMap((s, fd) => s ? [fd] : []));
  const stackGet = h5Exports?.emscripten_stack_get_current as (() => number) | undefined;
  const stackSet = h5Exports?._emscripten_stack_restore as ((sp: number) => void) | undefined;
  const sp = stackGet?.();
  return () => {
    fs.streams.forEach((s, fd) => {
      if (s && !open.has(fd)) {
        try {
          fs.close(s);
        } catch { /* already closed */ }
      }
    });
    if (sp !== undefined && stackSet && stackGet?.() !== sp) stackSet(sp);
  };
}

/** The innermost message of an HDF5 error stack ("truncated file: eof = …"), or the whole message. */
function h5Reason(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const lines = [...msg.matchAll(/#\d+: .* in [\w]+\(\): (.*)$/gm)];
  return lines.length ? lines[lines.length - 1][1].trim() : msg.trim().split("\n")[0];
}

let h5Counter = 0;

/** Most elements read from one HDF5 dataset (ScanObjectNN's largest file holds ~86M). */
export const MAX_H5_ELEMENTS = 1 << 28;

export interface PointH5 {
  /** [n, P, 3] xyz (the first 3 columns of `data`). */
  points: Float32Array;
  /** [n]. */
  labels: Int32Array;
  n: number;
  P: number;
}

/**
 * Reads a point-cloud HDF5 file (ScanObjectNN, ModelNet40's ply_data_*.h5): dataset `data` [n, P, C]
 * with C ≥ 3 (the first 3 columns are kept, so xyz+normals works) and `label` [n] or [n, 1] of
 * integers. The file is read with Deno.readFile and mounted in h5wasm's in-memory FS. Errors (each
 * naming the file): not found, not HDF5 or truncated, missing dataset, wrong point dims, non-numeric
 * data, label count mismatch, non-integer or negative labels.
 */
export async function readPointH5(path: string): Promise<PointH5> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${path}: not found`);
    throw new Error(`${path}: cannot read (${(e as Error).message})`);
  }
  const { h5, M } = await loadH5wasm();
  const memPath = `/point_h5_${++h5Counter}.h5`;
  const cleanup = h5Cleanup(M); // (everything from here to the finally runs synchronously)
  M.FS.writeFile(memPath, bytes);
  let f: InstanceType<H5wasm["File"]> | undefined;
  try {
    try {
      f = new h5.File(memPath, "r");
      if (f.file_id < 0n) throw new Error("cannot open");
    } catch (e) {
      const why = h5Reason(e);
      const kind = /truncat/i.test(why) ? "truncated HDF5 file" : "not an HDF5 file or a damaged one";
      throw new Error(`${path}: ${kind} (${bytes.length} bytes; HDF5: ${why})`);
    }
    const file = f;
    const get = (name: string) => {
      let obj;
      try {
        obj = file.get(name);
      } catch (e) {
        throw new Error(`${path}: cannot read dataset '${name}' (HDF5: ${h5Reason(e)})`);
      }
      if (!(obj instanceof h5.Dataset)) {
        let keys: string[] = [];
        try {
          keys = file.keys();
        } catch { /* keep the message without them */ }
        throw new Error(
          `${path}: missing dataset '${name}' (${obj ? "it is not a dataset; " : ""}the file has: ` +
            `${keys.map((k) => `'${k}'`).join(", ") || "nothing"})`,
        );
      }
      return obj;
    };
    const data = get("data"), label = get("label");
    const shape = data.shape ?? [];
    if (shape.length !== 3 || shape[2] < 3) {
      throw new Error(
        `${path}: wrong point dims: dataset 'data' has shape [${shape.join(", ")}], expected [n, P, 3] ` +
          `(or [n, P, C] with C ≥ 3)`,
      );
    }
    const [n, P, C] = shape;
    const lshape = label.shape ?? [];
    if (!(lshape.length === 1 || (lshape.length === 2 && lshape[1] === 1))) {
      throw new Error(`${path}: dataset 'label' has shape [${lshape.join(", ")}], expected [n] or [n, 1]`);
    }
    if (lshape[0] !== n) {
      throw new Error(
        `${path}: label count mismatch: ${n} clouds in 'data' but ${lshape[0]} labels in 'label'`,
      );
    }
    const numeric = (v: unknown): v is ArrayLike<number | bigint> =>
      ArrayBuffer.isView(v) && !(v instanceof DataView);
    // Bound what reading allocates by what the file can hold: uncompressed data is in the file
    // (elements × item size ≤ its bytes); compressed data may be larger, up to MAX_H5_ELEMENTS.
    const filtered = (ds: typeof data) => {
      try {
        return (ds.filters ?? []).length > 0;
      } catch {
        return true;
      }
    };
    for (const [ds, name, count] of [[data, "data", n * P * C], [label, "label", n]] as const) {
      const item = ds.metadata?.size ?? 1;
      if (count > MAX_H5_ELEMENTS || (!filtered(ds) && count * item > bytes.length)) {
        throw new Error(
          `${path}: dataset '${name}' claims ${count} elements of ${item} bytes, more than the ` +
            `${bytes.length}-byte file can hold: corrupt`,
        );
      }
    }
    const dv = data.value, lv = label.value;
    if (!numeric(dv) || dv.length !== n * P * C) {
      throw new Error(`${path}: dataset 'data' is not numeric (dtype ${JSON.stringify(data.dtype)})`);
    }
    if (!numeric(lv) || lv.length !== n) {
      throw new Error(`${path}: dataset 'label' is not numeric (dtype ${JSON.stringify(label.dtype)})`);
    }
    const points = new Float32Array(n * P * 3);
    for (let i = 0, m = n * P; i < m; i++) {
      for (let c = 0; c < 3; c++) {
        const v = Number(dv[i * C + c]);
        // NaN/Inf coordinates (or values past f32's range) would poison every batch they land in
        if (!Number.isFinite(v) || !Number.isFinite(Math.fround(v))) {
          throw new Error(
            `${path}: dataset 'data' holds ${v} at cloud ${Math.floor(i / P)}, point ${i % P}, ` +
              `column ${c} (coordinates must be finite f32 values)`,
          );
        }
        points[3 * i + c] = v;
      }
    }
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const v = Number(lv[i]);
      if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
        throw new Error(`${path}: label ${lv[i]} at index ${i} is not a non-negative integer`);
      }
      labels[i] = v;
    }
    return { points, labels, n, P };
  } finally {
    try {
      f?.close();
    } catch { /* a file that failed to open has nothing to close */ }
    try {
      M.FS.unlink(memPath);
    } finally {
      cleanup();
    }
  }
}

/** A PointSet of an HDF5 file's clouds (see readPointH5). */
export async function loadPointH5(path: string): Promise<PointSet> {
  const h = await readPointH5(path);
  return { clouds: h.points, labels: h.labels, n: h.n, P: h.P };
}

// ---------------------------------------------------------------------------------------------------------
// Augmentation

/** Point-BERT's PointcloudScaleAndTranslate ranges. */
export const SCALE_LOW = 2 / 3, SCALE_HIGH = 3 / 2, TRANSLATE_RANGE = 0.2;

/**
 * Point-BERT's PointcloudScaleAndTranslate, in place: for each cloud of `points` ([nClouds, P, 3];
 * one cloud by default), scales each axis by U(2/3, 3/2) and then translates it by U(−0.2, 0.2). Per
 * cloud draws 6 numbers from rng (3 scales, then 3 shifts). Returns points.
 */
export function scaleAndTranslate(
  points: Float32Array,
  rng: Rng,
  P: number = points.length / 3,
): Float32Array {
  if (!Number.isInteger(P) || P < 1 || points.length % (3 * P) !== 0) {
    throw new Error(`scaleAndTranslate: ${points.length} floats is not a whole number of [${P}, 3] clouds`);
  }
  const nClouds = points.length / (3 * P);
  for (let b = 0; b < nClouds; b++) {
    const s0 = SCALE_LOW + (SCALE_HIGH - SCALE_LOW) * rng.next();
    const s1 = SCALE_LOW + (SCALE_HIGH - SCALE_LOW) * rng.next();
    const s2 = SCALE_LOW + (SCALE_HIGH - SCALE_LOW) * rng.next();
    const t0 = TRANSLATE_RANGE * (2 * rng.next() - 1);
    const t1 = TRANSLATE_RANGE * (2 * rng.next() - 1);
    const t2 = TRANSLATE_RANGE * (2 * rng.next() - 1);
    for (let i = 0, o = b * 3 * P; i < P; i++, o += 3) {
      points[o] = points[o] * s0 + t0;
      points[o + 1] = points[o + 1] * s1 + t1;
      points[o + 2] = points[o + 2] * s2 + t2;
    }
  }
  return points;
}

// ---------------------------------------------------------------------------------------------------------
// Samples for the Batcher

/**
 * A point set (eager or lazy) as Batcher samples ([P, 3] floats each), augmented (when the Batcher
 * asks) with scaleAndTranslate: per cloud 3 scales, then 3 shifts.
 */
export function pointSamples(data: PointSet | PointSource): Samples {
  const { n, P } = data;
  if (!Number.isInteger(P) || P < 1) throw new Error(`pointSamples: bad points per cloud P=${P}`);
  if (data.labels.length !== n || (!isSource(data) && data.clouds.length !== n * P * 3)) {
    throw new Error(
      `pointSamples: data sizes disagree (n=${n}, P=${P}, ` +
        `${isSource(data) ? "lazy clouds" : `${data.clouds.length} floats`}, ${data.labels.length} labels)`,
    );
  }
  const cl = P * 3;
  return {
    n,
    labels: data.labels,
    sampleSize: cl,
    write(i, out, offset, rng) {
      if (isSource(data)) data.cloudInto(i, out, offset);
      else out.set(data.clouds.subarray(i * cl, (i + 1) * cl), offset);
      if (rng) scaleAndTranslate(out.subarray(offset, offset + cl), rng, P);
    },
  };
}
