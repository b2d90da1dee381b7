// Dumps what the model would see of a split: the eval transform of every image (for the train split too,
// augmentation off), for checking the data path against another implementation (e.g. timm + Pillow).
//
//   deno task data --data DIR --split train|val --img N [--crop-pct F] [--mean a,b,c --std a,b,c] --dump OUT.safetensors
//
// DIR is an ImageFolder (train/<class>/*, val/<class>/*), CIFAR-10/100 (the binary folder or .tar.gz) or
// Fashion-MNIST/MNIST IDX files (val = the test files; gray replicated to 3 channels). OUT holds `images`
// [N, 3, img, img] float32 (normalized), `labels` [N] int32 and metadata `classes` and `files` (JSON lists;
// files as "class/name" in dataset order). Decoding runs in --workers threads; a corrupt image is an error
// naming it, or with --skip-bad is left out (a warning each, and a count in the summary).

import { data, io, train } from "../mod.ts";

const f = train.parseFlags(
  "usage: deno task data --data DIR --split train|val --img N [flags] --dump OUT.safetensors",
  {
    data: {
      type: "string",
      help: "dataset: ImageFolder, CIFAR-10/100 folder or .tar.gz, IDX folder (required)",
    },
    split: { type: "string", default: "val", help: "split: train | val" },
    img: { type: "string", default: "224", help: "output side in pixels" },
    "crop-pct": { type: "string", default: "0.875", help: "resize the shorter side to int(img / crop-pct)" },
    mean: { type: "string", default: "0.485,0.456,0.406", help: "per-channel mean (3 values)" },
    std: { type: "string", default: "0.229,0.224,0.225", help: "per-channel std (3 values)" },
    dump: { type: "string", help: "output .safetensors file (required)" },
    workers: { type: "string", default: "0", help: "decoding threads (0: one per core)" },
    "skip-bad": { type: "boolean", default: false, help: "leave corrupt images out instead of failing" },
  },
);

function fail(msg: string, code = 2): never {
  console.error(`data: ${msg}`);
  Deno.exit(code);
}

function triple(flag: string, text: string): number[] {
  const v = text.split(",").map((s) => Number(s.trim()));
  if (v.length !== 3 || v.some((x) => !Number.isFinite(x))) {
    fail(`--${flag}: expected three comma-separated numbers, got '${text}'`);
  }
  return v;
}

if (!f.data) fail("--data: which dataset? (a folder or a CIFAR .tar.gz)");
if (!f.dump) fail("--dump: where to write the .safetensors file?");
if (f.split !== "train" && f.split !== "val") fail(`--split: expected train or val, got '${f.split}'`);
const img = Number(f.img), cropPct = Number(f["crop-pct"]), workers = Number(f.workers);
if (!Number.isInteger(img) || img < 1) fail(`--img: expected an integer ≥ 1, got '${f.img}'`);
if (!(cropPct > 0 && cropPct <= 1)) fail(`--crop-pct: expected a number in (0, 1], got '${f["crop-pct"]}'`);
if (!Number.isInteger(workers) || workers < 0) fail(`--workers: expected an integer ≥ 0, got '${f.workers}'`);
const mean = triple("mean", f.mean), std = triple("std", f.std);
if (std.some((s) => !(s > 0))) fail(`--std: values must be > 0, got '${f.std}'`);

const t0 = performance.now();
try {
  const d = await data.image.evalSplit(f.data, f.split as data.image.ImageSplit, {
    imgSize: img,
    cropPct,
    mean,
    std,
    workers,
    skipBad: f["skip-bad"],
    warn: (m) => console.error(`warning: ${m}`),
  });
  const n = d.labels.length;
  await io.writeSafetensors(f.dump, [
    { name: "images", dtype: "F32", shape: [n, 3, img, img], data: io.bytesOf(d.images) },
    { name: "labels", dtype: "I32", shape: [n], data: io.bytesOf(d.labels) },
  ], { classes: JSON.stringify(d.classes), files: JSON.stringify(d.files) });
  const skipped = d.skipped.length ? `; skipped ${d.skipped.length} corrupt image(s)` : "";
  console.log(
    `wrote ${f.dump}: images [${n}, 3, ${img}, ${img}] and labels of the ${f.split} split of ` +
      `${f.data} (${d.format}, ${d.classes.length} classes) in ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s` +
      skipped,
  );
} catch (e) {
  fail((e as Error).message, 1);
}
