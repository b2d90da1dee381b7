// The paper's information-filtering analysis (App. A.3 / A.5) as host-side math on tapped features.
// For one image and one stage, z is the patch tokens [T, C] (CLS excluded, row-major patches):
//
//   magnitude(t) = ‖z_t − mean_s z_s‖₂, then min-max normalised over the image's tokens;
//   frequency(t) = ‖φ_t − mean_s φ_s‖₂ with φ_t[k] = angle(FFT(z_t))[k] = atan2(Im, Re) of the
//                  length-C discrete Fourier transform of token t over its CHANNEL dimension, all C bins
//                  (k = 0..C−1), angles in (−π, π] (the real bins 0 and C/2: 0 or π by the sign of
//                  Re); then min-max normalised — the paper's FFT-phase
//                  score (the reference code does not ship it; this follows the appendix's formula);
//   CLS attention(t) = Σ_heads softmax_s(q_cls · k_s / √d_h)[t] of the last encoder block (recomputed
//                  on the host from that block's input and its norm1/qkv weights; keys include CLS,
//                  the patch entries are kept), min-max normalised.
//
// Min-max normalisation maps a constant score to all zeros. Pseudo-masks: score > t for
// t ∈ {0.1, …, 0.9}; the oracle threshold is the t of the best IoU per image; mIoU is the mean over
// images. Ground truth: a pixel is foreground when its raw value is > 0; a token when at least half of
// its patch's pixels are. IoU of two empty masks is 1.

/** The stages the analysis taps, in model order. */
export const ANALYSIS_STAGES = ["vit", "mapper1", "llm_attn", "llm_ffn", "mapper2"] as const;

/** A tapped stage. */
export type AnalysisStage = typeof ANALYSIS_STAGES[number];

/** The oracle thresholds 0.1, …, 0.9. */
export const THRESHOLDS: readonly number[] = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => i / 10);

/** (s − min) / (max − min); all zeros when the scores are constant. */
export function minMax(s: Float64Array): Float64Array {
  let lo = Infinity, hi = -Infinity;
  for (const v of s) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  const out = new Float64Array(s.length);
  if (hi > lo) { for (let i = 0; i < s.length; i++) out[i] = (s[i] - lo) / (hi - lo); }
  return out;
}

/** ‖row_t − mean_t row‖₂ of a row-major [T, C] matrix (f64 arithmetic). */
function centredNorms(z: ArrayLike<number>, T: number, C: number): Float64Array {
  const mean = new Float64Array(C);
  for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) mean[c] += z[t * C + c] / T;
  const out = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += (z[t * C + c] - mean[c]) ** 2;
    out[t] = Math.sqrt(s);
  }
  return out;
}

/** The magnitude score of each token of z [T, C] (see the file comment). */
export function magnitudeScores(z: ArrayLike<number>, T: number, C: number): Float64Array {
  return minMax(centredNorms(z, T, C));
}

/** Phase angles of the length-C DFT of x (f64; radix-2 FFT when C is a power of two, else direct). */
export function dftPhase(x: ArrayLike<number>, C: number): Float64Array {
  const re = new Float64Array(C), im = new Float64Array(C);
  if ((C & (C - 1)) === 0) {
    for (let i = 0, j = 0; i < C; i++) { // bit-reversed copy
      re[j] = x[i];
      let m = C >> 1;
      for (; m >= 1 && j & m; m >>= 1) j ^= m;
      j |= m;
    }
    for (let len = 2; len <= C; len <<= 1) {
      const ang = -2 * Math.PI / len;
      for (let s = 0; s < C; s += len) {
        for (let k = 0; k < len / 2; k++) {
          const [wr, wi] = [Math.cos(ang * k), Math.sin(ang * k)];
          const a = s + k, b = a + len / 2;
          const tr = re[b] * wr - im[b] * wi, ti = re[b] * wi + im[b] * wr;
          [re[b], im[b]] = [re[a] - tr, im[a] - ti];
          [re[a], im[a]] = [re[a] + tr, im[a] + ti];
        }
      }
    }
  } else {
    for (let k = 0; k < C; k++) {
      for (let n = 0; n < C; n++) {
        const a = -2 * Math.PI * ((k * n) % C) / C;
        re[k] += x[n] * Math.cos(a);
        im[k] += x[n] * Math.sin(a);
      }
    }
  }
  const out = new Float64Array(C);
  for (let k = 0; k < C; k++) {
    // bins 0 and C/2 of a real input are real: their phase is exactly 0 or π (rounding noise in Im
    // would otherwise flip π to −π)
    out[k] = k === 0 || 2 * k === C ? (re[k] < 0 ? Math.PI : 0) : Math.atan2(im[k], re[k]);
  }
  return out;
}

