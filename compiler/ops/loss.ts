// Loss ops: cross-entropy over class logits with optional label smoothing, as the mean over rows.
//
// cross_entropy(logits [N,C] f32, labels [N] i32) → [1], the mean of the per-row losses
//   loss_i = −Σ_c target_ic · log_softmax(logits_i)_c
// with two smoothing conventions (ε = attrs.smoothing):
//   "uniform": target = (1−ε)·onehot + ε/C            (PyTorch F.cross_entropy(label_smoothing=ε))
//   "others":  target = 1−ε on the label, ε/(C−1) elsewhere   (Point-BERT's smoothed loss)
// The per-row log-sum-exp is an aux output, so the backward op is a single elementwise pass:
//   cross_entropy_bwd(logits, labels, lse, dy) → (softmax − target) · dy / N.
// Labels are never differentiated. An out-of-range label makes its row's loss and gradient NaN
// (kernels never index with it), so a bad label shows up in the loss instead of reading garbage.

import { type Node, shapeFail } from "../core/ir.ts";
import { defineOp, type Smoothing } from "./attrs.ts";

export type { CrossEntropyAttrs, Smoothing } from "./attrs.ts";

/** Options of crossEntropy: label smoothing ε and how it is spread over the classes. */
export interface CrossEntropyOptions {
  /** ε in [0, 1); default 0 (plain cross-entropy). */
  labelSmoothing?: number;
  /** How ε is spread over the classes; default "uniform" (PyTorch's convention). */
  smoothing?: Smoothing;
}

const crossEntropyOp = defineOp("cross_entropy", {
  infer: (inputs, attrs) => {
    const [x, labels] = inputs;
    const expect = "logits [N,C] f32 and labels [N] i32";
    if (inputs.length !== 2 || x.rank !== 2 || x.dtype !== "f32") shapeFail("cross_entropy", inputs, expect);
    if (labels.dtype !== "i32" || labels.rank !== 1 || labels.shape[0] !== x.shape[0]) {
      shapeFail("cross_entropy", inputs, `${expect} (labels must be i32 of shape [${x.shape[0]}])`);
    }
    const eps = attrs.smoothing;
    if (typeof eps !== "number" || !(eps >= 0 && eps < 1)) {
      shapeFail("cross_entropy", inputs, `label smoothing in [0, 1) (got ${eps})`);
    }
    if (attrs.mode !== "uniform" && attrs.mode !== "others") {
      shapeFail("cross_entropy", inputs, `smoothing mode "uniform" or "others" (got ${attrs.mode})`);
    }
    if (x.shape[0] === 0 || x.shape[1] === 0) shapeFail("cross_entropy", inputs, "N >= 1 and C >= 1");
    if (attrs.mode === "others" && eps > 0 && x.shape[1] < 2) {
      shapeFail("cross_entropy", inputs, `C >= 2 for "others" smoothing (ε/(C−1))`);
    }
    return { shape: [1], dtype: "f32", aux: [{ shape: [x.shape[0]], dtype: "f32" }] };
  },
  grad: (n, dy, needs) => {
    const [x, labels] = n.inputs;
    const lse = n.graph.aux(n, 0);
    return [needs[0] ? n.graph.apply(crossEntropyBwdOp, [x, labels, lse, dy], n.attrs) : undefined];
  },
});

const crossEntropyBwdOp = defineOp("cross_entropy_bwd", {
  grad: "none",
  infer: (inputs) => {
    const [x, labels, lse, dy] = inputs;
    if (
      inputs.length !== 4 || x.rank !== 2 || x.dtype !== "f32" || labels.dtype !== "i32" ||
      labels.shape.join() !== `${x.shape[0]}` || lse.shape.join() !== `${x.shape[0]}` ||
      lse.dtype !== "f32" || dy.shape.join() !== "1" || dy.dtype !== "f32"
    ) {
      shapeFail("cross_entropy_bwd", inputs, "logits [N,C] f32, labels [N] i32, lse [N] f32, dy [1] f32");
    }
    return { shape: x.shape, dtype: "f32" };
  },
});

/**
 * Mean cross-entropy of `logits` [N,C] against integer `labels` [N] (i32), as shape [1].
 * `labelSmoothing` ε with `smoothing` "uniform" (PyTorch) or "others" (Point-BERT), see above.
 * When `labels` is an input, write() refuses values outside [0, C).
 */
