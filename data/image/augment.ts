// The training transform of timm / DeiT (timm.data.create_transform(is_training=True)) on 8-bit RGB
// images, with Pillow's arithmetic so each op gives Pillow's bytes:
//
//   RandomResizedCropAndInterpolation(img, scale 0.08–1, ratio 3/4–4/3, bicubic)
//   → RandomHorizontalFlip(0.5) → RandAugment("rand-m9-mstd0.5-inc1") — or, without RandAugment,
//   ColorJitter(0.4) (timm turns color jitter off when an auto-augment policy is given) → ToTensor,
//   Normalize → RandomErasing(0.25, mode "pixel") on the normalized tensor.
//
// RandAugment "rand-m9-mstd0.5-inc1" (timm/data/auto_augment.py): 2 ops per image drawn uniformly with
// replacement from timm's 15 "increasing" ops, each applied with probability 0.5, magnitude
// ~ N(9, 0.5²) clipped to [0, 10]. Geometric ops use bicubic resampling and fill with the ImageNet mean
// in bytes (124, 116, 104), as create_transform passes them (img_mean, interpolation).
//
// Pillow references: ImageOps (autocontrast, equalize, invert, posterize, solarize), Image.point
// (solarize_add), ImageEnhance (Color, Contrast, Brightness, Sharpness = Image.blend with a degenerate
// image: float32 blend, truncated), Image.transform(AFFINE, BICUBIC) (libImaging/Geometry.c: the
// generic transform with the a = −1 bicubic of 4×4 source pixels), Image.rotate. The random draws come
// from a seeded Rng, not Python's `random` stream: same distributions, reproducible per seed.

import type { Rng } from "../../compiler/core/random.ts";
import type { DecodedImage } from "./decode.ts";
import { IMAGENET_MEAN, IMAGENET_STD, normalizeToChw, resizeBicubic } from "./transforms.ts";

const clamp8 = (v: number) => (v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v));

/** A copy of img with every sample mapped through `lut` (256 entries, or 256 per channel). */
export function point(img: DecodedImage, lut: ArrayLike<number>): DecodedImage {
  const d = img.data, n = d.length, c = img.channels, out = new Uint8Array(n);
  // one typed table, and no `i % channels` per sample: the loop runs once per image per op
  const t = Uint8Array.from(lut);
  if (t.length === 256) {
    for (let i = 0; i < n; i++) out[i] = t[d[i]];
  } else if (c === 3) {
    for (let i = 0; i < n; i += 3) {
      out[i] = t[d[i]];
      out[i + 1] = t[256 + d[i + 1]];
      out[i + 2] = t[512 + d[i + 2]];
    }
  } else {
    for (let i = 0; i < n; i++) out[i] = t[(i % c) * 256 + d[i]];
  }
  return { ...img, data: out };
}

/** Per-channel 256-bin histograms. */
function histograms(img: DecodedImage): Int32Array[] {
  const c = img.channels, d = img.data, all = new Int32Array(256 * c);
  if (c === 3) {
    for (let i = 0; i < d.length; i += 3) {
      all[d[i]]++;
      all[256 + d[i + 1]]++;
      all[512 + d[i + 2]]++;
    }
  } else {
    for (let i = 0; i < d.length; i++) all[(i % c) * 256 + d[i]]++;
  }
  return Array.from({ length: c }, (_, k) => all.subarray(k * 256, (k + 1) * 256));
}

/** ImageOps.autocontrast(img) (cutoff 0): each channel stretched from [lo, hi] to [0, 255]. */
export function autoContrast(img: DecodedImage): DecodedImage {
  const lut: number[] = [];
  for (const h of histograms(img)) {
    let lo = 0, hi = 255;
    while (lo < 255 && !h[lo]) lo++;
    while (hi > 0 && !h[hi]) hi--;
    if (hi <= lo) {
      for (let i = 0; i < 256; i++) lut.push(i);
      continue;
    }
    const scale = 255 / (hi - lo), offset = -lo * scale;
    for (let i = 0; i < 256; i++) lut.push(Math.min(255, Math.max(0, Math.trunc(i * scale + offset))));
  }
  return point(img, lut);
}

