// The eval transform of timm/DeiT with Pillow's exact arithmetic: Resize(int(img / crop_pct), BICUBIC) of the
// shorter side, CenterCrop(img), ToTensor, Normalize. The resize follows Pillow's ImagingResample
// (libImaging/Resample.c) for 8-bit images: separable, horizontal pass first into an 8-bit intermediate,
// then vertical; the kernel support widens by the scale when shrinking (antialias); coefficients are
// normalised in double precision, then rounded to fixed point with 22 fractional bits; each output is
// (sum + 2^21) >> 22 clipped to 0..255. Same coefficients and integer sums, so the uint8 output is identical.

import type { DecodedImage } from "./decode.ts";

/** ImageNet's channel means and standard deviations (timm's IMAGENET_DEFAULT_MEAN / _STD). */
export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
/** See IMAGENET_MEAN. */
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];

const PRECISION_BITS = 22;

/** A rectangle of the output: columns x0..x0+w, rows y0..y0+h. */
export interface Window {
  /** First column. */
  x0: number;
  /** First row. */
  y0: number;
  /** Width. */
  w: number;
  /** Height. */
  h: number;
}

/** Pillow's bicubic kernel (a = -0.5). */
function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Fixed-point coefficients of one axis (Pillow's precompute_coeffs + normalize_coeffs_8bpc). */
interface Coeffs {
  ksize: number;
  bounds: Int32Array; // [xmin, count] per output index
  k: Int32Array; // ksize per output index
}

function coeffs(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 2 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const k = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    // C's (int) truncates toward zero; clamping to 0 makes that agree with Math.trunc here.
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = bicubic((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? w[x] / ww : w[x];
      // (int)(±0.5 + v * 2^22): round half away from zero by truncation.
      k[xx * ksize + x] = v < 0
        ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS))
        : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, k };
}

/** (sum >> 22) clipped to a byte; sums fit in int32 as in C, so `>>` is the same arithmetic shift. */
function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Pillow's `Image.resize((outW, outH), Image.BICUBIC)` of an 8-bit image, exact. With `window`, only that
 * part of the output is computed (each output pixel depends only on its own coefficients, so a crop of the
 * full result and the windowed result are the same bytes); it saves the work a center crop throws away.
 * With `source`, the input is that rectangle of `img` (`img.crop(source).resize(...)`, without the copy).
 */
