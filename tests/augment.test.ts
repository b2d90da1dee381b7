// Tests of the training transform (data/image/augment.ts): every RandAugment op, the resized crop and
// the flip against Pillow's bytes (tests/fixtures/augment, made by gen_augment.py with Debian's
// python3-pil on a real photo); RandAugment's config parsing and op statistics; RandomResizedCrop's
// and RandomErasing's parameters; the whole transform's shape, determinism and normalization.
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { Rng } from "../compiler/core/random.ts";
import type { DecodedImage } from "../data/image/decode.ts";
import {
  autoContrast,
  brightness,
  color,
  contrast,
  equalize,
  hflip,
  invert,
  parseRandAugment,
  posterize,
  RAND_INCREASING_OPS,
  randAugment,
  randomErasing,
  randomResizedCropParams,
  type Resample,
  resizedCrop,
  rotate,
  sharpness,
  shearX,
  shearY,
  solarize,
  solarizeAdd,
  trainTransform,
  translateXRel,
  translateYRel,
} from "../data/image/augment.ts";

const DIR = new URL("./fixtures/augment/", import.meta.url);
const meta = JSON.parse(Deno.readTextFileSync(new URL("cases.json", DIR))) as {
  width: number;
  height: number;
  cases: { name: string; op: string; args: (number | string)[]; offset: number; size: [number, number] }[];
};
const outputs = Deno.readFileSync(new URL("outputs.bin", DIR));
const input: DecodedImage = {
  width: meta.width,
  height: meta.height,
  channels: 3,
  data: Deno.readFileSync(new URL("input.rgb", DIR)),
};
const FILL = [124, 116, 104];

// deno-lint-ignore no-explicit-any
const OPS: Record<string, (img: DecodedImage, ...a: any[]) => DecodedImage> = {
  AutoContrast: autoContrast,
  Equalize: equalize,
  Invert: invert,
  Posterize: posterize,
  Solarize: solarize,
  SolarizeAdd: solarizeAdd,
  Color: color,
  Contrast: contrast,
  Brightness: brightness,
  Sharpness: sharpness,
  Rotate: (img, d: number, r: Resample) => rotate(img, d, r, FILL),
  ShearX: (img, f: number, r: Resample) => shearX(img, f, r, FILL),
  ShearY: (img, f: number, r: Resample) => shearY(img, f, r, FILL),
  TranslateXRel: (img, p: number, r: Resample) => translateXRel(img, p, r, FILL),
  TranslateYRel: (img, p: number, r: Resample) => translateYRel(img, p, r, FILL),
  ResizedCrop: (img, top: number, left: number, height: number, width: number, size: number) =>
    resizedCrop(img, { top, left, height, width }, size),
  HFlip: hflip,
};

test("augment: every op equals Pillow's bytes on a real photo", async (t) => {
  assert.ok(meta.cases.length >= 50, "the fixture covers the ops");
  for (const c of meta.cases) {
    await t.step(c.name, () => {
      const got = OPS[c.op](input, ...c.args);
      const [w, h] = c.size;
      assert.equal(got.width, w);
      assert.equal(got.height, h);
      const want = outputs.subarray(c.offset, c.offset + w * h * 3);
      let diff = 0, first = -1;
      for (let i = 0; i < want.length; i++) {
        if (got.data[i] !== want[i]) {
          diff++;
          if (first < 0) first = i;
        }
      }
      assert.equal(diff, 0, `${diff} bytes differ, first at ${first}: ${got.data[first]} vs ${want[first]}`);
      // the op did something (except the identity factor 1.0)
      if (!(c.args[0] === 1 && c.args.length === 1)) {
        assert.ok(want.some((v, i) => v !== input.data[i]) || c.op === "ResizedCrop", "op changes the image");
      }
    });
  }
});

