// Mixup / CutMix on a host batch, as timm's `Mixup` in mode "batch" (timm/data/mixup.py): one λ per
// batch, sample i mixed with sample B−1−i (the batch flipped), soft targets with label smoothing.
//
//   per batch, with probability `prob`: CutMix with probability `switchProb` (when both are on),
//     λ ~ Beta(cutmixAlpha, cutmixAlpha), else Mixup with λ ~ Beta(mixupAlpha, mixupAlpha);
//   Mixup:  x_i ← λ·x_i + (1 − λ)·x_{B−1−i}
//   CutMix: a box of side ratio sqrt(1 − λ) centred at a uniform pixel, clipped to the image (rand_bbox);
//           x_i[:, box] ← x_{B−1−i}[:, box], and λ ← 1 − box area / image area (correct_lam)
//   targets (mixup_target): off = smoothing/K, on = 1 − smoothing + off;
//           t_i = λ·onehot(y_i) + (1 − λ)·onehot(y_{B−1−i})
// The random draws come from a seeded Rng (compiler/core/random.ts), so a run is reproducible; they
// are not numpy's stream (timm draws with np.random), only the same distributions.

import { Rng } from "../compiler/core/random.ts";

/** Options of Mixup (timm's names; defaults are DeiT's recipe). */
export interface MixupOptions {
  /** Number of classes K of the soft targets. */
  numClasses: number;
  /** Beta(α, α) of Mixup's λ; 0 turns Mixup off (default 0.8). */
  mixupAlpha?: number;
  /** Beta(α, α) of CutMix's λ; 0 turns CutMix off (default 1.0). */
  cutmixAlpha?: number;
  /** Probability that a batch is mixed at all (default 1). */
  prob?: number;
  /** Probability of CutMix instead of Mixup when both are on (default 0.5). */
  switchProb?: number;
  /** Label smoothing folded into the targets (default 0.1). */
  labelSmoothing?: number;
  /** Correct λ to the clipped CutMix box's area (default true, as timm). */
  correctLam?: boolean;
}

/** A CutMix box: rows [yl, yh), columns [xl, xh). */
export interface Box {
  /** First row. */
  yl: number;
  /** End row (exclusive). */
  yh: number;
  /** First column. */
  xl: number;
  /** End column (exclusive). */
  xh: number;
}

/** The random decisions of one batch. */
export interface MixParams {
  /** Weight of the sample itself (1: not mixed). */
  lam: number;
  /** CutMix (true) or Mixup (false). */
  cutmix: boolean;
  /** The CutMix box, with `lam` already corrected to its area. */
  box?: Box;
}