export function crossEntropy(logits: Node, labels: Node, opts: CrossEntropyOptions = {}): Node {
  const out = logits.graph.apply(crossEntropyOp, [logits, labels], {
    smoothing: opts.labelSmoothing ?? 0,
    mode: opts.smoothing ?? "uniform",
  });
  // a label outside [0, C) makes its row NaN (the kernel never indexes with it); when the labels are
  // an input, the runtime refuses such values at write() instead, naming the node and the value
  const c = logits.shape[1];
  labels.requireRange(0, c, `crossEntropy labels are class indices in [0, ${c}) for ${c} classes`);
  return out;
}

// soft_cross_entropy(logits [N,C] f32, targets [N,C] f32) → [1]: timm's SoftTargetCrossEntropy,
//   the mean over rows of loss_i = −Σ_c t_ic · log_softmax(logits_i)_c = T_i·lse_i − Σ_c t_ic·x_ic
//   with T_i = Σ_c t_ic (1 for Mixup/CutMix targets, but not assumed). Aux outputs: lse [N] and T [N],
//   so both backward passes are single elementwise passes:
//   soft_cross_entropy_bwd(logits, targets, lse, T, dy) {wrt: "logits"} → (softmax·T_i − t) · dy / N
//   soft_cross_entropy_bwd(…)                           {wrt: "targets"} → (lse_i − x) · dy / N
const softCeSpec = "logits [N,C] f32 and targets [N,C] f32";

const softCrossEntropyOp = defineOp("soft_cross_entropy", {
  infer: (inputs) => {
    const [x, t] = inputs;
    if (inputs.length !== 2 || x.rank !== 2 || x.dtype !== "f32" || t.dtype !== "f32") {
      shapeFail("soft_cross_entropy", inputs, softCeSpec);
    }
    if (t.shape.join() !== x.shape.join()) {
      shapeFail("soft_cross_entropy", inputs, `${softCeSpec} (same shape)`);
    }
    if (x.shape[0] === 0 || x.shape[1] === 0) shapeFail("soft_cross_entropy", inputs, "N >= 1 and C >= 1");
    const row = { shape: [x.shape[0]], dtype: "f32" as const };
    return { shape: [1], dtype: "f32", aux: [row, row] };
  },
  grad: (n, dy, needs) => {
    const g = n.graph;
    const ins = [...n.inputs, g.aux(n, 0), g.aux(n, 1), dy];
    return [
      needs[0] ? g.apply(softCrossEntropyBwdOp, ins, { wrt: "logits" }) : undefined,
      needs[1] ? g.apply(softCrossEntropyBwdOp, ins, { wrt: "targets" }) : undefined,
    ];
  },
});

const softCrossEntropyBwdOp = defineOp("soft_cross_entropy_bwd", {
  grad: "none",
  infer: (inputs, attrs) => {
    const [x, t, lse, tsum, dy] = inputs;
    const rows = `${x?.shape[0]}`;
    if (
      inputs.length !== 5 || x.rank !== 2 || x.dtype !== "f32" || t.dtype !== "f32" ||
      t.shape.join() !== x.shape.join() || lse.shape.join() !== rows || lse.dtype !== "f32" ||
      tsum.shape.join() !== rows || tsum.dtype !== "f32" || dy.shape.join() !== "1" || dy.dtype !== "f32"
    ) {
      shapeFail("soft_cross_entropy_bwd", inputs, "logits, targets [N,C], lse [N], T [N], dy [1], all f32");
    }
    if (attrs.wrt !== "logits" && attrs.wrt !== "targets") {
      shapeFail("soft_cross_entropy_bwd", inputs, `wrt "logits" or "targets" (got ${attrs.wrt})`);
    }
    return { shape: x.shape, dtype: "f32" };
  },
});

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const lossOps = {
  cross_entropy: crossEntropyOp,
  cross_entropy_bwd: crossEntropyBwdOp,
  soft_cross_entropy: softCrossEntropyOp,
  soft_cross_entropy_bwd: softCrossEntropyBwdOp,
};

/**
 * Mean soft-target cross-entropy of `logits` [N,C] against a target distribution `targets` [N,C]
 * (f32), as shape [1]: timm's SoftTargetCrossEntropy, the loss of Mixup/CutMix training.
 */
export function softCrossEntropy(logits: Node, targets: Node): Node {
  return logits.graph.apply(softCrossEntropyOp, [logits, targets], {});
}