test("augment: RandAugment config and op statistics", () => {
  const cfg = parseRandAugment("rand-m9-mstd0.5-inc1");
  assert.equal(cfg.magnitude, 9);
  assert.equal(cfg.magnitudeStd, 0.5);
  assert.equal(cfg.numLayers, 2);
  assert.equal(cfg.prob, 0.5);
  assert.deepEqual(cfg.ops, RAND_INCREASING_OPS);
  assert.equal(RAND_INCREASING_OPS.length, 15);
  assert.equal(parseRandAugment("rand-m7-n3-p1-inc1").numLayers, 3);
  assertThrowsMsg(() => parseRandAugment("rand-m9"), "inc1");
  assertThrowsMsg(() => parseRandAugment("augmix-m9"), "rand");
  assertThrowsMsg(() => parseRandAugment("rand-q9-inc1"), "q9");
  // with p = 0.5 and 2 layers, an image is left untouched with probability ≈ 1/4 (or by no-op draws)
  const rng = new Rng(3);
  let same = 0;
  const n = 300;
  for (let i = 0; i < n; i++) {
    const out = randAugment(input, cfg, rng);
    if (out.data.every((v, k) => v === input.data[k])) same++;
  }
  assert.ok(same / n > 0.18 && same / n < 0.35, `untouched fraction ${same / n}`);
  // deterministic per seed
  const a = randAugment(input, cfg, new Rng(11)), b = randAugment(input, cfg, new Rng(11));
  assert.deepEqual(a.data, b.data);
});

test("augment: RandomResizedCrop parameters (scale, ratio, inside) and fallback", () => {
  const rng = new Rng(5);
  for (let i = 0; i < 500; i++) {
    const c = randomResizedCropParams(200, 100, rng);
    assert.ok(c.top >= 0 && c.left >= 0 && c.top + c.height <= 100 && c.left + c.width <= 200, "inside");
    const area = (c.width * c.height) / 20000, ratio = c.width / c.height;
    // rounding of w and h moves area and ratio a little off the sampled ranges on small crops
    assert.ok(area > 0.06 && area <= 1, `area ${area}`);
    assert.ok(ratio > 0.6 && ratio < 1.6, `ratio ${ratio}`);
  }
  // no sample fits a 1000×10 strip (ratio 100): central crop of ratio 4/3 → h 10, w round(13.33) = 13
  assert.deepEqual(randomResizedCropParams(1000, 10, new Rng(1), [0.9, 1]), {
    top: 0,
    left: 493,
    height: 10,
    width: 13,
  });
});

test("augment: random erasing (pixel mode) replaces one box with N(0, 1) values", () => {
  const [c, h, w] = [3, 32, 32];
  let erased = 0, total = 0;
  const rng = new Rng(9);
  for (let k = 0; k < 400; k++) {
    const x = new Float32Array(c * h * w).fill(7);
    const did = randomErasing(x, c, h, w, 0.25, rng);
    erased += did ? 1 : 0;
    const changed = x.reduce((s, v) => s + (v !== 7 ? 1 : 0), 0);
    assert.equal(did, changed > 0, "erased iff the tensor changed");
    if (did) {
      total += changed / (c * h * w);
      assert.ok(
        changed / (c * h * w) >= 0.015 && changed / (c * h * w) <= 0.36,
        `area ${changed / (c * h * w)}`,
      );
    }
  }
  assert.ok(Math.abs(erased / 400 - 0.25) < 0.07, `erasing rate ${erased / 400}`);
  assert.ok(total / erased > 0.1 && total / erased < 0.25, `mean area ${total / erased} (uniform 0.02–1/3)`);
});

test("augment: train transform shape, determinism, normalized range", () => {
  const big: DecodedImage = { ...input };
  const a = trainTransform(big, { imgSize: 24 }, new Rng(1));
  const b = trainTransform(big, { imgSize: 24 }, new Rng(1));
  const c = trainTransform(big, { imgSize: 24 }, new Rng(2));
  assert.equal(a.length, 3 * 24 * 24);
  assert.deepEqual(a, b);
  assert.ok(a.some((v, i) => v !== c[i]), "another seed, another sample");
  // without augmentation, erasing and flip: crop + resize + normalize only
  const plain = trainTransform(
    big,
    { imgSize: 24, autoAugment: "", colorJitter: 0, reprob: 0, hflip: 0 },
    new Rng(4),
  );
  for (const v of plain) assert.ok(v >= -2.2 && v <= 2.7, `normalized value ${v}`);
  assertThrowsMsg(() => trainTransform({ ...input, channels: 1 }, { imgSize: 8 }, new Rng(1)), "RGB");
});