/** ImageOps.equalize(img): per-channel histogram equalisation, Pillow's step rule. */
export function equalize(img: DecodedImage): DecodedImage {
  const lut: number[] = [];
  for (const h of histograms(img)) {
    const used = h.filter((v) => v);
    const step = used.length <= 1
      ? 0
      : Math.floor((used.reduce((a, b) => a + b, 0) - used[used.length - 1]) / 255);
    if (!step) {
      for (let i = 0; i < 256; i++) lut.push(i);
      continue;
    }
    let n = Math.floor(step / 2);
    for (let i = 0; i < 256; i++) {
      lut.push(Math.min(255, Math.floor(n / step)));
      n += h[i];
    }
  }
  return point(img, lut);
}

const lut256 = (f: (i: number) => number) => Array.from({ length: 256 }, (_, i) => f(i));

/** ImageOps.invert. */
export const invert = (img: DecodedImage): DecodedImage => point(img, lut256((i) => 255 - i));
/** ImageOps.posterize(img, bits) (timm skips it for bits >= 8). */
export const posterize = (img: DecodedImage, bits: number): DecodedImage =>
  bits >= 8 ? img : point(img, lut256((i) => i & ~(2 ** (8 - bits) - 1) & 255));
/** ImageOps.solarize(img, threshold): samples >= threshold inverted. */
export const solarize = (img: DecodedImage, thresh: number): DecodedImage =>
  point(img, lut256((i) => (i < thresh ? i : 255 - i)));
/** timm's solarize_add: add to samples below `thresh` (default 128), clipped at 255. */
export const solarizeAdd = (img: DecodedImage, add: number, thresh = 128): DecodedImage =>
  point(img, lut256((i) => (i < thresh ? Math.min(255, i + add) : i)));

/** Pillow's RGB → L: (19595 R + 38470 G + 7471 B + 0x8000) >> 16. */
function luma(img: DecodedImage): Uint8Array {
  const n = img.width * img.height, out = new Uint8Array(n), d = img.data;
  if (img.channels === 1) return d.slice();
  for (let p = 0; p < n; p++) {
    out[p] = (d[3 * p] * 19595 + d[3 * p + 1] * 38470 + d[3 * p + 2] * 7471 + 0x8000) >> 16;
  }
  return out;
}

/** Image.blend(a, b, alpha) (libImaging/Blend.c): a + alpha·(b − a) in float32, truncated, clipped. */
export function blend(a: Uint8Array, b: Uint8Array, alpha: number): Uint8Array {
  if (alpha === 0) return a.slice();
  if (alpha === 1) return b.slice();
  const f = Math.fround(alpha), out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = clamp8(Math.fround(a[i] + Math.fround(f * (b[i] - a[i]))));
  return out;
}

/**
 * blend(a constant image of value `a`, img, f) as a table over the 256 sample values (the same float32
 * arithmetic as blend, computed once per value instead of once per sample).
 */
function blendConstant(img: DecodedImage, a: number, f: number): DecodedImage {
  const ff = Math.fround(f), lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) {
    lut[v] = f === 0 ? a : f === 1 ? v : clamp8(Math.fround(a + Math.fround(ff * (v - a))));
  }
  return point(img, lut);
}

/** ImageEnhance.Color(img).enhance(f): blend with the grayscale (L, back to RGB) image. */
export function color(img: DecodedImage, f: number): DecodedImage {
  if (img.channels === 1) return { ...img, data: img.data.slice() }; // the gray image is the image itself
  const d = img.data, n = img.width * img.height, out = new Uint8Array(d.length);
  if (f === 0 || f === 1) { // blend's exact copies of either image
    for (let p = 0; p < n; p++) {
      const l = (d[3 * p] * 19595 + d[3 * p + 1] * 38470 + d[3 * p + 2] * 7471 + 0x8000) >> 16;
      for (let k = 3 * p; k < 3 * p + 3; k++) out[k] = f === 0 ? l : d[k];
    }
    return { ...img, data: out };
  }
  const ff = Math.fround(f);
  // blend(L replicated, img, f) fused with the L conversion: no gray or replicated image in memory
  for (let p = 0, i = 0; p < n; p++, i += 3) {
    const r = d[i], g = d[i + 1], b = d[i + 2];
    const l = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
    out[i] = clamp8(Math.fround(l + Math.fround(ff * (r - l))));
    out[i + 1] = clamp8(Math.fround(l + Math.fround(ff * (g - l))));
    out[i + 2] = clamp8(Math.fround(l + Math.fround(ff * (b - l))));
  }
  return { ...img, data: out };
}

