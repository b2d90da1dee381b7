// Which dataset format a `--data DIR` holds, decided from its contents (never from flags).

import { join } from "node:path";
import { CIFAR_FILES, type CifarKind } from "./cifar.ts";

/** A detected dataset: its format and the path its reader takes. */
export type DetectedDataset =
  | { format: "imagefolder"; dir: string }
  | { format: CifarKind; dir: string }
  | { format: CifarKind; archive: string }
  | { format: "idx"; dir: string };

const ARCHIVES: Record<CifarKind, string> = {
  cifar10: "cifar-10-binary.tar.gz",
  cifar100: "cifar-100-binary.tar.gz",
};

async function entries(dir: string): Promise<Map<string, Deno.DirEntry>> {
  const m = new Map<string, Deno.DirEntry>();
  for await (const e of Deno.readDir(dir)) m.set(e.name, e);
  return m;
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Detects ImageFolder (train/ or val/ with class folders), CIFAR-10/100 binary (the batch folder, a parent
 * holding it, or the .tar.gz itself or beside), or Fashion-MNIST/MNIST IDX files. One line of error otherwise.
 */
export async function detectImageDataset(path: string): Promise<DetectedDataset> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    throw new Error(`${path}: not found`);
  }
  if (info.isFile) {
    // The archive as downloaded, or renamed but still saying which CIFAR it is (checked 100 first).
    const base = path.slice(path.lastIndexOf("/") + 1).toLowerCase();
    if (base.endsWith(".tar.gz") || base.endsWith(".tgz")) {
      if (/cifar-?100/.test(base)) return { format: "cifar100", archive: path };
      if (/cifar-?10/.test(base)) return { format: "cifar10", archive: path };
    }
    throw new Error(
      `${path}: a file, but not ${Object.values(ARCHIVES).join(" or ")}; pass a dataset folder`,
    );
  }
  const have = await entries(path);
  for (const kind of ["cifar10", "cifar100"] as const) {
    const spec = CIFAR_FILES[kind];
    // data_batch_1.bin is CIFAR-10's own name; train.bin is generic, so CIFAR-100 also needs its names file.
    const batches = have.has(spec.train[0]) || have.has(spec.val[0]);
    if (batches && (kind === "cifar10" || have.has(spec.meta))) return { format: kind, dir: path };
    if (await isDir(join(path, spec.folder))) return { format: kind, dir: join(path, spec.folder) };
    if (have.has(ARCHIVES[kind])) return { format: kind, archive: join(path, ARCHIVES[kind]) };
  }
  if ([...have.keys()].some((n) => /-idx3-ubyte(\.gz)?$/.test(n))) return { format: "idx", dir: path };
  for (const split of ["train", "val"]) {
    if (!have.get(split)?.isDirectory) continue;
    for await (const e of Deno.readDir(join(path, split))) {
      if (e.isDirectory || e.isSymlink) return { format: "imagefolder", dir: path };
    }
  }
  throw new Error(
    `${path}: no dataset found (looked for train/<class>/ or val/<class>/ folders, CIFAR's ` +
      `${CIFAR_FILES.cifar10.train[0]} / ${
        CIFAR_FILES.cifar100.train[0]
      } or their .tar.gz, and *-idx3-ubyte[.gz] files)`,
  );
}
