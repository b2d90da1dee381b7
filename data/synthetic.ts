// A small synthetic sequence-classification task with a learnable rule: the label is the argmax of a
// fixed random linear "teacher" applied to the mean token. Used by the engine's example and tests
// until real data arrives (Fashion-MNIST with the ViT issue).

import { Rng } from "../compiler/core/random.ts";

/** Samples of the synthetic task. */
export interface SyntheticBatch {
  /** [samples, seq, inDim] inputs. */
  x: Float32Array;
  /** [samples] labels. */
  labels: Int32Array;
}

/**
 * Draws `samples` sequences of `seq` tokens of `inDim` features and labels them with a fixed random
 * teacher (fixed by teacherSeed; `seed` draws the samples, so train and held-out sets share the rule).
 */
export function syntheticTask(
  opts: { samples: number; seq: number; inDim: number; classes: number; seed: number; teacherSeed?: number },
): SyntheticBatch {
  // the rule (teacher) is fixed by teacherSeed; `seed` only draws the samples, so train and held-out
  // sets drawn with different seeds share one rule
  const tr = new Rng(opts.teacherSeed ?? 12345);
  const teacher = Float64Array.from({ length: opts.classes * opts.inDim }, () => tr.normal());
  const r = new Rng(opts.seed);
  const x = new Float32Array(opts.samples * opts.seq * opts.inDim);
  const labels = new Int32Array(opts.samples);
  for (let s = 0; s < opts.samples; s++) {
    const m = new Float64Array(opts.inDim);
    for (let t = 0; t < opts.seq; t++) {
      for (let d = 0; d < opts.inDim; d++) {
        const v = r.normal();
        x[(s * opts.seq + t) * opts.inDim + d] = v;
        m[d] += v / opts.seq;
      }
    }
    let best = 0, bestV = -Infinity;
    for (let c = 0; c < opts.classes; c++) {
      let z = 0;
      for (let d = 0; d < opts.inDim; d++) z += teacher[c * opts.inDim + d] * m[d];
      if (z > bestV) [best, bestV] = [c, z];
    }
    labels[s] = best;
  }
  return { x, labels };
}

/** Batch `b` (wrapping) of a dataset laid out sample-major. */
export function batchOf(data: SyntheticBatch, b: number, batch: number, per: number): SyntheticBatch {
  const n = data.labels.length;
  const x = new Float32Array(batch * per);
  const labels = new Int32Array(batch);
  for (let i = 0; i < batch; i++) {
    const s = (b * batch + i) % n;
    x.set(data.x.subarray(s * per, (s + 1) * per), i * per);
    labels[i] = data.labels[s];
  }
  return { x, labels };
}
