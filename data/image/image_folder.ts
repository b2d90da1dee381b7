// torchvision's ImageFolder convention: DIR/<split>/<class>/**/<file>. Classes are the sorted names of the
// split's sub-folders; files are walked as torchvision's make_dataset does (os.walk in sorted order, file
// names sorted, extension matched case-insensitively). We decode JPEG and PNG; a file with one of
// torchvision's other image extensions is an error rather than silently skipped, so the dataset we see is
// the one a PyTorch user would see.

import { join, relative } from "node:path";

/** Extensions we read (lower case). */
export const IMAGE_EXTENSIONS: readonly string[] = [".jpg", ".jpeg", ".png"];
/** torchvision's other image extensions: present means a dataset we would read differently, so we refuse. */
const UNSUPPORTED_EXTENSIONS = [".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"];

/** One split of an ImageFolder tree. */
export interface ImageFolderSplit {
  /** The split folder (DIR/train or DIR/val). */
  root: string;
  /** Sorted class folder names; label i is classes[i]. */
  classes: string[];
  /** Paths relative to `root`, "class/name", in dataset order. */
  files: string[];
  /** Class index of each file. */
  labels: Int32Array;
}

function extensionOf(name: string): string {
  const i = name.lastIndexOf(".");
  return i < 0 ? "" : name.slice(i).toLowerCase();
}

async function readDirSorted(dir: string): Promise<Deno.DirEntry[]> {
  const out: Deno.DirEntry[] = [];
  try {
    for await (const e of Deno.readDir(dir)) out.push(e);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${dir}: not found`);
    throw new Error(`${dir}: cannot list (${(e as Error).message})`);
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function isDirectory(path: string, e: Deno.DirEntry): Promise<boolean> {
  if (e.isDirectory) return true;
  if (!e.isSymlink) return false;
  try {
    return (await Deno.stat(path)).isDirectory; // torchvision follows links
  } catch {
    return false;
  }
}

/** Image files under `dir`, in torchvision's order: sorted(os.walk(dir)) then sorted file names. */
async function walkImages(dir: string): Promise<string[]> {
  const dirs: [string, string[]][] = [];
  const visit = async (d: string, depth: number) => {
    if (depth > 32) throw new Error(`${d}: folders nested more than 32 deep (a symlink loop?)`);
    const names: string[] = [];
    for (const e of await readDirSorted(d)) {
      const p = join(d, e.name);
      if (await isDirectory(p, e)) await visit(p, depth + 1);
      else names.push(e.name);
    }
    dirs.push([d, names]);
  };
  await visit(dir, 0);
  dirs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const files: string[] = [];
  for (const [d, names] of dirs) {
    for (const n of names) {
      const ext = extensionOf(n);
      if (IMAGE_EXTENSIONS.includes(ext)) files.push(join(d, n));
      else if (UNSUPPORTED_EXTENSIONS.includes(ext)) {
        throw new Error(
          `${join(d, n)}: ${ext} images are not supported (only JPEG and PNG); convert or remove it`,
        );
      }
    }
  }
  return files;
}

/** Lists DIR/<split> as torchvision's ImageFolder would, validating that every class has images. */
export async function listImageFolder(dir: string, split: string): Promise<ImageFolderSplit> {
  const root = join(dir, split);
  const classes: string[] = [];
  for (const e of await readDirSorted(root)) {
    if (await isDirectory(join(root, e.name), e)) classes.push(e.name);
  }
  if (classes.length === 0) {
    throw new Error(`${root}: no class folders (expected ${root}/<class>/<image files>)`);
  }
  const files: string[] = [], labels: number[] = [];
  for (const [label, cls] of classes.entries()) {
    const found = await walkImages(join(root, cls));
    if (found.length === 0) {
      throw new Error(`${join(root, cls)}: class '${cls}' has no ${IMAGE_EXTENSIONS.join(" ")} files`);
    }
    for (const f of found) {
      files.push(relative(root, f));
      labels.push(label);
    }
  }
  await checkSameClasses(dir, split, classes);
  return { root, classes, files, labels: Int32Array.from(labels) };
}

/** torchvision labels each split by its own folders; differing class lists would silently mislabel val. */
async function checkSameClasses(dir: string, split: string, classes: string[]): Promise<void> {
  const other = split === "train" ? "val" : "train";
  const otherRoot = join(dir, other);
  try {
    if (!(await Deno.stat(otherRoot)).isDirectory) return;
  } catch {
    return;
  }
  const theirs: string[] = [];
  for (const e of await readDirSorted(otherRoot)) {
    if (await isDirectory(join(otherRoot, e.name), e)) theirs.push(e.name);
  }
  const missing = theirs.filter((c) => !classes.includes(c)),
    extra = classes.filter((c) => !theirs.includes(c));
  if (missing.length || extra.length) {
    throw new Error(
      `${join(dir, split)}: class folders differ from ${otherRoot} (only in ${other}: ${
        missing.join(", ") || "-"
      }; ` +
        `only in ${split}: ${extra.join(", ") || "-"}), so labels would not match`,
    );
  }
}
