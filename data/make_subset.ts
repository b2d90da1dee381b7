// Makes the class-balanced Fashion-MNIST subset committed in data/fashion-mnist-subset/ from the full
// dataset (Debian's dataset-fashion-mnist by default):
//
//   deno run -A data/make_subset.ts [--train 5000] [--test 1000] [--seed 0] [--src DIR] [--out DIR]
//
// Each class contributes count/10 samples, drawn by a seeded shuffle of that class's indices; the chosen
// indices are written in ascending (original) order, so the output is deterministic.

import {
  CLASSES,
  DEFAULT_DATA_DIR,
  encodeIdxGz,
  type FashionMnist,
  loadFashionMnist,
  type Split,
  splitFiles,
  SYSTEM_DATA_DIR,
} from "./fashion_mnist.ts";
import { Rng } from "../compiler/core/random.ts";

/**
 * Indices of a stratified subset: `count / classes` per class (count must divide evenly), each class's
 * picks drawn by a seeded Fisher-Yates shuffle of its indices; returned in ascending order.
 */
export function stratifiedIndices(
  labels: Uint8Array,
  count: number,
  seed: number,
  classes = 10,
): Uint32Array {
  if (!Number.isInteger(count) || count < 0 || count % classes !== 0) {
    throw new Error(`subset size ${count} must be a non-negative multiple of ${classes}`);
  }
  const per = count / classes;
  const picked: number[] = [];
  for (let c = 0; c < classes; c++) {
    const idx: number[] = [];
    for (let i = 0; i < labels.length; i++) if (labels[i] === c) idx.push(i);
    if (idx.length < per) throw new Error(`class ${c} has ${idx.length} samples, fewer than ${per}`);
    const r = new Rng((seed + 0x9e3779b9 * (c + 1)) >>> 0);
    for (let i = idx.length - 1; i > 0; i--) {
      const j = r.int(i + 1);
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    picked.push(...idx.slice(0, per));
  }
  return Uint32Array.from(picked).sort();
}

/** The samples at `idx`, as a new dataset. */
export function takeSamples(d: FashionMnist, idx: Uint32Array): FashionMnist {
  const hw = d.rows * d.cols;
  const images = new Uint8Array(idx.length * hw), labels = new Uint8Array(idx.length);
  idx.forEach((s, i) => {
    images.set(d.images.subarray(s * hw, (s + 1) * hw), i * hw);
    labels[i] = d.labels[s];
  });
  return { images, labels, n: idx.length, rows: d.rows, cols: d.cols };
}

function parseArgs(args: string[]): { train: number; test: number; seed: number; src: string; out: string } {
  const o = { train: 5000, test: 1000, seed: 0, src: SYSTEM_DATA_DIR, out: DEFAULT_DATA_DIR };
  for (let i = 0; i < args.length; i++) {
    const k = args[i], v = args[i + 1];
    if (v === undefined) throw new Error(`${k} needs a value`);
    i++;
    if (k === "--train" || k === "--test" || k === "--seed") {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${k}: bad number '${v}'`);
      o[k.slice(2) as "train" | "test" | "seed"] = n;
    } else if (k === "--src" || k === "--data") o.src = v;
    else if (k === "--out") o.out = v;
    else throw new Error(`unknown option ${k} (--train N --test N --seed S --src DIR --out DIR)`);
  }
  return o;
}

function readme(o: { train: number; test: number; seed: number }, src: string): string {
  return `# Fashion-MNIST subset

A class-balanced subset of [Fashion-MNIST](https://github.com/zalandoresearch/fashion-mnist)
(Han Xiao, Kashif Rasul, Roland Vollgraf, Zalando Research, 2017; arXiv:1708.07747), released under the
**MIT License** (Copyright (c) 2017 Zalando SE). It lets a fresh clone train and test without the
full dataset.

| file | samples |
| --- | --- |
| train-images-idx3-ubyte.gz / train-labels-idx1-ubyte.gz | ${o.train} (${o.train / 10} per class) |
| t10k-images-idx3-ubyte.gz / t10k-labels-idx1-ubyte.gz | ${o.test} (${o.test / 10} per class) |

Same format and file names as the original (gzipped IDX, 28×28 unsigned bytes; labels 0..9 =
${CLASSES.join(", ")}).

## How it was made

\`\`\`
deno run -A data/make_subset.ts --train ${o.train} --test ${o.test} --seed ${o.seed}
\`\`\`

from the full dataset in \`${src}\` (Debian package \`dataset-fashion-mnist\`). For each split and each
class, the class's sample indices are shuffled with the repo's seeded \`Rng\` (compiler/random.ts, seed
${o.seed} mixed with the class) and the first N/10 are kept; the chosen samples appear in their original
order. The script is deterministic: rerunning it reproduces these files byte for byte
(\`stratifiedIndices\` in data/make_subset.ts recomputes the source indices; tests/fashion_mnist.test.ts
cross-checks them against the full dataset when it is installed).

The full dataset: pass \`--data /usr/share/datasets/fashion-mnist\` (after
\`apt install dataset-fashion-mnist\`) or any directory holding the four standard files.
`;
}

export async function makeSubset(args: string[]): Promise<void> {
  const o = parseArgs(args);
  await Deno.mkdir(o.out, { recursive: true });
  for (const split of ["train", "test"] as Split[]) {
    const full = await loadFashionMnist(o.src, split);
    const sub = takeSamples(full, stratifiedIndices(full.labels, o[split], o.seed));
    const names = splitFiles(split);
    const img = encodeIdxGz([sub.n, sub.rows, sub.cols], sub.images);
    const lbl = encodeIdxGz([sub.n], sub.labels);
    await Deno.writeFile(`${o.out}/${names.images}`, img);
    await Deno.writeFile(`${o.out}/${names.labels}`, lbl);
    console.log(
      `${split}: ${sub.n} of ${full.n} samples -> ${names.images} (${img.length} B), ` +
        `${names.labels} (${lbl.length} B)`,
    );
  }
  const readmePath = `${o.out}/README.md`;
  await Deno.writeTextFile(readmePath, readme(o, o.src));
  // format it as the repo's `deno fmt` would, so a rerun leaves the committed README unchanged
  await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--quiet", readmePath],
    stdout: "null",
    stderr: "null",
  })
    .output().catch(() => {});
}

if (import.meta.main) await makeSubset(Deno.args);