export function resizeBicubic(
  img: DecodedImage,
  outW: number,
  outH: number,
  window?: Window,
  source?: Window,
): DecodedImage {
  const { channels: C, data } = img, fullW = img.width;
  const src = source ?? { x0: 0, y0: 0, w: img.width, h: img.height };
  if (src.x0 < 0 || src.y0 < 0 || src.x0 + src.w > img.width || src.y0 + src.h > img.height) {
    throw new Error(
      `crop ${src.w}x${src.h}+${src.x0}+${src.y0} outside the ${img.width}x${img.height} image`,
    );
  }
  const inW = src.w, inH = src.h;
  const win = window ?? { x0: 0, y0: 0, w: outW, h: outH };
  if (win.x0 < 0 || win.y0 < 0 || win.x0 + win.w > outW || win.y0 + win.h > outH) {
    throw new Error(`resize window ${JSON.stringify(win)} outside ${outW}x${outH}`);
  }
  const needH = outW !== inW, needV = outH !== inH;
  if (!needH && !needV) return crop(img, src.x0 + win.x0, src.y0 + win.y0, win.w, win.h);
  const vert = coeffs(inH, outH);
  // Source rows the vertical pass reads for the window's rows.
  const yFirst = needV ? vert.bounds[win.y0 * 2] : win.y0;
  const yLast = needV
    ? vert.bounds[(win.y0 + win.h - 1) * 2] + vert.bounds[(win.y0 + win.h - 1) * 2 + 1]
    : win.y0 + win.h;
  let mid: Uint8Array, midW: number, midX0: number; // the horizontal pass over rows yFirst..yLast
  if (needH) {
    const hor = coeffs(inW, outW);
    midW = win.w;
    midX0 = 0;
    mid = new Uint8Array((yLast - yFirst) * midW * C);
    const half = 1 << (PRECISION_BITS - 1);
    const hk = hor.k;
    for (let y = yFirst; y < yLast; y++) {
      const rowIn = ((y + src.y0) * fullW + src.x0) * C, rowOut = (y - yFirst) * midW * C;
      for (let xx = 0; xx < midW; xx++) {
        const o = xx + win.x0, xmin = hor.bounds[o * 2], n = hor.bounds[o * 2 + 1], kb = o * hor.ksize;
        if (C === 3) { // the common case, all three sums in one pass over the taps
          let s0 = half, s1 = half, s2 = half;
          for (let x = 0, p = rowIn + xmin * 3; x < n; x++, p += 3) {
            const k = hk[kb + x];
            s0 += data[p] * k;
            s1 += data[p + 1] * k;
            s2 += data[p + 2] * k;
          }
          const q = rowOut + xx * 3;
          mid[q] = clip8(s0);
          mid[q + 1] = clip8(s1);
          mid[q + 2] = clip8(s2);
        } else {
          let ss = half;
          for (let x = 0, p = rowIn + xmin; x < n; x++, p++) ss += data[p] * hk[kb + x];
          mid[rowOut + xx] = clip8(ss);
        }
      }
    }
  } else {
    mid = data.subarray((yFirst + src.y0) * fullW * C, (yLast + src.y0) * fullW * C);
    midW = fullW;
    midX0 = src.x0 + win.x0;
  }
  const out = new Uint8Array(win.w * win.h * C);
  if (!needV) {
    for (let y = 0; y < win.h; y++) {
      out.set(mid.subarray((y * midW + midX0) * C, (y * midW + midX0 + win.w) * C), y * win.w * C);
    }
    return { width: win.w, height: win.h, channels: C, data: out };
  }
  const half = 1 << (PRECISION_BITS - 1);
  const stride = midW * C;
  // Row at a time: acc += tap row * k, walking memory in order (sums stay within int32, as in C).
  const rowLen = win.w * C, acc = new Int32Array(rowLen);
  for (let yy = 0; yy < win.h; yy++) {
    const o = yy + win.y0,
      ymin = vert.bounds[o * 2] - yFirst,
      n = vert.bounds[o * 2 + 1],
      kb = o * vert.ksize;
    acc.fill(half);
    for (let y = 0; y < n; y++) {
      const k = vert.k[kb + y], base = (ymin + y) * stride + midX0 * C;
      for (let i = 0; i < rowLen; i++) acc[i] += mid[base + i] * k;
    }
    const ob = yy * rowLen;
    for (let i = 0; i < rowLen; i++) out[ob + i] = clip8(acc[i]);
  }
  return { width: win.w, height: win.h, channels: C, data: out };
}

/** A copy of the rectangle (x0, y0, w, h), which must lie inside the image. */
export function crop(img: DecodedImage, x0: number, y0: number, w: number, h: number): DecodedImage {
  const { width, height, channels: C, data } = img;
  if (x0 < 0 || y0 < 0 || x0 + w > width || y0 + h > height) {
    throw new Error(`crop ${w}x${h}+${x0}+${y0} outside the ${width}x${height} image`);
  }
  const out = new Uint8Array(w * h * C);
  for (let y = 0; y < h; y++) {
    out.set(data.subarray(((y0 + y) * width + x0) * C, ((y0 + y) * width + x0 + w) * C), y * w * C);
  }
  return { width: w, height: h, channels: C, data: out };
}

/** torchvision's Resize(size) with an int: the shorter side becomes `size`, the longer int(size * long / short). */
export function shorterSideSize(width: number, height: number, size: number): [number, number] {
  if (width <= height) return [size, Math.trunc((size * height) / width)];
  return [Math.trunc((size * width) / height), size];
}