/** ImageEnhance.Contrast(img).enhance(f): blend with the mean gray level int(mean(L) + 0.5). */
export function contrast(img: DecodedImage, f: number): DecodedImage {
  const l = luma(img);
  let s = 0;
  for (let p = 0; p < l.length; p++) s += l[p];
  return blendConstant(img, Math.trunc(s / l.length + 0.5), f);
}

/** ImageEnhance.Brightness(img).enhance(f): blend with black. */
export const brightness = (img: DecodedImage, f: number): DecodedImage => blendConstant(img, 0, f);

// SMOOTH's taps as float32 products v·(1/13) and v·(5/13) for every byte v (Filter.c multiplies in float).
const K1 = Math.fround(1 / 13), K5 = Math.fround(5 / 13);
const TAP1 = Float64Array.from({ length: 256 }, (_, v) => Math.fround(v * K1));
const TAP5 = Float64Array.from({ length: 256 }, (_, v) => Math.fround(v * K5));

/** ImageFilter.SMOOTH (3×3 [1 1 1; 1 5 1; 1 1 1] / 13) as libImaging/Filter.c: float32 sums, border kept. */
export function smooth(img: DecodedImage): DecodedImage {
  const { width: w, height: h, channels: c, data } = img;
  const out = data.slice();
  if (w < 3 || h < 3) return { ...img, data: out };
  const fr = Math.fround, half = fr(0.5), row = w * c;
  for (let y = 1; y < h - 1; y++) {
    for (let i = y * row + c, end = y * row + row - c; i < end; i++) {
      // rows y+1, y, y-1 in Filter.c's order; each row sums its three products left to right
      const b = i + row, m = i, t = i - row;
      const rb = fr(fr(TAP1[data[b - c]] + TAP1[data[b]]) + TAP1[data[b + c]]);
      const rm = fr(fr(TAP1[data[m - c]] + TAP5[data[m]]) + TAP1[data[m + c]]);
      const rt = fr(fr(TAP1[data[t - c]] + TAP1[data[t]]) + TAP1[data[t + c]]);
      out[i] = clamp8(fr(fr(fr(half + rb) + rm) + rt));
    }
  }
  return { ...img, data: out };
}

/** ImageEnhance.Sharpness(img).enhance(f): blend with the SMOOTH-filtered image. */
export const sharpness = (img: DecodedImage, f: number): DecodedImage => ({
  ...img,
  data: blend(smooth(img).data, img.data, f),
});

/** Interpolation of the geometric ops. */
export type Resample = "nearest" | "bilinear" | "bicubic";

/** The a = −1 cubic of libImaging/Geometry.c (BICUBIC macro). */
function cubic(v1: number, v2: number, v3: number, v4: number, d: number): number {
  const p1 = v2, p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
  return p1 + d * (p2 + d * (p3 + d * p4));
}

/**
 * Image.transform(size, AFFINE, (a, b, c, d, e, f), resample, fillcolor): output pixel (x, y) samples
 * the input at (a·(x+½) + b·(y+½) + c, d·(x+½) + e·(y+½) + f); outside the input it keeps `fill`.
 */
