// CPU references (f64) of the batchnorm family, written channel by channel from the definitions,
// and dropout with the documented hash (DROPOUT_HASH) computed with 32-bit integer arithmetic in JS.
import { DROPOUT_HASH, dropThreshold } from "../../compiler/ops/batchnorm.ts";
import { type RefOf, type RefsFor, type T, tensor } from "./f64.ts";

/** The values of channel ch of x [..., C], one per row. */
function column(x: T, ch: number): number[] {
  const c = x.shape[x.shape.length - 1];
  return Array.from({ length: x.data.length / c }, (_, r) => x.data[r * c + ch]);
}

// training → [y, mean, biased var]; eval → y from the running stats
const batchnormRef: RefOf<"batchnorm"> = (ins, a) => {
  const [x, w, b] = ins;
  const c = x.shape[x.shape.length - 1];
  const y = tensor(x.shape), mean = tensor([c]), vr = tensor([c]);
  for (let ch = 0; ch < c; ch++) {
    const col = column(x, ch);
    const mu = a.training ? col.reduce((s, v) => s + v, 0) / col.length : ins[3].data[ch];
    const v = a.training ? col.reduce((s, u) => s + (u - mu) ** 2, 0) / col.length : ins[4].data[ch];
    mean.data[ch] = mu;
    vr.data[ch] = v;
    col.forEach((u, r) => y.data[r * c + ch] = (u - mu) / Math.sqrt(v + a.eps) * w.data[ch] + b.data[ch]);
  }
  return a.training ? [y, mean, vr] : y;
};

const batchnormSumsRef: RefOf<"batchnorm_sums"> = ([x, dy, mean, vr], a) => {
  const c = x.shape[x.shape.length - 1];
  const sdy = tensor([c]), sdyxh = tensor([c]);
  for (let ch = 0; ch < c; ch++) {
    const xs = column(x, ch), gs = column(dy, ch);
    for (let r = 0; r < xs.length; r++) {
      sdy.data[ch] += gs[r];
      sdyxh.data[ch] += gs[r] * (xs[r] - mean.data[ch]) / Math.sqrt(vr.data[ch] + a.eps);
    }
  }
  return [sdy, sdyxh];
};

const batchnormBwdRef: RefOf<"batchnorm_bwd"> = ([x, dy, mean, vr, w, sdy, sdyxh], a) => {
  const c = x.shape[x.shape.length - 1];
  const n = x.data.length / c;
  const dx = tensor(x.shape);
  for (let i = 0; i < x.data.length; i++) {
    const ch = i % c;
    const rs = 1 / Math.sqrt(vr.data[ch] + a.eps);
    const xh = (x.data[i] - mean.data[ch]) * rs;
    dx.data[i] = w.data[ch] * rs * (dy.data[i] - sdy.data[ch] / n - xh * sdyxh.data[ch] / n);
  }
  return dx;
};

const batchnormEvalBwdRef: RefOf<"batchnorm_eval_bwd"> = ([dy, w, rv], a) => {
  const c = dy.shape[dy.shape.length - 1];
  const dx = tensor(dy.shape);
  for (let i = 0; i < dy.data.length; i++) {
    dx.data[i] = dy.data[i] * w.data[i % c] / Math.sqrt(rv.data[i % c] + a.eps);
  }
  return dx;
};

// new [running_mean, running_var], torch's update with the unbiased batch variance
const batchnormStatsUpdateRef: RefOf<"batchnorm_stats_update"> = ([rm, rv, mean, vr], a) => {
  const m = a.momentum, n = a.n;
  return [
    tensor(rm.shape, rm.data.map((v, i) => (1 - m) * v + m * mean.data[i])),
    tensor(rv.shape, rv.data.map((v, i) => (1 - m) * v + m * vr.data[i] * n / (n - 1))),
  ];
};

/** PCG-RXS-M-XS hash of a u32 (see DROPOUT_HASH). */
export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, DROPOUT_HASH.lcgMul) + DROPOUT_HASH.lcgAdd) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, DROPOUT_HASH.rxsMul) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** Whether dropout with seed `seed` keeps element i at drop probability p. */
export function dropoutKeeps(seed: number, i: number, p: number): boolean {
  const key = pcgHash(((seed >>> 0) + DROPOUT_HASH.seedOffset) >>> 0);
  return pcgHash((pcgHash(i) ^ key) >>> 0) >= dropThreshold(p);
}

const dropoutRef: RefOf<"dropout"> = ([x, seed], a) => {
  const s = seed.data[0];
  return tensor(x.shape, x.data.map((v, i) => dropoutKeeps(s, i, a.p) ? v / (1 - a.p) : 0));
};

/** The CPU references of this family (entries of tests/ref/table.ts). */
export const batchnormRefs: RefsFor<
  | "batchnorm"
  | "batchnorm_sums"
  | "batchnorm_bwd"
  | "batchnorm_eval_bwd"
  | "batchnorm_stats_update"
  | "dropout"
> = {
  batchnorm: batchnormRef,
  batchnorm_sums: batchnormSumsRef,
  batchnorm_bwd: batchnormBwdRef,
  batchnorm_eval_bwd: batchnormEvalBwdRef,
  batchnorm_stats_update: batchnormStatsUpdateRef,
  dropout: dropoutRef,
};
