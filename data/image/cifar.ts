// CIFAR-10 and CIFAR-100 in their binary layout ("cifar-10-batches-bin/", "cifar-100-binary/"), from the
// folder or straight from the .tar.gz as downloaded. A record is its label byte(s) then 3072 pixel bytes in
// planes (1024 R, 1024 G, 1024 B, rows top to bottom); we store images interleaved HWC as torchvision's
// CIFAR10 does (data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)).

import { join } from "node:path";
import type { DecodedImage } from "./decode.ts";
import { readTarGz, type TarEntry } from "./tar.ts";

/** CIFAR's image side. */
export const CIFAR_SIZE = 32;
const PIXELS = CIFAR_SIZE * CIFAR_SIZE * 3;

/** Which CIFAR. */
export type CifarKind = "cifar10" | "cifar100";
/** `train` = the training batches, `val` = the test batch (torchvision's train=False). */
export type CifarSplit = "train" | "val";

/** One split of CIFAR in memory. */
export interface CifarData {
  /** Which CIFAR. */
  kind: CifarKind;
  /** Class names (the fine ones for CIFAR-100). */
  classes: string[];
  /** Fine labels (CIFAR-100) or the labels (CIFAR-10), one per image. */
  labels: Int32Array;
  /** CIFAR-100 only: the 20 superclasses and each image's superclass. */
  coarseClasses?: string[];
  /** CIFAR-100 only: each image's superclass index. */
  coarseLabels?: Int32Array;
  /** N x 32 x 32 x 3, interleaved RGB. */
  pixels: Uint8Array;
  /** Where each image came from, "file#index" (for error messages and dumps). */
  sourceOf(i: number): string;
}

/** The files of one CIFAR layout, relative to its folder. */
export interface CifarFiles {
  /** The folder the archive unpacks to. */
  folder: string;
  /** Training batches. */
  train: string[];
  /** Test batches (the `val` split). */
  val: string[];
  /** Class names, one per line (CIFAR-100: the fine labels). */
  meta: string;
  /** CIFAR-100's coarse class names. */
  coarseMeta?: string;
  /** Label bytes before each image (CIFAR-100: coarse, fine). */
  labelBytes: number;
  /** Classes of the (fine) label. */
  classCount: number;
}

