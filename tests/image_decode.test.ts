import { assert, assertRejectsMsg, test } from "./testing.ts";
import { decodeImage, ImageDecodeError } from "../data/image/decode.ts";
import { IMAGE_FIXTURES, loadImageReference } from "./image_reference.ts";

const { tensors, cases } = loadImageReference();

test("image decode: every JPEG and PNG fixture matches Pillow's pixels exactly", async () => {
  let checked = 0;
  for (const c of cases) {
    if (c.no_decode_ref) continue;
    const ref = tensors.get(`decode/${c.file}`)!;
    const img = await decodeImage(Deno.readFileSync(IMAGE_FIXTURES + c.file), c.file);
    const [h, w, ch] = ref.shape;
    assert.deepEqual([img.height, img.width, img.channels], [h, w, ch], c.file);
    let differing = 0, maxDiff = 0;
    for (let i = 0; i < ref.data.length; i++) {
      const d = Math.abs(img.data[i] - ref.data[i]);
      if (d) differing++;
      maxDiff = Math.max(maxDiff, d);
    }
    assert.equal(differing, 0, `${c.file} (${c.pil_mode}): ${differing} samples differ, max ${maxDiff}`);
    checked++;
  }
  // 12 JPEG modes and 21 PNG color types/depths/interlacings; a reference set that shrank would hide gaps.
  assert.ok(checked >= 33, `only ${checked} reference images`);
});

test("image decode: the fixtures cover every mode the decoder promises", () => {
  const pngs = cases.filter((c) => c.file.endsWith(".png"));
  for (const ct of [0, 2, 3, 4, 6]) assert.ok(pngs.some((c) => c.color_type === ct), `PNG color type ${ct}`);
  for (const d of [1, 2, 4, 8, 16]) assert.ok(pngs.some((c) => c.bit_depth === d), `PNG bit depth ${d}`);
  assert.ok(pngs.filter((c) => (c as { interlace?: number }).interlace === 1).length >= 3, "interlaced PNGs");
  const modes = cases.map((c) => (c as { cjpeg?: string }).cjpeg ?? "").join(" ");
  for (const m of ["-progressive", "-sample 1x1", "-sample 2x1", "-grayscale", "-restart 1", "-optimize"]) {
    assert.ok(modes.includes(m), `JPEG mode ${m}`);
  }
});

test("image decode: CMYK JPEG is refused with a clear message naming the file", async () => {
  const bytes = Deno.readFileSync(IMAGE_FIXTURES + "jpeg/cmyk.jpg");
  await assertRejectsMsg(() => decodeImage(bytes, "cmyk.jpg"), "cmyk.jpg", "CMYK");
});

test("image decode: truncated, corrupt and unknown files give one ImageDecodeError naming the file", async () => {
  const jpg = Deno.readFileSync(IMAGE_FIXTURES + "jpeg/coffee_420.jpg");
  const png = Deno.readFileSync(IMAGE_FIXTURES + "png/rgb8.png");
  const corrupt = jpg.slice();
  for (let i = 400; i < 700; i++) corrupt[i] = (corrupt[i] * 7 + 3) & 255;
  const badCrc = png.slice();
  badCrc[png.length - 30] ^= 0x55; // inside IDAT: its zlib stream or CRC no longer checks
  const cases: [string, Uint8Array, string][] = [
    ["half.jpg", jpg.subarray(0, jpg.length >> 1), "truncated"],
    ["header_only.jpg", jpg.subarray(0, 100), "half"],
    ["garbled.jpg", corrupt, "corrupt"],
    ["half.png", png.subarray(0, png.length >> 1), "PNG"],
    ["bad_idat.png", badCrc, "PNG"],
    ["tiny.png", png.subarray(0, 20), "PNG"],
    ["notes.txt.jpg", new TextEncoder().encode("hello, not an image"), "not a JPEG or PNG"],
  ];
  for (const [name, bytes, fragment] of cases) {
    let err: unknown;
    try {
      await decodeImage(bytes, name);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ImageDecodeError, `${name}: expected ImageDecodeError, got ${err}`);
    const msg = (err as Error).message;
    assert.ok(msg.startsWith(`${name}: `) && !msg.includes("\n"), `${name}: ${msg}`);
    if (fragment !== "half") assert.ok(msg.includes(fragment), `${name}: '${msg}' lacks '${fragment}'`);
  }
  // The decoders still work after failures (the WASM modules survive libjpeg's exit() and Rust errors).
  const ok = await decodeImage(jpg, "coffee_420.jpg");
  assert.equal(ok.width, 64);
});
