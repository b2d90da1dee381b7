import { assert, assertRejectsMsg, test } from "./testing.ts";
import { gzipSync } from "fflate";
import { join } from "node:path";
import { decodeImage } from "../data/image/decode.ts";
import { listImageFolder } from "../data/image/image_folder.ts";
import { cifarImage, readCifarFolder, readCifarTarGz } from "../data/image/cifar.ts";
import { readTar } from "../data/image/tar.ts";
import { detectImageDataset } from "../data/image/detect.ts";
import { IMAGE_FIXTURES, loadImageReference } from "./image_reference.ts";

const { tensors } = loadImageReference();
const fixture = (f: string) => Deno.readFileSync(IMAGE_FIXTURES + f);

async function write(path: string, data: Uint8Array | string): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeFile(path, typeof data === "string" ? new TextEncoder().encode(data) : data);
}

/** A ustar archive of the given files (our own writer; the committed fixture comes from Python's tarfile). */
function tar(files: Record<string, Uint8Array>): Uint8Array {
  const blocks: Uint8Array[] = [];
  const put = (h: Uint8Array, off: number, s: string) => h.set(new TextEncoder().encode(s), off);
  for (const [name, data] of Object.entries(files)) {
    const h = new Uint8Array(512);
    put(h, 0, name);
    put(h, 100, "0000644\0");
    put(h, 124, data.length.toString(8).padStart(11, "0") + "\0");
    put(h, 156, "0");
    put(h, 257, "ustar\x0000");
    put(h, 148, "        ");
    const sum = h.reduce((a, b) => a + b, 0);
    put(h, 148, sum.toString(8).padStart(6, "0") + "\0 ");
    blocks.push(h, data, new Uint8Array((512 - (data.length % 512)) % 512));
  }
  blocks.push(new Uint8Array(1024));
  const out = new Uint8Array(blocks.reduce((s, b) => s + b.length, 0));
  let o = 0;
  for (const b of blocks) (out.set(b, o), o += b.length);
  return out;
}