/** The files of each layout, relative to its folder. */
export const CIFAR_FILES: { cifar10: CifarFiles; cifar100: CifarFiles & { coarseMeta: string } } = {
  cifar10: {
    folder: "cifar-10-batches-bin",
    train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`),
    val: ["test_batch.bin"],
    meta: "batches.meta.txt",
    labelBytes: 1,
    classCount: 10,
  },
  cifar100: {
    folder: "cifar-100-binary",
    train: ["train.bin"],
    val: ["test.bin"],
    meta: "fine_label_names.txt",
    coarseMeta: "coarse_label_names.txt",
    labelBytes: 2,
    classCount: 100,
  },
};

/** The image `i` of a split, ready for the transforms. */
export function cifarImage(d: CifarData, i: number): DecodedImage {
  const n = CIFAR_SIZE * CIFAR_SIZE * 3;
  return { width: CIFAR_SIZE, height: CIFAR_SIZE, channels: 3, data: d.pixels.subarray(i * n, (i + 1) * n) };
}

/** Reads a file of a folder layout, or of the unpacked tar entries, with a one-line error naming it. */
type FileSource = (name: string) => Promise<Uint8Array>;

function folderSource(dir: string): FileSource {
  return async (name) => {
    const path = join(dir, name);
    try {
      return await Deno.readFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new Error(`${path}: not found (incomplete CIFAR folder?)`);
      throw new Error(`${path}: cannot read (${(e as Error).message})`);
    }
  };
}

function tarSource(archive: string, entries: TarEntry[]): FileSource {
  return (name) => {
    const e = entries.find((t) => t.name === name || t.name.endsWith(`/${name}`));
    if (!e) return Promise.reject(new Error(`${archive}: has no ${name} (not a CIFAR binary archive?)`));
    return Promise.resolve(e.data);
  };
}

function parseNames(bytes: Uint8Array, file: string, count: number): string[] {
  const names = new TextDecoder().decode(bytes).split(/\r?\n/).map((s) => s.trim()).filter((s) => s !== "");
  if (names.length !== count) {
    throw new Error(`${file}: expected ${count} class names, found ${names.length}`);
  }
  if (new Set(names).size !== count) throw new Error(`${file}: class names are not unique`);
  return names;
}

async function readCifar(
  kind: CifarKind,
  split: CifarSplit,
  src: FileSource,
  where: string,
): Promise<CifarData> {
  const spec = CIFAR_FILES[kind];
  const classes = parseNames(await src(spec.meta), `${where}/${spec.meta}`, spec.classCount);
  const coarseClasses = kind === "cifar100"
    ? parseNames(
      await src(CIFAR_FILES.cifar100.coarseMeta),
      `${where}/${CIFAR_FILES.cifar100.coarseMeta}`,
      20,
    )
    : undefined;
  const rec = spec.labelBytes + PIXELS;
  const files = split === "train" ? spec.train : spec.val;
  const blobs: Uint8Array[] = [];
  for (const f of files) {
    const b = await src(f);
    if (b.length === 0 || b.length % rec !== 0) {
      throw new Error(
        `${where}/${f}: ${b.length} bytes is not a whole number of ${rec}-byte ${kind} records`,
      );
    }
    blobs.push(b);
  }
  const n = blobs.reduce((s, b) => s + b.length / rec, 0);
  const labels = new Int32Array(n), coarseLabels = kind === "cifar100" ? new Int32Array(n) : undefined;
  const pixels = new Uint8Array(n * PIXELS);
  const starts: number[] = [];
  let i = 0;
  for (const [fi, b] of blobs.entries()) {
    starts.push(i);
    for (let r = 0; r < b.length / rec; r++, i++) {
      const o = r * rec;
      const fine = b[o + spec.labelBytes - 1];
      if (fine >= spec.classCount) {
        throw new Error(
          `${where}/${files[fi]}: record ${r} has label ${fine}, but there are ${spec.classCount} classes`,
        );
      }
      labels[i] = fine;
      if (coarseLabels) {
        if (b[o] >= 20) {
          throw new Error(`${where}/${files[fi]}: record ${r} has coarse label ${b[o]} (of 20)`);
        }
        coarseLabels[i] = b[o];
      }
      const px = o + spec.labelBytes, out = i * PIXELS, plane = CIFAR_SIZE * CIFAR_SIZE;
      for (let p = 0; p < plane; p++) {
        pixels[out + p * 3] = b[px + p];
        pixels[out + p * 3 + 1] = b[px + plane + p];
        pixels[out + p * 3 + 2] = b[px + 2 * plane + p];
      }
    }
  }
  const sourceOf = (k: number) => {
    let fi = starts.length - 1;
    while (fi > 0 && starts[fi] > k) fi--;
    return `${files[fi]}#${k - starts[fi]}`;
  };
  return { kind, classes, labels, coarseClasses, coarseLabels, pixels, sourceOf };
}

/** Reads a split from an unpacked folder (the one holding data_batch_1.bin or train.bin). */
export function readCifarFolder(kind: CifarKind, dir: string, split: CifarSplit): Promise<CifarData> {
  return readCifar(kind, split, folderSource(dir), dir);
}

/** Reads a split from the downloaded archive (cifar-10-binary.tar.gz / cifar-100-binary.tar.gz). */
export async function readCifarTarGz(
  kind: CifarKind,
  archive: string,
  split: CifarSplit,
): Promise<CifarData> {
  return readCifar(kind, split, tarSource(archive, await readTarGz(archive)), archive);
}
