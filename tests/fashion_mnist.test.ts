// Fashion-MNIST: the committed subset, IDX validation on hand-made bad files, and its images through the
// Batcher (normalisation, augmentation, determinism, resumption). The cross-check against the full dataset runs
// only where Debian's dataset-fashion-mnist is installed.

import {
  assert,
  assertDeepEquals,
  assertEquals,
  assertRejectsMsg,
  assertThrowsMsg,
  test,
} from "./testing.ts";
import { gzipSync } from "fflate";
import { Batcher, type BatcherOptions } from "../data/batcher.ts";
import {
  CLASSES,
  DEFAULT_DATA_DIR,
  encodeIdx,
  encodeIdxGz,
  FASHION_MNIST_MEAN,
  FASHION_MNIST_STD,
  type FashionMnist,
  idxCache,
  type ImageSampleOptions,
  imageSamples,
  loadFashionMnist,
  MAX_IDX_BYTES,
  parseIdx,
  readIdx,
  SYSTEM_DATA_DIR,
} from "../data/fashion_mnist.ts";
import { stratifiedIndices } from "../data/make_subset.ts";
import { fileVersion } from "../data/cache.ts";

const HW = 28 * 28;

let trainCache: FashionMnist | undefined;
async function subsetTrain(): Promise<FashionMnist> {
  return trainCache ??= await loadFashionMnist(DEFAULT_DATA_DIR, "train");
}

/** Equal typed arrays, reporting the first difference (cheap even when they differ). */
function assertSameArray(a: ArrayLike<number>, b: ArrayLike<number>, what = "arrays"): void {
  assertEquals(a.length, b.length, `${what}: lengths differ`);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      throw new assert.AssertionError({ message: `${what} differ at ${i}: ${a[i]} vs ${b[i]}` });
    }
  }
}

function histogram(labels: ArrayLike<number>): number[] {
  const h = new Array(10).fill(0);
  for (let i = 0; i < labels.length; i++) h[labels[i]]++;
  return h;
}