export function affine(
  img: DecodedImage,
  m: readonly number[],
  resample: Resample,
  fill: readonly number[],
): DecodedImage {
  const { width: w, height: h, channels: c, data } = img;
  const out = new Uint8Array(data.length);
  for (let p = 0; p < w * h; p++) for (let ch = 0; ch < c; ch++) out[p * c + ch] = fill[ch];
  const [m0, m1, m2, m3, m4, m5] = m;
  const rowBytes = w * c;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * c;
      let xin = m0 * (x + 0.5) + m1 * (y + 0.5) + m2;
      let yin = m3 * (x + 0.5) + m4 * (y + 0.5) + m5;
      if (resample === "nearest") {
        // Pillow takes the fixed-point or float nearest path; both floor the sample position
        const xi = xin < 0 ? -1 : Math.trunc(xin), yi = yin < 0 ? -1 : Math.trunc(yin);
        if (xi < 0 || xi >= w || yi < 0 || yi >= h) continue;
        for (let ch = 0; ch < c; ch++) out[o + ch] = data[(yi * w + xi) * c + ch];
        continue;
      }
      if (xin < 0 || xin >= w || yin < 0 || yin >= h) continue;
      xin -= 0.5;
      yin -= 0.5;
      const x0 = Math.floor(xin), y0 = Math.floor(yin), dx = xin - x0, dy = yin - y0;
      if (resample === "bilinear") {
        const xa = (x0 < 0 ? 0 : x0 < w ? x0 : w - 1) * c, xb = (x0 + 1 < w ? x0 + 1 : w - 1) * c;
        const ra = (y0 < 0 ? 0 : y0 < h ? y0 : h - 1) * rowBytes;
        const rb = y0 + 1 >= 0 && y0 + 1 < h ? (y0 + 1) * rowBytes : -1;
        for (let ch = 0; ch < c; ch++) {
          const a0 = data[ra + xa + ch], a1 = data[ra + xb + ch];
          const v1 = a0 + (a1 - a0) * dx;
          let v2 = v1;
          if (rb >= 0) {
            const b0 = data[rb + xa + ch], b1 = data[rb + xb + ch];
            v2 = b0 + (b1 - b0) * dx;
          }
          out[o + ch] = Math.trunc(v1 + (v2 - v1) * dy); // (UINT8) of a value within [0, 255]
        }
        continue;
      }
      // Geometry.c's BICUBIC: columns clamped into the image; a row outside it repeats the row before
      const xs = x0 - 1, ys = y0 - 1;
      const c0 = (xs < 0 ? 0 : xs < w ? xs : w - 1) * c,
        c1 = (xs + 1 < 0 ? 0 : xs + 1 < w ? xs + 1 : w - 1) * c;
      const c2 = (xs + 2 < w ? xs + 2 : w - 1) * c, c3 = (xs + 3 < w ? xs + 3 : w - 1) * c; // xs >= -2
      const r0 = (ys < 0 ? 0 : ys < h ? ys : h - 1) * rowBytes;
      const r1 = ys + 1 >= 0 && ys + 1 < h ? (ys + 1) * rowBytes : r0;
      const r2 = ys + 2 >= 0 && ys + 2 < h ? (ys + 2) * rowBytes : r1;
      const r3 = ys + 3 >= 0 && ys + 3 < h ? (ys + 3) * rowBytes : r2;
      for (let ch = 0; ch < c; ch++) {
        const v1 = cubic(data[r0 + ch + c0], data[r0 + ch + c1], data[r0 + ch + c2], data[r0 + ch + c3], dx);
        const v2 = cubic(data[r1 + ch + c0], data[r1 + ch + c1], data[r1 + ch + c2], data[r1 + ch + c3], dx);
        const v3 = cubic(data[r2 + ch + c0], data[r2 + ch + c1], data[r2 + ch + c2], data[r2 + ch + c3], dx);
        const v4 = cubic(data[r3 + ch + c0], data[r3 + ch + c1], data[r3 + ch + c2], data[r3 + ch + c3], dx);
        out[o + ch] = clamp8(cubic(v1, v2, v3, v4, dy));
      }
    }
  }
  return { ...img, data: out };
}

/** Python's round(x, 15), as Image.rotate rounds its matrix. */
const round15 = (x: number) => Number(x.toFixed(15));

/** Image.rotate(degrees, resample, fillcolor) without expand: about the centre, counter-clockwise. */
export function rotate(
  img: DecodedImage,
  degrees: number,
  resample: Resample,
  fill: readonly number[],
): DecodedImage {
  const angle = ((degrees % 360) + 360) % 360;
  const { width: w, height: h } = img;
  if (angle === 0) return { ...img, data: img.data.slice() };
  const a = -(angle * Math.PI) / 180;
  const m = [round15(Math.cos(a)), round15(Math.sin(a)), 0, round15(-Math.sin(a)), round15(Math.cos(a)), 0];
  const [cx, cy] = [w / 2, h / 2];
  m[2] = m[0] * -cx + m[1] * -cy + cx;
  m[5] = m[3] * -cx + m[4] * -cy + cy;
  // Pillow transposes exactly for 180° (and 90/270° on squares); the affine path agrees except on rounding
  return affine(img, m, resample, fill);
}

/** timm's shear_x / shear_y / translate_x_rel / translate_y_rel as Image.transform(AFFINE). */
export const shearX = (img: DecodedImage, f: number, r: Resample, fill: readonly number[]): DecodedImage =>
  affine(img, [1, f, 0, 0, 1, 0], r, fill);
/** See shearX. */
export const shearY = (img: DecodedImage, f: number, r: Resample, fill: readonly number[]): DecodedImage =>
  affine(img, [1, 0, 0, f, 1, 0], r, fill);
