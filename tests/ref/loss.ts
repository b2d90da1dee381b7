// CPU references (f64) of the loss family: cross-entropy with label smoothing, written the textbook
// way (explicit log-softmax and target distribution per row). Out-of-range labels throw here.
import type { CrossEntropyAttrs } from "../../compiler/ops/attrs.ts";
import { type RefOf, type RefsFor, type T, tensor } from "./f64.ts";

/** Row-wise log-softmax and the smoothed target distribution for cross_entropy attrs. */
function rows(x: T, labels: T, a: CrossEntropyAttrs) {
  const [n, c] = x.shape;
  const eps: number = a.smoothing;
  const out: { logp: number[]; target: number[] }[] = [];
  for (let i = 0; i < n; i++) {
    const row = Array.from(x.data.subarray(i * c, (i + 1) * c));
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    const lab = labels.data[i];
    if (!Number.isInteger(lab) || lab < 0 || lab >= c) {
      throw new Error(`cross_entropy ref: label ${lab} of row ${i}`);
    }
    const target = row.map((_, j) => {
      const hot = j === lab ? 1 : 0;
      return a.mode === "others" ? (hot ? 1 - eps : eps / (c - 1)) : (1 - eps) * hot + eps / c;
    });
    out.push({ logp: row.map((v) => v - lse), target });
  }
  return out;
}

const crossEntropyRef: RefOf<"cross_entropy"> = ([x, labels], a) => {
  const r = rows(x, labels, a);
  let total = 0;
  const lse = tensor([r.length]);
  r.forEach(({ logp, target }, i) => {
    total -= logp.reduce((s, lp, j) => s + target[j] * lp, 0);
    lse.data[i] = x.data[i * x.shape[1]] - logp[0];
  });
  return [tensor([1], [total / r.length]), lse];
};

// Recomputes the log-softmax from the logits (ignoring the saved lse) so the GPU's aux is checked too.
const crossEntropyBwdRef: RefOf<"cross_entropy_bwd"> = ([x, labels, _lse, dy], a) => {
  const r = rows(x, labels, a);
  const dx = tensor(x.shape);
  const c = x.shape[1];
  r.forEach(({ logp, target }, i) => {
    for (let j = 0; j < c; j++) dx.data[i * c + j] = (Math.exp(logp[j]) - target[j]) * dy.data[0] / r.length;
  });
  return dx;
};

/** The CPU references of this family (entries of tests/ref/table.ts). */
export const lossRefs: RefsFor<"cross_entropy" | "cross_entropy_bwd"> = {
  cross_entropy: crossEntropyRef,
  cross_entropy_bwd: crossEntropyBwdRef,
};

// soft-target cross-entropy, textbook: explicit log-softmax per row → [loss, lse, Σt]
const softCrossEntropyRef: RefOf<"soft_cross_entropy"> = ([x, t]) => {
  const [n, c] = x.shape;
  const lse = tensor([n]), tsum = tensor([n]);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const row = Array.from(x.data.subarray(i * c, (i + 1) * c));
    const m = Math.max(...row);
    lse.data[i] = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    for (let j = 0; j < c; j++) {
      const tv = t.data[i * c + j];
      total -= tv * (row[j] - lse.data[i]);
      tsum.data[i] += tv;
    }
  }
  return [tensor([1], [total / n]), lse, tsum];
};

// recomputes lse and Σt from the logits and targets (the saved aux is checked by the forward)
const softCrossEntropyBwdRef: RefOf<"soft_cross_entropy_bwd"> = ([x, t, _lse, _tsum, dy], a) => {
  const [n, c] = x.shape;
  const [, lse, tsum] = softCrossEntropyRef([x, t], {}, undefined as never) as T[];
  const dx = tensor(x.shape);
  for (let i = 0; i < n * c; i++) {
    const row = Math.floor(i / c), logp = x.data[i] - lse.data[row];
    const d = a.wrt === "logits" ? Math.exp(logp) * tsum.data[row] - t.data[i] : -logp;
    dx.data[i] = d * dy.data[0] / n;
  }
  return dx;
};

/** The CPU references of the soft-target loss (entries of tests/ref/table.ts). */
export const softLossRefs: RefsFor<"soft_cross_entropy" | "soft_cross_entropy_bwd"> = {
  soft_cross_entropy: softCrossEntropyRef,
  soft_cross_entropy_bwd: softCrossEntropyBwdRef,
};