test("ImageFolder: sorted classes, torchvision's file order, case-insensitive extensions, then decodes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const jpg = fixture("jpeg/cat_420.jpg"), png = fixture("png/rgb8.png"), gray = fixture("png/gray8.png");
    await write(`${dir}/train/dog/b.PNG`, png);
    await write(`${dir}/train/dog/a.jpeg`, jpg);
    await write(`${dir}/train/dog/notes.txt`, "not an image");
    await write(`${dir}/train/dog/sub/c.JPG`, jpg);
    await write(`${dir}/train/Zebra/z.png`, gray);
    await write(`${dir}/train/cat/x.Jpeg`, jpg);
    await write(`${dir}/train/.hidden_not_a_class`, "file, not a folder");
    for (const c of ["Zebra", "cat", "dog"]) await write(`${dir}/val/${c}/v.jpg`, jpg);
    const s = await listImageFolder(dir, "train");
    assert.deepEqual(s.classes, ["Zebra", "cat", "dog"]); // Python's sorted(): code points, capitals first
    assert.deepEqual(s.files, ["Zebra/z.png", "cat/x.Jpeg", "dog/a.jpeg", "dog/b.PNG", "dog/sub/c.JPG"]);
    assert.deepEqual(Array.from(s.labels), [0, 1, 2, 2, 2]);
    const img = await decodeImage(Deno.readFileSync(join(s.root, s.files[0])), s.files[0]);
    assert.equal(img.channels, 1);
    assert.deepEqual((await listImageFolder(dir, "val")).files, ["Zebra/v.jpg", "cat/v.jpg", "dog/v.jpg"]);
    assert.deepEqual(await detectImageDataset(dir), { format: "imagefolder", dir });

    await Deno.remove(`${dir}/val/cat`, { recursive: true });
    await assertRejectsMsg(() => listImageFolder(dir, "val"), `${dir}/val`, "only in train: cat");
    await Deno.mkdir(`${dir}/train/empty`);
    await assertRejectsMsg(() => listImageFolder(dir, "train"), `${dir}/train/empty`, "no .jpg .jpeg .png");
    await Deno.remove(`${dir}/train/empty`);
    await write(`${dir}/train/cat/y.bmp`, "BM");
    await assertRejectsMsg(() => listImageFolder(dir, "train"), "y.bmp", "not supported");
    await assertRejectsMsg(() => listImageFolder(dir, "test"), `${dir}/test`, "not found");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("CIFAR-10: the downloaded .tar.gz (Python tarfile, PAX) reads as torchvision's HWC arrays", async () => {
  const archive = IMAGE_FIXTURES + "cifar10_tiny.tar.gz";
  for (const split of ["train", "val"] as const) {
    const d = await readCifarTarGz("cifar10", archive, split);
    const px = tensors.get(`cifar/${split}/pixels`)!, lb = tensors.get(`cifar/${split}/labels`)!;
    assert.equal(d.labels.length, px.shape[0]);
    assert.deepEqual(Array.from(d.labels), Array.from(lb.data));
    assert.deepEqual(d.pixels, px.data);
    assert.equal(d.classes[9], "truck");
    assert.equal(cifarImage(d, 1).data[0], px.data[3072]);
  }
  assert.equal((await readCifarTarGz("cifar10", archive, "train")).sourceOf(3), "data_batch_2.bin#1");
  assert.deepEqual(await detectImageDataset(archive), { format: "cifar10", archive });
});

test("CIFAR-10/100 folders: planes to HWC, coarse+fine labels, detection, validation errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // One record per batch: label b, red plane = pixel index % 256, green = 7, blue = 200 + b.
    const record = (labels: number[], b: number) => {
      const r = new Uint8Array(labels.length + 3072);
      r.set(labels);
      for (let p = 0; p < 1024; p++) {
        r[labels.length + p] = p % 256;
        r[labels.length + 1024 + p] = 7;
        r[labels.length + 2048 + p] = 200 + b;
      }
      return r;
    };
    const c10 = `${dir}/c10/cifar-10-batches-bin`;
    for (let b = 1; b <= 5; b++) await write(`${c10}/data_batch_${b}.bin`, record([b], b));
    await write(`${c10}/test_batch.bin`, record([9], 0));
    await write(`${c10}/batches.meta.txt`, "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n");
    const d = await readCifarFolder("cifar10", c10, "train");
    assert.deepEqual(Array.from(d.labels), [1, 2, 3, 4, 5]);
    const img = cifarImage(d, 2);
    assert.deepEqual(Array.from(img.data.subarray(3 * 33, 3 * 34)), [33, 7, 203]); // pixel (1, 1), batch 3
    assert.deepEqual(await detectImageDataset(`${dir}/c10`), { format: "cifar10", dir: c10 });
    assert.deepEqual(await detectImageDataset(c10), { format: "cifar10", dir: c10 });

    const c100 = `${dir}/c100/cifar-100-binary`;
    await write(`${c100}/train.bin`, new Uint8Array([...record([3, 42], 0), ...record([19, 99], 1)]));
    await write(`${c100}/test.bin`, record([0, 0], 2));
    await write(`${c100}/fine_label_names.txt`, Array.from({ length: 100 }, (_, i) => `f${i}`).join("\n"));
    await write(`${c100}/coarse_label_names.txt`, Array.from({ length: 20 }, (_, i) => `c${i}`).join("\n"));
    const e = await readCifarFolder("cifar100", c100, "train");
    assert.deepEqual(Array.from(e.labels), [42, 99]);
    assert.deepEqual(Array.from(e.coarseLabels!), [3, 19]);
    assert.equal(e.classes[99], "f99");
    assert.equal(e.coarseClasses![3], "c3");
    assert.deepEqual(await detectImageDataset(c100), { format: "cifar100", dir: c100 });

    // The same files through our tar writer + gzip read identically.
    const files: Record<string, Uint8Array> = {};
    for await (const f of Deno.readDir(c100)) {
      files[`cifar-100-binary/${f.name}`] = Deno.readFileSync(`${c100}/${f.name}`);
    }
    await write(`${dir}/dl/cifar-100-binary.tar.gz`, gzipSync(tar(files)));
    const t = await readCifarTarGz("cifar100", `${dir}/dl/cifar-100-binary.tar.gz`, "train");
    assert.deepEqual(t.pixels, e.pixels);
    assert.deepEqual(await detectImageDataset(`${dir}/dl`), {
      format: "cifar100",
      archive: `${dir}/dl/cifar-100-binary.tar.gz`,
    });

    // Validation: each error is one line naming the file.
    await write(`${c10}/data_batch_3.bin`, record([3], 3).subarray(0, 3000));
    await assertRejectsMsg(() => readCifarFolder("cifar10", c10, "train"), "data_batch_3.bin", "3073-byte");
    await write(`${c10}/data_batch_3.bin`, record([10], 3));
    await assertRejectsMsg(() => readCifarFolder("cifar10", c10, "train"), "data_batch_3.bin", "label 10");
    await Deno.remove(`${c10}/data_batch_3.bin`);
    await assertRejectsMsg(() => readCifarFolder("cifar10", c10, "train"), "data_batch_3.bin", "not found");
    await write(`${c10}/batches.meta.txt`, "a\nb\n");
    await assertRejectsMsg(() => readCifarFolder("cifar10", c10, "val"), "batches.meta.txt", "expected 10");
    const badTar = tar(files);
    badTar[10] ^= 1;
    await write(`${dir}/bad/cifar-100-binary.tar.gz`, gzipSync(badTar));
    await assertRejectsMsg(
      () => readCifarTarGz("cifar100", `${dir}/bad/cifar-100-binary.tar.gz`, "train"),
      "checksum",
    );
    const gz = gzipSync(tar(files));
    await write(`${dir}/cut/cifar-100-binary.tar.gz`, gz.subarray(0, gz.length - 100));
    await assertRejectsMsg(
      () => readCifarTarGz("cifar100", `${dir}/cut/cifar-100-binary.tar.gz`, "val"),
      "cut/",
      "gzip",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("tar reader: long names via GNU 'L' entries, truncation is an error", () => {
  const long = "d/" + "x".repeat(120) + ".bin";
  const h = tar({ "././@LongLink": new TextEncoder().encode(long + "\0"), short: new Uint8Array([1, 2, 3]) });
  h[156] = "L".charCodeAt(0); // turn the first entry into a GNU long-name header; fix its checksum
  h.set(new TextEncoder().encode("        "), 148);
  h.set(
    new TextEncoder().encode(
      h.subarray(0, 512).reduce((a, b) => a + b, 0).toString(8).padStart(6, "0") + "\0 ",
    ),
    148,
  );
  const entries = readTar(h, "t.tar");
  assert.deepEqual(entries.map((e) => e.name), [long]);
  assert.deepEqual(Array.from(entries[0].data), [1, 2, 3]);
  let err: Error | undefined;
  try {
    readTar(h.subarray(0, 1100), "t.tar");
  } catch (e) {
    err = e as Error;
  }
  assert.ok(err?.message.startsWith("t.tar: truncated tar"), String(err));
});

test("format detection: IDX files, and a clear error for an unknown folder", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assertRejectsMsg(() => detectImageDataset(dir), dir, "no dataset found");
    await assertRejectsMsg(() => detectImageDataset(`${dir}/nope`), "nope", "not found");
    await write(`${dir}/train-images-idx3-ubyte.gz`, new Uint8Array(4));
    assert.deepEqual(await detectImageDataset(dir), { format: "idx", dir });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