/** Translate by pct of the width (timm's translate_x_rel: pixels = pct · width). */
export const translateXRel = (
  img: DecodedImage,
  pct: number,
  r: Resample,
  fill: readonly number[],
): DecodedImage => affine(img, [1, 0, pct * img.width, 0, 1, 0], r, fill);
/** Translate by pct of the height. */
export const translateYRel = (
  img: DecodedImage,
  pct: number,
  r: Resample,
  fill: readonly number[],
): DecodedImage => affine(img, [1, 0, 0, 0, 1, pct * img.height], r, fill);

/** timm's increasing RandAugment ops (_RAND_INCREASING_TRANSFORMS), in timm's order. */
export const RAND_INCREASING_OPS = [
  "AutoContrast",
  "Equalize",
  "Invert",
  "Rotate",
  "PosterizeIncreasing",
  "SolarizeIncreasing",
  "SolarizeAdd",
  "ColorIncreasing",
  "ContrastIncreasing",
  "BrightnessIncreasing",
  "SharpnessIncreasing",
  "ShearX",
  "ShearY",
  "TranslateXRel",
  "TranslateYRel",
] as const;

/** The name of a RandAugment op. */
export type RandOp = (typeof RAND_INCREASING_OPS)[number];

/** Geometric options of the ops (create_transform's aa_params). */
export interface OpParams {
  /** Fill of uncovered pixels (default ImageNet mean bytes 124, 116, 104). */
  fill?: readonly number[];
  /** Resampling of the geometric ops (default bicubic, DeiT's interpolation). */
  resample?: Resample;
  /** TranslateRel's fraction at magnitude 10 (default 0.45). */
  translatePct?: number;
}

/** timm's fill for ImageNet: min(255, round(255 · mean)). */
export const IMAGENET_FILL: readonly number[] = IMAGENET_MEAN.map((m) => Math.min(255, Math.round(255 * m)));

/**
 * Applies RandAugment op `op` at `magnitude` (0..10, after timm's clipping); `negate` chooses the
 * sign of signed ops (timm's _randomly_negate).
 */
export function applyOp(
  img: DecodedImage,
  op: RandOp,
  magnitude: number,
  negate: boolean,
  p: OpParams = {},
): DecodedImage {
  const fill = p.fill ?? IMAGENET_FILL, r = p.resample ?? "bicubic";
  const lv = magnitude / 10, sgn = negate ? -1 : 1;
  switch (op) {
    case "AutoContrast":
      return autoContrast(img);
    case "Equalize":
      return equalize(img);
    case "Invert":
      return invert(img);
    case "Rotate":
      return rotate(img, sgn * lv * 30, r, fill);
    case "PosterizeIncreasing":
      return posterize(img, 4 - Math.trunc(lv * 4));
    case "SolarizeIncreasing":
      return solarize(img, 256 - Math.trunc(lv * 256));
    case "SolarizeAdd":
      return solarizeAdd(img, Math.trunc(lv * 110));
    case "ColorIncreasing":
      return color(img, 1 + sgn * lv * 0.9);
    case "ContrastIncreasing":
      return contrast(img, 1 + sgn * lv * 0.9);
    case "BrightnessIncreasing":
      return brightness(img, 1 + sgn * lv * 0.9);
    case "SharpnessIncreasing":
      return sharpness(img, 1 + sgn * lv * 0.9);
    case "ShearX":
      return shearX(img, sgn * lv * 0.3, r, fill);
    case "ShearY":
      return shearY(img, sgn * lv * 0.3, r, fill);
    case "TranslateXRel":
      return translateXRel(img, sgn * lv * (p.translatePct ?? 0.45), r, fill);
    case "TranslateYRel":
      return translateYRel(img, sgn * lv * (p.translatePct ?? 0.45), r, fill);
  }
}

/** A parsed timm RandAugment string such as "rand-m9-mstd0.5-inc1". */
export interface RandAugmentConfig {
  /** Magnitude M (0..10; `m9`). */
  magnitude: number;
  /** Std of the per-op magnitude noise (`mstd0.5`; Infinity: uniform in [0, M]). */
  magnitudeStd: number;
  /** Ops per image (`n`, default 2). */
  numLayers: number;
  /** Probability of applying each chosen op (`p`, default 0.5). */
  prob: number;
  /** The ops drawn from. */
  ops: readonly RandOp[];
}