async function systemDataPresent(): Promise<boolean> {
  try {
    await Deno.stat(`${SYSTEM_DATA_DIR}/t10k-labels-idx1-ubyte.gz`);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------
// the committed subset

test("fashion-mnist: committed subset has 5000/1000 balanced 28x28 samples", async () => {
  const train = await subsetTrain();
  const testSplit = await loadFashionMnist(DEFAULT_DATA_DIR, "test");
  assertEquals(CLASSES.length, 10);
  for (const [d, n] of [[train, 5000], [testSplit, 1000]] as const) {
    assertEquals(d.n, n);
    assertEquals(d.rows, 28);
    assertEquals(d.cols, 28);
    assertEquals(d.images.length, n * HW);
    assertEquals(d.labels.length, n);
    assertDeepEquals(histogram(d.labels), new Array(10).fill(n / 10));
  }
  // real images: not blank, full 0..255 range, mean near Fashion-MNIST's
  let sum = 0, max = 0;
  for (const v of train.images) {
    sum += v;
    if (v > max) max = v;
  }
  assertEquals(max, 255);
  const mean = sum / train.images.length / 255;
  assert(Math.abs(mean - FASHION_MNIST_MEAN) < 0.02, `subset pixel mean ${mean}`);
  // classes are interleaved (original order), not sorted
  assert(new Set(train.labels.subarray(0, 50)).size >= 5);
});

test("fashion-mnist: readIdx reads the subset files gzipped and raw", async () => {
  const idx = await readIdx(`${DEFAULT_DATA_DIR}/t10k-labels-idx1-ubyte.gz`);
  assertDeepEquals(idx.dims, [1000]);
  const dir = await Deno.makeTempDir();
  try {
    // uncompressed files (no .gz) are found and read as well
    const t = await loadFashionMnist(DEFAULT_DATA_DIR, "test");
    await Deno.writeFile(`${dir}/t10k-images-idx3-ubyte`, encodeIdx([t.n, 28, 28], t.images));
    await Deno.writeFile(`${dir}/t10k-labels-idx1-ubyte`, encodeIdx([t.n], t.labels));
    const raw = await loadFashionMnist(dir, "test");
    assertDeepEquals(raw.labels, t.labels);
    assertSameArray(raw.images, t.images);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("fashion-mnist: a gzipped IDX file is inflated once while unchanged; readers never share bytes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/labels-idx1-ubyte.gz`;
    await Deno.writeFile(path, encodeIdxGz([4], Uint8Array.of(1, 2, 3, 4)));
    const first = await readIdx(path, 1);
    // the inflated file is kept under its version: marking the kept bytes shows the next read is served
    // from them
    const kept = idxCache.get(fileVersion(path, await Deno.stat(path)));
    assert.ok(kept, "kept after the first read");
    kept[8] = 7; // past the 8-byte header (magic, one dim)
    assertDeepEquals([...(await readIdx(path, 1)).data], [7, 2, 3, 4]);
    kept[8] = 1;
    first.data[0] = 9; // a reader's change reaches neither the cache nor a later reader
    const second = await readIdx(path, 1);
    assertDeepEquals([...second.data], [1, 2, 3, 4]);
    second.data[1] = 9;
    assertDeepEquals([...(await readIdx(path, 1)).data], [1, 2, 3, 4]);
    // a cached file is still checked as asked: the wrong rank is refused, naming the file
    await assertRejectsMsg(() => readIdx(path, 3), path, "bad IDX magic number", ": 1 dimensions");
    // a rewrite (new size and mtime) is read again
    await Deno.writeFile(path, encodeIdxGz([5], Uint8Array.of(5, 6, 7, 8, 9)));
    assertDeepEquals([...(await readIdx(path, 1)).data], [5, 6, 7, 8, 9]);
    // a file that no longer exists is an error, not a cached answer
    await Deno.remove(path);
    await assertRejectsMsg(() => readIdx(path, 1), path, "not found");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("fashion-mnist: subset matches the system dataset (skipped when absent)", async () => {
  if (!(await systemDataPresent())) {
    console.log(`  (skipped: ${SYSTEM_DATA_DIR} not installed)`);
    return;
  }
  for (const [split, count] of [["test", 1000], ["train", 5000]] as const) {
    const full = await loadFashionMnist(SYSTEM_DATA_DIR, split);
    assertEquals(full.n, split === "train" ? 60000 : 10000);
    const sub = split === "train" ? await subsetTrain() : await loadFashionMnist(DEFAULT_DATA_DIR, split);
    const idx = stratifiedIndices(full.labels, count, 0);
    assertEquals(idx.length, sub.n);
    for (let i = 0; i < sub.n; i++) assertEquals(sub.labels[i], full.labels[idx[i]], `${split} label ${i}`);
    for (const i of [0, 1, 17, sub.n >> 1, sub.n - 1]) {
      assertDeepEquals(
        sub.images.subarray(i * HW, (i + 1) * HW),
        full.images.subarray(idx[i] * HW, (idx[i] + 1) * HW),
      );
    }
  }
});

// ---------------------------------------------------------------------------------------------------------
// bad inputs

test("fashion-mnist: every malformed IDX file fails with an error naming it", async () => {
  const dir = await Deno.makeTempDir();
  const write = async (name: string, bytes: Uint8Array) => {
    await Deno.writeFile(`${dir}/${name}`, bytes);
    return `${dir}/${name}`;
  };
  try {
    const pixels = new Uint8Array(2 * 28 * 28).map((_, i) => i & 0xff);
    const good = encodeIdx([2, 28, 28], pixels);
    const goodGz = gzipSync(good);
    assertDeepEquals((await readIdx(await write("good.gz", goodGz), 3)).dims, [2, 28, 28]);
    assertDeepEquals((await readIdx(await write("good", good), 3)).data, pixels);

    // missing file
    const missing = `${dir}/nope-idx3-ubyte.gz`;
    await assertRejectsMsg(
      () => readIdx(missing),
      missing,
      "not found",
      "--data DIR",
      "dataset-fashion-mnist",
    );
    await assertRejectsMsg(() => loadFashionMnist(`${dir}/no-such-dir`, "train"), "no-such-dir", "not found");
    await assertRejectsMsg(
      () => loadFashionMnist(dir, "train"),
      `${dir}/train-images-idx3-ubyte.gz`,
      "not found",
      "--data DIR",
    );

    // not gzip / corrupt gzip
    let p = await write("plain.gz", good);
    await assertRejectsMsg(() => readIdx(p), p, "not a gzip file");
    p = await write("short.gz", goodGz.subarray(0, goodGz.length - 30));
    await assertRejectsMsg(() => readIdx(p), p, "corrupt gzip");
    const flipped = goodGz.slice();
    flipped[goodGz.length >> 1] ^= 0x5a;
    p = await write("flipped.gz", flipped);
    await assertRejectsMsg(() => readIdx(p), p, "corrupt gzip");
    const badCrc = goodGz.slice();
    badCrc[goodGz.length - 8] ^= 1;
    p = await write("crc.gz", badCrc);
    await assertRejectsMsg(() => readIdx(p), p, "corrupt gzip", "CRC32");

    // magic number: wrong leading bytes, wrong type, wrong ndims (images vs labels)
    const bad = good.slice();
    bad[0] = 1;
    p = await write("magic0.gz", gzipSync(bad));
    await assertRejectsMsg(() => readIdx(p, 3), p, "magic number", "0x01000803");
    bad.set(good);
    bad[2] = 0x0d; // float32
    p = await write("float", bad);
    await assertRejectsMsg(() => readIdx(p, 3), p, "magic number", "0x00000d03", "unsigned byte");
    p = await write("labels-as-images.gz", encodeIdxGz([5], new Uint8Array(5)));
    await assertRejectsMsg(() => readIdx(p, 3), p, "magic number 0x00000801", "expected 0x00000803");

    // truncated header / data, trailing garbage
    p = await write("tiny.gz", gzipSync(good.subarray(0, 3)));
    await assertRejectsMsg(() => readIdx(p), p, "truncated");
    p = await write("hdr.gz", gzipSync(good.subarray(0, 10)));
    await assertRejectsMsg(() => readIdx(p), p, "truncated IDX header");
    p = await write("trunc.gz", gzipSync(good.subarray(0, good.length - 1)));
    await assertRejectsMsg(() => readIdx(p), p, "truncated IDX data", "[2, 28, 28]", "1568", "1567");
    const extra = new Uint8Array(good.length + 3);
    extra.set(good);
    p = await write("extra.gz", gzipSync(extra));
    await assertRejectsMsg(() => readIdx(p), p, "3 bytes of trailing garbage");
    p = await write("extra", extra);
    await assertRejectsMsg(() => readIdx(p), p, "trailing garbage");

    // parseIdx names whatever it is given
    assertThrowsMsg(() => parseIdx(new Uint8Array(2), "buf"), "buf", "truncated");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("fashion-mnist: loadFashionMnist checks counts, labels and image size", async () => {
  const dir = await Deno.makeTempDir();
  const put = async (imgDims: number[], labels: number[]) => {
    const n = imgDims.reduce((a, b) => a * b, 1);
    await Deno.writeFile(`${dir}/train-images-idx3-ubyte.gz`, encodeIdxGz(imgDims, new Uint8Array(n)));
    await Deno.writeFile(
      `${dir}/train-labels-idx1-ubyte.gz`,
      encodeIdxGz([labels.length], Uint8Array.from(labels)),
    );
  };
  try {
    await put([3, 28, 28], [0, 9, 4]);
    const d = await loadFashionMnist(dir, "train");
    assertEquals(d.n, 3);
    assertDeepEquals([...d.labels], [0, 9, 4]);

    await put([3, 28, 28], [0, 9]);
    await assertRejectsMsg(() => loadFashionMnist(dir, "train"), "3 images but 2 labels");
    await put([3, 28, 28], [0, 10, 1]);
    await assertRejectsMsg(
      () => loadFashionMnist(dir, "train"),
      "train-labels-idx1-ubyte.gz",
      "label 10 at index 1",
      "out of range",
    );
    await put([3, 32, 32], [0, 1, 2]);
    await assertRejectsMsg(
      () => loadFashionMnist(dir, "train"),
      "train-images-idx3-ubyte.gz",
      "32×32",
      "28×28",
    );
    // a labels file given where images belong (1 dim) fails on the magic number
    await Deno.writeFile(`${dir}/train-images-idx3-ubyte.gz`, encodeIdxGz([3], new Uint8Array(3)));
    await assertRejectsMsg(() => loadFashionMnist(dir, "train"), "train-images-idx3-ubyte.gz", "0x00000803");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------------------
// Batcher over image samples

/** A Batcher over imageSamples(d), with the samples' normalise() at hand. */
type ImgBatcher = Batcher & { normalise(v: number): number };
function imgBatcher(d: FashionMnist, o: BatcherOptions & ImageSampleOptions): ImgBatcher {
  const s = imageSamples(d, o);
  return Object.assign(new Batcher(s, o), { normalise: s.normalise });
}

/** A tiny dataset whose sample i has label i % 10 and a distinctive, asymmetric image. */
function fakeData(n: number): FashionMnist {
  const images = new Uint8Array(n * HW), labels = new Uint8Array(n);
  for (let s = 0; s < n; s++) {
    labels[s] = s % 10;
    for (let p = 0; p < HW; p++) images[s * HW + p] = 1 + ((s * 31 + p * 7 + (p % 28) * 3) % 254);
  }
  return { images, labels, n, rows: 28, cols: 28 };
}

/** Which sample (by label-and-content match against the unaugmented images) each batch row is. */
function identify(d: FashionMnist, b: ImgBatcher, images: Float32Array, row: number): number {
  for (let s = 0; s < d.n; s++) {
    if (Math.abs(images[row * HW + 100] - b.normalise(d.images[s * HW + 100])) > 1e-6) continue;
    let same = true;
    for (let p = 0; p < HW && same; p++) {
      same = Math.abs(images[row * HW + p] - b.normalise(d.images[s * HW + p])) < 1e-6;
    }
    if (same) return s;
  }
  return -1;
}

test("fashion-mnist: Batcher normalises and shuffles whole epochs", async () => {
  const d = await subsetTrain();
  const b = imgBatcher(d, { batchSize: 64, seed: 1, augment: false });
  assertEquals(b.batchesPerEpoch, Math.floor(5000 / 64));
  const batch = b.next();
  assertEquals(batch.x.length, 64 * HW);
  assertEquals(batch.labels.length, 64);
  const zero = (0 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD,
    one = (1 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD;
  assert(Math.abs(b.normalise(0) - zero) < 1e-6 && Math.abs(b.normalise(255) - one) < 1e-6);
  let lo = Infinity, hi = -Infinity;
  for (const v of batch.x) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  assert(Math.abs(lo - zero) < 1e-6 && Math.abs(hi - one) < 1e-6, `range ${lo}..${hi}`);
  // custom mean/std
  const c = imgBatcher(d, { batchSize: 4, seed: 1, augment: false, mean: 0.5, std: 0.25 });
  assert(Math.abs(c.normalise(51) - (0.2 - 0.5) / 0.25) < 1e-6);

  // one epoch on a small set visits each sample at most once and (with dropLast) drops the remainder
  const small = fakeData(23);
  const s = imgBatcher(small, { batchSize: 5, seed: 3, augment: false });
  const seen: number[] = [];
  for (let i = 0; i < 4; i++) {
    const bt = s.next();
    assertEquals(bt.epoch, 0);
    for (let r = 0; r < 5; r++) {
      const id = identify(small, s, bt.x, r);
      assert(id >= 0);
      assertEquals(bt.labels[r], small.labels[id]);
      seen.push(id);
    }
  }
  assertEquals(new Set(seen).size, 20);
  assert(seen.some((v, i) => v !== i), "order is shuffled");
  const e1 = s.next();
  assertEquals(e1.epoch, 1);
  const second = [...Array(5).keys()].map((r) => identify(small, s, e1.x, r));
  assert(second.join() !== seen.slice(0, 5).join(), "each epoch has its own order");

  // dropLast: false returns the short batch
  const k = imgBatcher(small, { batchSize: 5, seed: 3, augment: false, dropLast: false });
  assertEquals(k.batchesPerEpoch, 5);
  const sizes = [...Array(6)].map(() => k.next()).map((bt) => [bt.size, bt.labels.length, bt.epoch]);
  assertDeepEquals(sizes, [[5, 5, 0], [5, 5, 0], [5, 5, 0], [5, 5, 0], [3, 3, 0], [5, 5, 1]]);
});

/** The (flip, dy, dx) whose zero-padded crop of `src` (then flip) gives `aug` exactly, or undefined. */
function explainAug(
  aug: Float32Array,
  src: Float32Array,
  zero: number,
): [number, number, number] | undefined {
  for (let flip = 0; flip < 2; flip++) {
    for (let dy = -4; dy <= 4; dy++) {
      for (let dx = -4; dx <= 4; dx++) {
        let ok = true;
        for (let y = 0; y < 28 && ok; y++) {
          for (let x = 0; x < 28 && ok; x++) {
            const sx = (flip ? 27 - x : x) + dx, sy = y + dy;
            const want = sy >= 0 && sy < 28 && sx >= 0 && sx < 28 ? src[sy * 28 + sx] : zero;
            ok = Math.abs(aug[y * 28 + x] - want) < 1e-6;
          }
        }
        if (ok) return [flip, dy, dx];
      }
    }
  }
  return undefined;
}

test("fashion-mnist: augmentation crops and flips but keeps shape and labels", async () => {
  // real images: each augmented image is a padded crop / flip of its unaugmented self
  const d = await subsetTrain();
  const opts: BatcherOptions = { batchSize: 32, seed: 7, augment: true };
  const aug = imgBatcher(d, opts), plain = imgBatcher(d, { ...opts, augment: false });
  const zero = aug.normalise(0);
  let changed = 0;
  for (let step = 0; step < 3; step++) {
    const a = aug.next(), p = plain.next();
    assertEquals(a.x.length, 32 * HW);
    assertEquals(a.size, 32);
    assertDeepEquals(a.labels, p.labels); // same shuffle, so same samples and labels
    for (let r = 0; r < 32; r++) {
      const ai = a.x.subarray(r * HW, (r + 1) * HW), pi = p.x.subarray(r * HW, (r + 1) * HW);
      if (ai.some((v, i) => v !== pi[i])) changed++;
      assert(explainAug(ai, pi, zero), `row ${r} of step ${step} is not a padded crop/flip of its source`);
    }
  }
  assert(changed > 96 * 0.8, `changed ${changed}/96`);

  // asymmetric images without zero pixels identify offsets and flips unambiguously: all 9 offsets
  // occur on each axis, about half the images are flipped, and the padding is the normalised zero
  const f = fakeData(64);
  const fa = imgBatcher(f, { batchSize: 32, seed: 11, augment: true });
  const fp = imgBatcher(f, { batchSize: 32, seed: 11, augment: false });
  const dys = new Set<number>(), dxs = new Set<number>();
  let flips = 0;
  for (let step = 0; step < 8; step++) {
    const a = fa.next(), p = fp.next();
    for (let r = 0; r < 32; r++) {
      const how = explainAug(
        a.x.subarray(r * HW, (r + 1) * HW),
        p.x.subarray(r * HW, (r + 1) * HW),
        zero,
      );
      assert(how, `fake row ${r} of step ${step}`);
      flips += how[0];
      dys.add(how[1]);
      dxs.add(how[2]);
    }
  }
  assertEquals(dys.size, 9);
  assertEquals(dxs.size, 9);
  assert(flips > 256 * 0.38 && flips < 256 * 0.62, `flipped ${flips}/256`);
});

test("fashion-mnist: Batcher is deterministic per seed and resumes exactly", async () => {
  const d = await subsetTrain();
  const opts: BatcherOptions = { batchSize: 48, seed: 42, augment: true };
  const a = imgBatcher(d, opts), b = imgBatcher(d, opts);
  for (let i = 0; i < 3; i++) {
    const x = a.next(), y = b.next();
    assertSameArray(x.x, y.x);
    assertDeepEquals(x.labels, y.labels);
  }
  const other = imgBatcher(d, { ...opts, seed: 43 }).next(), mine = imgBatcher(d, opts).next();
  assert(other.labels.some((v, i) => v !== mine.labels[i]), "another seed gives another order");

  // draw 7, save, draw 3; a new Batcher restored from the state draws the same 3
  const r = imgBatcher(d, opts);
  for (let i = 0; i < 7; i++) r.next();
  const saved = JSON.parse(JSON.stringify(r.state()));
  const after = [r.next(), r.next(), r.next()];
  const q = imgBatcher(d, opts);
  q.restore(saved);
  for (const want of after) {
    const got = q.next();
    assertSameArray(got.x, want.x, "resumed images");
    assertDeepEquals(got.labels, want.labels);
  }
  assertDeepEquals(q.state(), r.state());

  // resuming across an epoch boundary
  const small = fakeData(23), so: BatcherOptions = { batchSize: 5, seed: 9, augment: true };
  const s1 = imgBatcher(small, so);
  for (let i = 0; i < 4; i++) s1.next(); // the epoch's last full batch; next() starts epoch 1
  const st = s1.state();
  assertEquals(st.epoch, 0);
  const more = [s1.next(), s1.next()];
  const s2 = imgBatcher(small, so);
  s2.restore(st);
  for (const want of more) assertSameArray(s2.next().x, want.x);

  assertThrowsMsg(() => q.restore({ epoch: 0, cursor: 99999, rng: 1 }), "Batcher.restore", "bad state");
});

test("fashion-mnist: evalBatches covers the split once, padding the final batch", async () => {
  const small = fakeData(23);
  const b = imgBatcher(small, { batchSize: 10, seed: 1, augment: true });
  b.next();
  const before = b.state();
  const batches = [...b.evalBatches()];
  assertDeepEquals(b.state(), before, "evaluation leaves the training position alone");
  assertDeepEquals(batches.map((x) => [x.size, x.valid, x.labels.length, x.x.length]), [
    [10, 10, 10, 10 * HW],
    [10, 10, 10, 10 * HW],
    [10, 3, 10, 10 * HW],
  ]);
  // in order, unaugmented; the padding repeats samples from the start
  for (let k = 0; k < 3; k++) {
    for (let r = 0; r < 10; r++) {
      const s = (k * 10 + r) % 23;
      assertEquals(batches[k].labels[r], small.labels[s]);
      assertEquals(batches[k].x[r * HW + 5], b.normalise(small.images[s * HW + 5]));
    }
  }
  // accuracy over the valid rows counts each real sample once
  const counted = batches.reduce((a, x) => a + x.valid, 0);
  assertEquals(counted, 23);

  const t = await loadFashionMnist(DEFAULT_DATA_DIR, "test");
  const ev = imgBatcher(t, { batchSize: 128, seed: 0, augment: false, dropLast: true });
  const all = [...ev.evalBatches()];
  assertEquals(all.length, 8);
  assertEquals(all.at(-1)!.valid, 1000 - 7 * 128);
  assertDeepEquals(
    histogram(all.flatMap((x) => [...x.labels.subarray(0, x.valid)])),
    new Array(10).fill(100),
  );
});

test("fashion-mnist: Batcher rejects bad options", () => {
  const small = fakeData(4);
  assertThrowsMsg(() => imgBatcher(small, { batchSize: 0, seed: 1, augment: false }), "batchSize");
  assertThrowsMsg(() => imgBatcher(small, { batchSize: 5, seed: 1, augment: false }), "exceeds", "dropLast");
  assertThrowsMsg(() => imgBatcher(small, { batchSize: 2, seed: 1, augment: false, std: 0 }), "std");
  imgBatcher(small, { batchSize: 5, seed: 1, augment: false, dropLast: false }).next();
});

test("IDX .gz: a decompression bomb stops at what the header's dims allow", async () => {
  const dir = await Deno.makeTempDir({ prefix: "idx-bomb-" });
  try {
    // header says [2, 28, 28] (1,568 bytes) but 24 MB of pixels follow: ~100 kB of gzip
    const hdr = encodeIdx([2, 28, 28], new Uint8Array(2 * 28 * 28));
    const body = new Uint8Array(24_000_000);
    body.set(hdr);
    const p = `${dir}/bomb-idx3-ubyte.gz`;
    await Deno.writeFile(p, gzipSync(body, { level: 1 }));
    const t0 = performance.now();
    await assertRejectsMsg(() => readIdx(p, 3), p, "inflates to more than", "refusing it");
    assert(performance.now() - t0 < 1500, `${performance.now() - t0} ms`);
    // a trailer claiming more than MAX_IDX_BYTES is refused before inflating
    const q = `${dir}/huge-idx1-ubyte.gz`;
    const hugeGz = encodeIdxGz([4], new Uint8Array(4));
    new DataView(hugeGz.buffer).setUint32(hugeGz.length - 4, MAX_IDX_BYTES + 1, true);
    await Deno.writeFile(q, hugeGz);
    await assertRejectsMsg(() => readIdx(q, 1), q, "corrupt gzip", `claims ${MAX_IDX_BYTES + 1}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
