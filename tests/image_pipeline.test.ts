// The data path of issue 12: the `deno task data` dump contract (ImageFolder against Pillow's reference
// pixels, CIFAR without resampling, IDX replicated to RGB), the worker pipeline (same batches for any
// worker count and in the main thread, resumable from a checkpointed state) and corrupt images.

import { assert, assertRejectsMsg, test } from "./testing.ts";
import { join } from "node:path";
import { Batcher } from "../data/batcher.ts";
import { openImageDataset } from "../data/image/dataset.ts";
import { readCifarTarGz } from "../data/image/cifar.ts";
import { openImagePipeline } from "../data/image/pipeline.ts";
import { evalSplit } from "../data/image/dump.ts";
import { normalizeToChw } from "../data/image/transforms.ts";
import type { ImageTransformSpec } from "../data/image/sample_transform.ts";
import { IMAGE_FIXTURES, loadImageReference } from "./image_reference.ts";

const { tensors } = loadImageReference();
const ROOT = new URL("../", import.meta.url).pathname;

/** A temporary ImageFolder of fixture files: { "train/a/x.JPG": "jpeg/astro_q50.jpg", ... }. */
async function imageFolder(files: Record<string, string | Uint8Array>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "imgpipe-" });
  for (const [to, from] of Object.entries(files)) {
    await Deno.mkdir(join(dir, to, ".."), { recursive: true });
    await Deno.writeFile(
      join(dir, to),
      typeof from === "string" ? Deno.readFileSync(IMAGE_FIXTURES + from) : from,
    );
  }
  return dir;
}

function readDump(path: string) {
  const bytes = Deno.readFileSync(path);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const h = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const at = (k: string) => bytes.slice(8 + n + h[k].data_offsets[0], 8 + n + h[k].data_offsets[1]).buffer;
  return {
    shape: h.images.shape as number[],
    labelShape: h.labels.shape as number[],
    dtypes: [h.images.dtype, h.labels.dtype],
    images: new Float32Array(at("images")),
    labels: Array.from(new Int32Array(at("labels"))),
    classes: JSON.parse(h.__metadata__.classes) as string[],
    files: JSON.parse(h.__metadata__.files) as string[],
  };
}

async function dataTask(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "examples/data.ts"), ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: r.code, stdout: dec(r.stdout), stderr: dec(r.stderr) };
}

const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => v === b[i]);

/** The reference u8 [img, img, C] as the dump's normalized [3, img, img] (gray replicated). */
function refChw(key: string, mean?: number[], std?: number[]): Float32Array {
  const r = tensors.get(key)!;
  const [h, w, c] = r.shape;
  return normalizeToChw({ width: w, height: h, channels: c as 1 | 3, data: r.data }, mean, std, 3);
}

