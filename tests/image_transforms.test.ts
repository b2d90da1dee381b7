import { assert, test } from "./testing.ts";
import { decodeImage } from "../data/image/decode.ts";
import {
  evalTransform,
  IMAGENET_MEAN,
  IMAGENET_STD,
  normalizeToChw,
  resizeBicubic,
  resizeCenterCrop,
} from "../data/image/transforms.ts";
import { IMAGE_FIXTURES, loadImageReference } from "./image_reference.ts";

const { tensors } = loadImageReference();

test("eval transform: resize (bicubic) + center crop matches Pillow's uint8 output exactly", async () => {
  let checked = 0, shrink = 0, grow = 0;
  for (const [key, ref] of tensors) {
    if (!key.startsWith("eval/")) continue;
    const [, ...rest] = key.split("/");
    const cropPct = Number(rest.pop()), imgSize = Number(rest.pop()), file = rest.join("/");
    const img = await decodeImage(Deno.readFileSync(IMAGE_FIXTURES + file), file);
    const out = resizeCenterCrop(img, imgSize, cropPct);
    assert.deepEqual([out.height, out.width, out.channels], ref.shape, key);
    let differing = 0, maxDiff = 0;
    for (let i = 0; i < ref.data.length; i++) {
      const d = Math.abs(out.data[i] - ref.data[i]);
      if (d) differing++;
      maxDiff = Math.max(maxDiff, d);
    }
    assert.equal(differing, 0, `${key}: ${differing} samples differ, max ${maxDiff}`);
    const short = Math.min(img.width, img.height), target = Math.trunc(imgSize / cropPct);
    if (target < short) shrink++;
    if (target > short) grow++;
    checked++;
  }
  // 8 small images x 5 sizes, and the 500x375 photo to 224 (crop_pct 0.875): both directions covered.
  assert.ok(checked >= 41 && shrink >= 10 && grow >= 10, `${checked} cases, ${shrink} shrink, ${grow} grow`);
});

test("eval transform: a windowed resize equals the crop of the full resize; same size is a plain crop", async () => {
  const img = await decodeImage(Deno.readFileSync(IMAGE_FIXTURES + "jpeg/cat_444.jpg"), "cat_444.jpg");
  for (const [w, h] of [[90, 60], [30, 20], [61, 30], [40, 41]]) {
    const full = resizeBicubic(img, w, h);
    const win = { x0: 3, y0: 2, w: Math.min(17, w - 3), h: Math.min(11, h - 2) };
    const part = resizeBicubic(img, w, h, win);
    for (let y = 0; y < win.h; y++) {
      for (let x = 0; x < win.w * 3; x++) {
        assert.equal(
          part.data[y * win.w * 3 + x],
          full.data[((y + win.y0) * w + win.x0) * 3 + x],
          `${w}x${h}`,
        );
      }
    }
  }
  const same = resizeCenterCrop(img, 41, 1.0); // short side already 41: torchvision does not resample
  assert.equal(same.data[0], img.data[10 * 3]); // (61 - 41) / 2 = 10 columns cut on the left
});

test("eval transform: ToTensor + Normalize in float32 with torch's rounding, gray replicated", () => {
  const img = { width: 2, height: 1, channels: 1 as const, data: new Uint8Array([0, 255]) };
  const out = normalizeToChw(img);
  assert.equal(out.length, 6);
  for (let c = 0; c < 3; c++) {
    const m = Math.fround(IMAGENET_MEAN[c]), s = Math.fround(IMAGENET_STD[c]);
    assert.equal(out[c * 2], Math.fround(Math.fround(0 - m) / s));
    assert.equal(out[c * 2 + 1], Math.fround(Math.fround(1 - m) / s));
  }
  // Known values: (0 - 0.485) / 0.229 and (1 - 0.406) / 0.225 in float32.
  assert.ok(Math.abs(out[0] - -2.117904) < 1e-6 && Math.abs(out[5] - 2.64) < 1e-6);
  const rgb = { width: 1, height: 1, channels: 3 as const, data: new Uint8Array([10, 128, 250]) };
  const t = evalTransform(rgb, { imgSize: 1, cropPct: 1, mean: [0.5, 0.5, 0.5], std: [0.5, 0.25, 2] });
  assert.deepEqual(
    Array.from(t),
    [10, 128, 250].map((v, c) => Math.fround(Math.fround(Math.fround(v / 255) - 0.5) / [0.5, 0.25, 2][c])),
  );
});