/** Gamma(a, 1) by Marsaglia and Tsang (a < 1 boosted: Gamma(a + 1)·U^(1/a)). */
export function sampleGamma(rng: Rng, a: number): number {
  if (a < 1) {
    let u = rng.next();
    while (u === 0) u = rng.next();
    return sampleGamma(rng, a + 1) * u ** (1 / a);
  }
  const d = a - 1 / 3, c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number, v: number;
    do {
      x = rng.normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = rng.next();
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** Beta(a, b) as X/(X + Y) with X ~ Gamma(a), Y ~ Gamma(b). */
export function sampleBeta(rng: Rng, a: number, b: number): number {
  const x = sampleGamma(rng, a), y = sampleGamma(rng, b);
  return x / (x + y);
}

/** timm's rand_bbox (margin 0): cut size int(side·sqrt(1 − λ)), centre uniform, clipped. */
export function randBbox(h: number, w: number, lam: number, rng: Rng): Box {
  const ratio = Math.sqrt(1 - lam);
  const cutH = Math.trunc(h * ratio), cutW = Math.trunc(w * ratio);
  const cy = rng.int(h), cx = rng.int(w);
  const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
  return {
    yl: clip(cy - Math.floor(cutH / 2), h),
    yh: clip(cy + Math.floor(cutH / 2), h),
    xl: clip(cx - Math.floor(cutW / 2), w),
    xh: clip(cx + Math.floor(cutW / 2), w),
  };
}

/** timm's mixup_target: smoothed one-hot targets [B, K] of y and of the flipped batch, mixed by λ. */
export function mixupTarget(
  labels: ArrayLike<number>,
  numClasses: number,
  lam: number,
  smoothing: number,
): Float32Array {
  const b = labels.length, k = numClasses;
  const off = smoothing / k, on = 1 - smoothing + off;
  const t = new Float32Array(b * k);
  for (let i = 0; i < b; i++) {
    const [y1, y2] = [labels[i], labels[b - 1 - i]];
    if (!(Number.isInteger(y1) && y1 >= 0 && y1 < k)) {
      throw new Error(`mixupTarget: label ${y1} not in [0, ${k})`);
    }
    for (let c = 0; c < k; c++) {
      t[i * k + c] = lam * (c === y1 ? on : off) + (1 - lam) * (c === y2 ? on : off);
    }
  }
  return t;
}

/**
 * Mixes `images` [B, C, H, W] in place by `p` (sample i with sample B−1−i) and returns the soft
 * targets [B, K] (mixupTarget with p.lam).
 */
export function mixBatch(
  images: Float32Array,
  shape: readonly [number, number, number, number],
  labels: ArrayLike<number>,
  p: MixParams,
  numClasses: number,
  smoothing: number,
): Float32Array {
  const [b, c, h, w] = shape;
  if (images.length !== b * c * h * w || labels.length !== b) {
    throw new Error(`mixBatch: ${images.length} values and ${labels.length} labels for [${shape}]`);
  }
  if (b % 2) throw new Error(`mixBatch: the batch size must be even (timm), got ${b}`);
  if (p.lam !== 1) {
    const src = images.slice(); // both halves read the unmixed batch
    const per = c * h * w;
    if (p.cutmix) {
      const { yl, yh, xl, xh } = p.box!;
      for (let i = 0; i < b; i++) {
        const j = b - 1 - i;
        for (let ch = 0; ch < c; ch++) {
          for (let y = yl; y < yh; y++) {
            const row = ch * h * w + y * w;
            images.set(src.subarray(j * per + row + xl, j * per + row + xh), i * per + row + xl);
          }
        }
      }
    } else {
      for (let i = 0; i < b; i++) {
        const j = b - 1 - i;
        for (let e = 0; e < per; e++) {
          images[i * per + e] = p.lam * src[i * per + e] + (1 - p.lam) * src[j * per + e];
        }
      }
    }
  }
  return mixupTarget(labels, numClasses, p.lam, smoothing);
}

/** timm's Mixup (mode "batch") with a seeded generator. */
export class Mixup {
  /** The options with defaults filled in. */
  readonly opts: Required<MixupOptions>;
  private rng: Rng;

  /** A Mixup drawing its decisions from a generator seeded with `seed`. */
  constructor(opts: MixupOptions, seed = 0) {
    this.opts = {
      mixupAlpha: 0.8,
      cutmixAlpha: 1.0,
      prob: 1.0,
      switchProb: 0.5,
      labelSmoothing: 0.1,
      correctLam: true,
      ...opts,
    };
    const o = this.opts;
    if (!(Number.isInteger(o.numClasses) && o.numClasses >= 1)) {
      throw new Error(`Mixup: numClasses ${o.numClasses}`);
    }
    if (!(o.mixupAlpha >= 0 && o.cutmixAlpha >= 0)) throw new Error("Mixup: alphas must be >= 0");
    if (!(o.labelSmoothing >= 0 && o.labelSmoothing < 1)) throw new Error("Mixup: labelSmoothing in [0, 1)");
    this.rng = new Rng(seed);
  }

  /** The decisions for one batch of h×w images (timm's _params_per_batch, then the CutMix box). */
  params(h: number, w: number): MixParams {
    const o = this.opts, r = this.rng;
    if (!(r.next() < o.prob) || (o.mixupAlpha <= 0 && o.cutmixAlpha <= 0)) return { lam: 1, cutmix: false };
    let cutmix: boolean;
    if (o.mixupAlpha > 0 && o.cutmixAlpha > 0) cutmix = r.next() < o.switchProb;
    else cutmix = o.cutmixAlpha > 0;
    const lam = sampleBeta(
      r,
      ...(cutmix ? [o.cutmixAlpha, o.cutmixAlpha] : [o.mixupAlpha, o.mixupAlpha]) as [number, number],
    );
    if (!cutmix) return { lam, cutmix };
    const box = randBbox(h, w, lam, r);
    const area = (box.yh - box.yl) * (box.xh - box.xl);
    return { lam: o.correctLam ? 1 - area / (h * w) : lam, cutmix, box };
  }

  /** Mixes a batch in place and returns its soft targets [B, K] and the decisions taken. */
  apply(
    images: Float32Array,
    shape: readonly [number, number, number, number],
    labels: ArrayLike<number>,
  ): { targets: Float32Array; params: MixParams } {
    const params = this.params(shape[2], shape[3]);
    return {
      targets: mixBatch(images, shape, labels, params, this.opts.numClasses, this.opts.labelSmoothing),
      params,
    };
  }

  /** Generator state, for checkpoints. */
  get state(): number {
    return this.rng.state;
  }
  /** Restores a state read from `state`. */
  set state(s: number) {
    this.rng.state = s;
  }
}