/** The frequency (FFT-phase) score of each token of z [T, C] (see the file comment). */
export function frequencyScores(z: ArrayLike<number>, T: number, C: number): Float64Array {
  const phases = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    phases.set(dftPhase(Array.prototype.slice.call(z, t * C, (t + 1) * C) as number[], C), t * C);
  }
  return minMax(centredNorms(phases, T, C));
}

/**
 * Token foreground of one raw image [H, W] (0–255) for square patches of side `patch`: 1 when at least
 * half of the patch's pixels are > 0. Tokens in row-major patch order.
 */
export function tokenForeground(pixels: ArrayLike<number>, H: number, W: number, patch: number): Uint8Array {
  const [gh, gw] = [H / patch, W / patch];
  const out = new Uint8Array(gh * gw);
  for (let i = 0; i < gh; i++) {
    for (let j = 0; j < gw; j++) {
      let n = 0;
      for (let y = 0; y < patch; y++) {
        for (let x = 0; x < patch; x++) if (pixels[(i * patch + y) * W + j * patch + x] > 0) n++;
      }
      out[i * gw + j] = 2 * n >= patch * patch ? 1 : 0;
    }
  }
  return out;
}

/** IoU of two 0/1 masks; 1 when both are empty. */
export function iou(pred: ArrayLike<number>, gt: ArrayLike<number>): number {
  let inter = 0, union = 0;
  for (let i = 0; i < gt.length; i++) {
    const [p, g] = [pred[i] > 0, gt[i] > 0];
    if (p && g) inter++;
    if (p || g) union++;
  }
  return union === 0 ? 1 : inter / union;
}

/** The best IoU over the thresholds (score > t) and the threshold that gives it (the first on ties). */
export function oracleIoU(score: ArrayLike<number>, gt: ArrayLike<number>): { iou: number; t: number } {
  let best = { iou: -1, t: THRESHOLDS[0] };
  for (const t of THRESHOLDS) {
    const v = iou(Array.from(score, (s) => (s > t ? 1 : 0)), gt);
    if (v > best.iou) best = { iou: v, t };
  }
  return best;
}

/** The last block's params the CLS attention needs (timm names: norm1, attn.qkv). */
export interface AttnParams {
  /** norm1.weight [D]. */
  normW: ArrayLike<number>;
  /** norm1.bias [D]. */
  normB: ArrayLike<number>;
  /** attn.qkv.weight [3D, D]. */
  qkvW: ArrayLike<number>;
  /** attn.qkv.bias [3D], or undefined. */
  qkvB?: ArrayLike<number>;
  /** Heads. */
  heads: number;
  /** LayerNorm epsilon. */
  eps: number;
}

/**
 * CLS→patch attention of a pre-LN block, summed over heads, from its input x [1 + T, D] (CLS first):
 * returns [T] (not normalised).
 */
export function clsAttention(x: ArrayLike<number>, T1: number, D: number, p: AttnParams): Float64Array {
  const n = new Float64Array(T1 * D);
  for (let t = 0; t < T1; t++) {
    let m = 0, v = 0;
    for (let c = 0; c < D; c++) m += x[t * D + c] / D;
    for (let c = 0; c < D; c++) v += (x[t * D + c] - m) ** 2 / D;
    for (let c = 0; c < D; c++) {
      n[t * D + c] = (x[t * D + c] - m) / Math.sqrt(v + p.eps) * p.normW[c] + p.normB[c];
    }
  }
  const proj = (t: number, row: number) => {
    let s = p.qkvB ? p.qkvB[row] : 0;
    for (let c = 0; c < D; c++) s += p.qkvW[row * D + c] * n[t * D + c];
    return s;
  };
  const dh = D / p.heads;
  const q = Array.from({ length: D }, (_, r) => proj(0, r));
  const out = new Float64Array(T1 - 1);
  for (let h = 0; h < p.heads; h++) {
    const logits = new Float64Array(T1);
    for (let t = 0; t < T1; t++) {
      let s = 0;
      for (let c = 0; c < dh; c++) s += q[h * dh + c] * proj(t, D + h * dh + c);
      logits[t] = s / Math.sqrt(dh);
    }
    const mx = Math.max(...logits);
    let z = 0;
    for (let t = 0; t < T1; t++) z += Math.exp(logits[t] - mx);
    for (let t = 1; t < T1; t++) out[t - 1] += Math.exp(logits[t] - mx) / z;
  }
  return out;
}