/** Parses timm's rand-augment config string (m, mstd, n, p, inc; inc1 selects the increasing ops). */
export function parseRandAugment(spec: string): RandAugmentConfig {
  const parts = spec.split("-");
  if (parts[0] !== "rand") throw new Error(`RandAugment: '${spec}' does not start with 'rand'`);
  const cfg = { magnitude: 10, magnitudeStd: 0, numLayers: 2, prob: 0.5, inc: 0 };
  for (const s of parts.slice(1)) {
    const m = /^(mstd|mmax|inc|m|n|p|w)(\d*\.?\d+|inf)$/.exec(s);
    if (!m) throw new Error(`RandAugment: unknown part '${s}' of '${spec}'`);
    const v = m[2] === "inf" ? Infinity : Number(m[2]);
    if (m[1] === "mstd") cfg.magnitudeStd = v;
    else if (m[1] === "m") cfg.magnitude = v;
    else if (m[1] === "n") cfg.numLayers = v;
    else if (m[1] === "p") cfg.prob = v;
    else if (m[1] === "inc") cfg.inc = v;
    else throw new Error(`RandAugment: '${s}' is not supported`);
  }
  if (!cfg.inc) throw new Error(`RandAugment: only the increasing ops (inc1) are implemented, got '${spec}'`);
  return { ...cfg, ops: RAND_INCREASING_OPS };
}

/** timm's RandAugment: numLayers ops chosen with replacement, each applied with probability prob. */
export function randAugment(
  img: DecodedImage,
  cfg: RandAugmentConfig,
  rng: Rng,
  p: OpParams = {},
): DecodedImage {
  for (let k = 0; k < cfg.numLayers; k++) {
    const op = cfg.ops[rng.int(cfg.ops.length)];
    if (cfg.prob < 1 && rng.next() > cfg.prob) continue;
    let m = cfg.magnitude;
    if (cfg.magnitudeStd === Infinity) m = rng.next() * m;
    else if (cfg.magnitudeStd > 0) m = m + cfg.magnitudeStd * rng.normal();
    m = Math.max(0, Math.min(m, 10));
    img = applyOp(img, op, m, rng.next() > 0.5, p);
  }
  return img;
}

/** Python's round() (half to even). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** timm's RandomResizedCropAndInterpolation.get_params: the crop (top, left, height, width). */
export function randomResizedCropParams(
  w: number,
  h: number,
  rng: Rng,
  scale: [number, number] = [0.08, 1],
  ratio: [number, number] = [3 / 4, 4 / 3],
): { top: number; left: number; height: number; width: number } {
  const area = w * h;
  const uniform = (a: number, b: number) => a + (b - a) * rng.next();
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = uniform(scale[0], scale[1]) * area;
    const aspect = Math.exp(uniform(Math.log(ratio[0]), Math.log(ratio[1])));
    const cw = roundHalfEven(Math.sqrt(target * aspect)), ch = roundHalfEven(Math.sqrt(target / aspect));
    if (cw <= w && ch <= h) {
      return { top: rng.int(h - ch + 1), left: rng.int(w - cw + 1), height: ch, width: cw };
    }
  }
  const inRatio = w / h;
  let cw = w, ch = h;
  if (inRatio < Math.min(...ratio)) ch = roundHalfEven(w / Math.min(...ratio));
  else if (inRatio > Math.max(...ratio)) cw = roundHalfEven(h * Math.max(...ratio));
  return { top: Math.floor((h - ch) / 2), left: Math.floor((w - cw) / 2), height: ch, width: cw };
}

/** F.resized_crop for PIL: crop, then Pillow's bicubic resize to size × size. */
export function resizedCrop(
  img: DecodedImage,
  c: { top: number; left: number; height: number; width: number },
  size: number,
): DecodedImage {
  return resizeBicubic(img, size, size, undefined, { x0: c.left, y0: c.top, w: c.width, h: c.height });
}

/** Mirror left-right. */
export function hflip(img: DecodedImage): DecodedImage {
  const { width: w, height: h, channels: c, data } = img;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let ch = 0; ch < c; ch++) out[(y * w + x) * c + ch] = data[(y * w + (w - 1 - x)) * c + ch];
    }
  }
  return { ...img, data: out };
}