/** Python's round() (half to even), which torchvision's CenterCrop uses for its offsets. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The eval transform's size parameters. */
export interface EvalTransformOptions {
  /** Output side (timm's `img_size`). */
  imgSize: number;
  /** Resize the shorter side to int(imgSize / cropPct) before the center crop; default 0.875. */
  cropPct?: number;
  /** Per-channel mean (default ImageNet's). */
  mean?: readonly number[];
  /** Per-channel std (default ImageNet's). */
  std?: readonly number[];
  /** Output channels: 3 replicates a gray image (default: 3). */
  channels?: 1 | 3;
}

/**
 * The uint8 part of timm's eval transform: Resize(int(imgSize / cropPct), BICUBIC) then CenterCrop(imgSize),
 * with torchvision's rules (no resampling when the size already matches; crop offsets round half to even).
 * Only the cropped window is resampled.
 */
export function resizeCenterCrop(img: DecodedImage, imgSize: number, cropPct = 0.875): DecodedImage {
  if (!(cropPct > 0 && cropPct <= 1)) throw new Error(`crop_pct must be in (0, 1], got ${cropPct}`);
  const size = Math.trunc(imgSize / cropPct);
  const [w, h] = shorterSideSize(img.width, img.height, size);
  // CenterCrop pads when the image is smaller than the crop; crop_pct <= 1 makes that impossible here.
  const x0 = roundHalfEven((w - imgSize) / 2), y0 = roundHalfEven((h - imgSize) / 2);
  return resizeBicubic(img, w, h, { x0, y0, w: imgSize, h: imgSize });
}

/**
 * ToTensor + Normalize in float32 as torch computes them: x = u8 / 255, then (x - mean) / std, each rounded
 * to float32. Returns [C, H, W] (channel-major), replicating a gray image to 3 channels when asked. With
 * `out` (exactly channels × H × W floats, e.g. a sample's slice of a batch) it writes there instead of
 * allocating.
 */
export function normalizeToChw(
  img: DecodedImage,
  mean: readonly number[] = IMAGENET_MEAN,
  std: readonly number[] = IMAGENET_STD,
  channels: 1 | 3 = 3,
  out?: Float32Array,
): Float32Array {
  const { width, height, channels: C, data } = img;
  if (C === 3 && channels === 1) throw new Error("normalizeToChw: an RGB image cannot become 1 channel");
  if (mean.length !== channels || std.length !== channels) {
    throw new Error(`normalizeToChw: mean/std need ${channels} values, got ${mean.length}/${std.length}`);
  }
  const hw = width * height;
  if (out && out.length !== channels * hw) {
    throw new Error(`normalizeToChw: out has ${out.length} floats, the image needs ${channels * hw}`);
  }
  out ??= new Float32Array(channels * hw);
  for (let c = 0; c < channels; c++) {
    // A lookup table per channel: the f32 result for each byte value, computed with torch's roundings.
    const m = Math.fround(mean[c]), s = Math.fround(std[c]);
    const lut = new Float32Array(256);
    for (let v = 0; v < 256; v++) lut[v] = Math.fround(Math.fround(Math.fround(v / 255) - m) / s);
    const src = C === 1 ? 0 : c;
    for (let p = 0; p < hw; p++) out[c * hw + p] = lut[data[p * C + src]];
  }
  return out;
}

/** timm's eval transform end to end: [channels, imgSize, imgSize] float32, normalized. */
export function evalTransform(img: DecodedImage, opts: EvalTransformOptions): Float32Array {
  const u8 = resizeCenterCrop(img, opts.imgSize, opts.cropPct ?? 0.875);
  return normalizeToChw(u8, opts.mean ?? IMAGENET_MEAN, opts.std ?? IMAGENET_STD, opts.channels ?? 3);
}
