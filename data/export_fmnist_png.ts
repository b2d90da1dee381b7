// Fashion-MNIST (or MNIST) IDX files as an ImageFolder of 8-bit gray PNGs, to run the real-image pipeline
// end to end on data whose pixels and labels are known:
//
//   deno run -A data/export_fmnist_png.ts [--data IDX_DIR] --out DIR [--train-limit N] [--test-limit N]
//
// DIR/train/<k>_<class>/<index>.png and DIR/val/... (the t10k files). Class folders are prefixed with the
// label, so their sorted order is the label order; file names are the zero-padded IDX index, so within a
// class the ImageFolder order is the IDX order. An IDX split whose samples are sorted by label therefore
// reads back in exactly the same order (tests/image_train.test.ts relies on it).

import { join } from "node:path";
import { encodePng } from "../io/png.ts";
import { CLASSES, DEFAULT_DATA_DIR, firstSamples, loadFashionMnist, type Split } from "./fashion_mnist.ts";

/** The folder name of label k: "<k>_<name with runs of other characters as '-'>" ("0_T-shirt-top"). */
export function fashionClassFolder(k: number): string {
  return `${k}_${CLASSES[k].replace(/[^A-Za-z0-9]+/g, "-")}`;
}

/** Writes the first `limit` images (0: all) of each split of `idxDir` as PNGs under `out`; returns counts. */
export async function exportFashionMnistPng(
  idxDir: string,
  out: string,
  limits: { train?: number; test?: number } = {},
): Promise<{ train: number; val: number }> {
  const counts = { train: 0, val: 0 };
  for (const split of ["train", "test"] as Split[]) {
    const d = firstSamples(await loadFashionMnist(idxDir, split), limits[split]);
    const dir = join(out, split === "train" ? "train" : "val"), hw = d.rows * d.cols;
    const width = String(d.n - 1).length;
    for (let k = 0; k < CLASSES.length; k++) {
      await Deno.mkdir(join(dir, fashionClassFolder(k)), { recursive: true });
    }
    for (let i = 0; i < d.n; i++) {
      const png = encodePng(d.cols, d.rows, 1, d.images.subarray(i * hw, (i + 1) * hw));
      await Deno.writeFile(
        join(dir, fashionClassFolder(d.labels[i]), `${String(i).padStart(width, "0")}.png`),
        png,
      );
    }
    counts[split === "train" ? "train" : "val"] = d.n;
  }
  return counts;
}

if (import.meta.main) {
  const { parseArgs } = await import("node:util");
  const { values: f } = parseArgs({
    args: Deno.args,
    options: {
      data: { type: "string", default: DEFAULT_DATA_DIR },
      out: { type: "string" },
      "train-limit": { type: "string", default: "0" },
      "test-limit": { type: "string", default: "0" },
    },
  });
  if (!f.out) {
    console.error(
      "usage: deno run -A data/export_fmnist_png.ts [--data IDX_DIR] --out DIR [--train-limit N]",
    );
    Deno.exit(2);
  }
  const c = await exportFashionMnistPng(f.data!, f.out, {
    train: Number(f["train-limit"]),
    test: Number(f["test-limit"]),
  });
  console.log(`wrote ${c.train} train and ${c.val} val PNGs of ${f.data} to ${f.out}`);
}