/** torchvision ColorJitter(b, c, s) on PIL images: factors uniform in [1 − v, 1 + v], random order. */
export function colorJitter(img: DecodedImage, strength: number, rng: Rng): DecodedImage {
  const order = [0, 1, 2, 3];
  for (let i = 3; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const factor = () => Math.max(0, 1 - strength) + (1 + strength - Math.max(0, 1 - strength)) * rng.next();
  for (const k of order) {
    if (k === 0) img = brightness(img, factor());
    else if (k === 1) img = contrast(img, factor());
    else if (k === 2) img = color(img, factor()); // saturation
    // k === 3: hue, 0 in timm's ColorJitter(0.4) triple
  }
  return img;
}

/** timm's RandomErasing (mode "pixel", one box) on a normalized [C, H, W] tensor, in place. */
export function randomErasing(
  x: Float32Array,
  c: number,
  h: number,
  w: number,
  prob: number,
  rng: Rng,
  opts: { minArea?: number; maxArea?: number; minAspect?: number } = {},
): boolean {
  if (rng.next() > prob) return false;
  const area = h * w, minAspect = opts.minAspect ?? 0.3;
  const [la, lb] = [Math.log(minAspect), Math.log(1 / minAspect)];
  for (let attempt = 0; attempt < 10; attempt++) {
    const target =
      ((opts.minArea ?? 0.02) + ((opts.maxArea ?? 1 / 3) - (opts.minArea ?? 0.02)) * rng.next()) * area;
    const aspect = Math.exp(la + (lb - la) * rng.next());
    const eh = roundHalfEven(Math.sqrt(target * aspect)), ew = roundHalfEven(Math.sqrt(target / aspect));
    if (ew < w && eh < h) {
      const top = rng.int(h - eh + 1), left = rng.int(w - ew + 1);
      for (let ch = 0; ch < c; ch++) {
        for (let y = top; y < top + eh; y++) {
          for (let xx = left; xx < left + ew; xx++) x[(ch * h + y) * w + xx] = rng.normal();
        }
      }
      return true;
    }
  }
  return false;
}

/** Options of the training transform (DeiT's defaults). */
export interface TrainTransformOptions {
  /** Output side. */
  imgSize: number;
  /** RandomResizedCrop scale range (default [0.08, 1]). */
  scale?: [number, number];
  /** RandomResizedCrop aspect range (default [3/4, 4/3]). */
  ratio?: [number, number];
  /** Horizontal flip probability (default 0.5). */
  hflip?: number;
  /** RandAugment spec (default "rand-m9-mstd0.5-inc1"); "" turns it off. */
  autoAugment?: string;
  /** Color jitter strength (default 0.4); applied only without RandAugment, as timm does. */
  colorJitter?: number;
  /** Random erasing probability (default 0.25, mode "pixel"). */
  reprob?: number;
  /** Normalization (default ImageNet's). */
  mean?: readonly number[];
  /** See mean. */
  std?: readonly number[];
}

/**
 * timm's create_transform(is_training=True) with DeiT's arguments: [3, imgSize, imgSize] float32, written
 * into `out` when given (3 × imgSize² floats).
 */
export function trainTransform(
  img: DecodedImage,
  opts: TrainTransformOptions,
  rng: Rng,
  out?: Float32Array,
): Float32Array {
  if (img.channels !== 3) throw new Error("trainTransform: expects an RGB image (convert gray first)");
  const size = opts.imgSize;
  let x = resizedCrop(img, randomResizedCropParams(img.width, img.height, rng, opts.scale, opts.ratio), size);
  if (rng.next() < (opts.hflip ?? 0.5)) x = hflip(x);
  const aa = opts.autoAugment ?? "rand-m9-mstd0.5-inc1";
  const mean = opts.mean ?? IMAGENET_MEAN, std = opts.std ?? IMAGENET_STD;
  if (aa) {
    const fill = mean.map((m) => Math.min(255, Math.round(255 * m)));
    x = randAugment(x, parseRandAugment(aa), rng, { fill, resample: "bicubic", translatePct: 0.45 });
  } else if ((opts.colorJitter ?? 0.4) > 0) {
    x = colorJitter(x, opts.colorJitter ?? 0.4, rng);
  }
  const t = normalizeToChw(x, mean, std, 3, out);
  if ((opts.reprob ?? 0.25) > 0) randomErasing(t, 3, size, size, opts.reprob ?? 0.25, rng);
  return t;
}