test("data dump: ImageFolder eval transform equals Pillow's, labels/classes/files in dataset order", async () => {
  const dir = await imageFolder({
    "train/a/x.JPG": "jpeg/astro_q50.jpg",
    "train/a/y.jpg": "jpeg/cat_gray.jpg",
    "train/b/rgb8.png": "png/rgb8.png",
    "train/b/pal8.png": "png/pal8.png",
    "train/b/notes.txt": new Uint8Array(3),
    "val/a/c.jpeg": "jpeg/coffee_420.jpg",
    "val/b/r.png": "png/rgba16.png",
  });
  try {
    const out = join(dir, "train.safetensors");
    const r = await dataTask("--data", dir, "--split", "train", "--img", "32", "--dump", out);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /images \[4, 3, 32, 32\]/);
    const d = readDump(out);
    assert.deepEqual(d.shape, [4, 3, 32, 32]);
    assert.deepEqual(d.dtypes, ["F32", "I32"]);
    assert.deepEqual(d.classes, ["a", "b"]);
    assert.deepEqual(d.files, ["a/x.JPG", "a/y.jpg", "b/pal8.png", "b/rgb8.png"]);
    assert.deepEqual(d.labels, [0, 0, 1, 1]);
    const refs = ["jpeg/astro_q50.jpg", "jpeg/cat_gray.jpg", "png/pal8.png", "png/rgb8.png"];
    const S = 3 * 32 * 32;
    refs.forEach((f, k) =>
      assert.ok(same(d.images.subarray(k * S, (k + 1) * S), refChw(`eval/${f}/32/0.875`)), f)
    );

    // val, another size, crop_pct and normalization
    const mean = [0.5, 0.4, 0.3], std = [0.2, 0.25, 0.3];
    const v = await evalSplit(dir, "val", { imgSize: 40, cropPct: 0.9, mean, std, workers: 1 }),
      S2 = 3 * 40 * 40;
    assert.deepEqual(v.files, ["a/c.jpeg", "b/r.png"]);
    assert.ok(same(v.images.subarray(0, S2), refChw("eval/jpeg/coffee_420.jpg/40/0.9", mean, std)));
    assert.ok(same(v.images.subarray(S2), refChw("eval/png/rgba16.png/40/0.9", mean, std)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("data dump: CIFAR val is the test batch, no resampling at --img 32 --crop-pct 1.0", async () => {
  const dir = await Deno.makeTempDir({ prefix: "imgpipe-" });
  try {
    const archive = join(dir, "cifar-10-binary.tar.gz");
    await Deno.copyFile(IMAGE_FIXTURES + "cifar10_tiny.tar.gz", archive);
    const d = await evalSplit(dir, "val", { imgSize: 32, cropPct: 1.0, workers: 1 });
    const c = await readCifarTarGz("cifar10", archive, "val");
    assert.equal(d.labels.length, c.labels.length);
    assert.deepEqual(Array.from(d.labels), Array.from(c.labels));
    assert.deepEqual(d.classes, c.classes);
    assert.equal(d.files[0], `${c.classes[c.labels[0]]}/test_batch.bin#0`);
    const px = { width: 32, height: 32, channels: 3 as const, data: c.pixels };
    const all = new Float32Array(d.images.length), S = 3 * 32 * 32;
    for (let i = 0; i < d.labels.length; i++) {
      all.set(normalizeToChw({ ...px, data: c.pixels.subarray(i * 3072, (i + 1) * 3072) }), i * S);
    }
    assert.ok(same(d.images, all));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("data dump: IDX gray is replicated to 3 channels; a corrupt image names the file or is skipped", async () => {
  const dir = await imageFolder({
    "train/a/good.png": "png/gray8.png",
    "train/a/trunc.jpg": Deno.readFileSync(IMAGE_FIXTURES + "jpeg/cat_420.jpg").subarray(0, 300),
    "train/b/ok.jpg": "jpeg/cat_420.jpg",
  });
  try {
    const out = join(dir, "x.safetensors");
    const bad = await dataTask("--data", dir, "--split", "train", "--img", "24", "--dump", out);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /trunc\.jpg: .*JPEG/);
    assert.ok(!bad.stderr.includes("    at "), "no stack trace");
    const warned: string[] = [];
    const d = await evalSplit(dir, "train", {
      imgSize: 24,
      cropPct: 1.0,
      skipBad: true,
      workers: 1,
      warn: (m) => warned.push(m),
    });
    assert.match(warned.join("\n"), /skipping a corrupt image: .*trunc\.jpg/);
    assert.deepEqual(d.skipped, [join(dir, "train/a/trunc.jpg")]);
    assert.deepEqual(d.files, ["a/good.png", "b/ok.jpg"]);
    assert.deepEqual(Array.from(d.labels), [0, 1]);
    assert.ok(same(d.images.subarray(0, 3 * 576), refChw("eval/png/gray8.png/24/1.0")));
    assert.ok(same(d.images.subarray(3 * 576), refChw("eval/jpeg/cat_420.jpg/24/1.0")));

    const m = await evalSplit(join(ROOT, "data/fashion-mnist-subset"), "val", {
      imgSize: 28,
      cropPct: 1,
      mean: [0.5, 0.5, 0.5],
      std: [0.5, 0.5, 0.5],
      workers: 1,
    });
    const P = 28 * 28;
    const ds = await openImageDataset(join(ROOT, "data/fashion-mnist-subset"), "val");
    assert.equal(m.labels.length, ds.labels.length);
    assert.equal(m.files[1], `${ds.classes[ds.labels[1]]}/t10k-images-idx3-ubyte#1`);
    const px = ds.items.kind === "pixels" ? ds.items.pixels : new Uint8Array();
    for (const i of [0, 7, m.labels.length - 1]) {
      for (let c = 0; c < 3; c++) {
        const plane = m.images.subarray((i * 3 + c) * P, (i * 3 + c + 1) * P);
        assert.ok(
          plane.every((v, p) => v === Math.fround(Math.fround(Math.fround(px[i * P + p] / 255) - 0.5) / 0.5)),
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("pipeline: batches are the same for 1 and 2 workers and the main thread, and resume exactly", async () => {
  const files: Record<string, string> = {};
  const src = [
    "jpeg/astro_q50.jpg",
    "jpeg/cat_gray.jpg",
    "png/rgb8.png",
    "png/pal8.png",
    "jpeg/coffee_420.jpg",
  ];
  for (let i = 0; i < 10; i++) files[`train/c${i % 3}/${i}.${src[i % 5].slice(-3)}`] = src[i % 5];
  const dir = await imageFolder(files);
  try {
    const ds = await openImageDataset(dir, "train");
    for (const augment of ["deit", "flip"] as const) {
      const spec: ImageTransformSpec = { imgSize: 24, chans: 3, augment };
      const runs: Float32Array[][] = [];
      // deit: 1 and 2 workers; flip: 2; each also against the main thread (Batcher.next() calling write)
      for (const workers of augment === "deit" ? [1, 2] : [2]) {
        const pipe = await openImagePipeline(ds, spec, { workers });
        const batcher = () => new Batcher(pipe, { batchSize: 4, seed: 7, augment: true });
        const main = batcher();
        runs.push(Array.from({ length: 5 }, () => main.next().x));
        const b = batcher(), loader = pipe.loader(b), out: Float32Array[] = [];
        for (let k = 0; k < 3; k++) out.push((await loader.next()).x);
        // a checkpoint here, then a fresh Batcher and loader resumed from it
        const b2 = batcher();
        b2.restore(loader.state());
        const l2 = pipe.loader(b2);
        for (let k = 0; k < 2; k++) out.push((await l2.next()).x);
        pipe.close();
        runs.push(out);
      }
      for (let r = 1; r < runs.length; r++) {
        for (let k = 0; k < 5; k++) {
          assert.ok(same(runs[0][k], runs[r][k]), `${augment}: run ${r}, batch ${k}`);
        }
      }
      assert.ok(!same(runs[0][0], runs[0][2]), "augmented batches differ");
    }
    // evaluation batches: the eval transform in order, whatever the worker count
    const pipe = await openImagePipeline(ds, { imgSize: 24, chans: 3, augment: "deit" }, { workers: 2 });
    const b = new Batcher(pipe, { batchSize: 4, seed: 0, augment: false, dropLast: false });
    const direct = [...b.evalBatches()].map((e) => e.x);
    let k = 0;
    for await (const e of pipe.evalBatches(b)) assert.ok(same(e.x, direct[k++]));
    assert.equal(k, 3);
    pipe.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("pipeline: a corrupt image fails its batch naming the file; skipBad borrows a good sample", async () => {
  const dir = await imageFolder({
    "train/a/0.png": "png/rgb8.png",
    "train/a/1.png": Deno.readFileSync(IMAGE_FIXTURES + "png/rgb8.png").subarray(0, 60),
    "train/b/2.jpg": "jpeg/cat_420.jpg",
  });
  try {
    const ds = await openImageDataset(dir, "train");
    const spec: ImageTransformSpec = { imgSize: 16, chans: 3 };
    const pipe = await openImagePipeline(ds, spec, { workers: 2 });
    const b = new Batcher(pipe, { batchSize: 3, seed: 0, augment: false });
    await assertRejectsMsg(() => pipe.loader(b).next(), join(dir, "train/a/1.png"), "PNG");
    pipe.close();
    const warned: string[] = [];
    const p2 = await openImagePipeline(ds, spec, { workers: 2, skipBad: true, warn: (m) => warned.push(m) });
    const b2 = new Batcher(p2, { batchSize: 3, seed: 0, augment: false });
    const batch = await p2.loader(b2).next();
    p2.close();
    assert.equal(warned.length, 1);
    assert.deepEqual([...p2.skipped], [join(dir, "train/a/1.png")]);
    const order = Array.from(b2.epochOrder(0)), S = 3 * 16 * 16, k = order.indexOf(1), from = (k + 1) % 3;
    assert.ok(same(batch.x.subarray(k * S, (k + 1) * S), batch.x.subarray(from * S, (from + 1) * S)));
    assert.equal(batch.labels[k], batch.labels[from]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
