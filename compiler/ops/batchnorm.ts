// BatchNorm1d (channels last) and inverted dropout, for Point-BERT-style encoders.
//
// batchNorm(x [..., C], weight [C], bias [C], {training, runningMean, runningVar, eps, momentum}):
//   every row of x (all dims but the last) is one sample of each channel, which is what PyTorch's
//   BatchNorm1d on [N, C, L] normalises over (N and L).
//   training: op `batchnorm` (inputs x, w, b) normalises with the batch statistics and saves them as
//     aux outputs (mean [C], biased var [C]). A separate side-effect op `batchnorm_stats_update`
//     (writes runningMean, runningVar in place) then applies torch's momentum update:
//       running_mean ← (1 − m)·running_mean + m·mean,  running_var ← (1 − m)·running_var + m·var·n/(n−1)
//     The builder creates that node right after the forward (effects run in creation order, and an
//     in-place writer must come after every reader of its target). Collect the effect nodes with
//     `batchNormUpdates(g)` and pass them to compile(outputs, { effects }).
//   eval: op `batchnorm` with attr training false (inputs x, w, b, runningMean, runningVar):
//     y = (x − running_mean)/sqrt(running_var + eps)·w + b, no update.
// Gradients (x̂ = (x − μ)·ρ, ρ = 1/sqrt(var + eps), n rows):
//   `batchnorm_sums` (x, dy, μ, var) → Σ_rows dy [C] (= dbias) with aux Σ_rows dy·x̂ [C] (= dweight);
//   training dx (`batchnorm_bwd`): w·ρ·(dy − Σdy/n − x̂·Σdy·x̂/n) (through the batch statistics);
//   eval dx (`batchnorm_eval_bwd`): dy·w·ρ (the statistics are constants).
//
// dropout(x, p, seed): y = x·keep/(1 − p), keep = hash(seed, i) >= round(p·2³²), where i is the flat
//   element index and hash is DROPOUT_HASH below. The mask is recomputed from (seed, i) in the
//   backward (the same op applied to dy), never stored. seed is a u32/i32 input [1] written per step.

import { type Graph, type Node, ShapeError, shapeFail } from "../core/ir.ts";
import { defineOp, type OpDefOf } from "./attrs.ts";

const FLOATS = ["f32", "f16", "bf16"];

/** Options of batchNorm: mode, the running-stat state tensors, eps and momentum. */
export interface BatchNormOptions {
  /** Normalise with the batch statistics and update the running ones (else use the running ones). */
  training: boolean;
  /** The running mean [C]: an f32 state tensor (g.state). */
  runningMean: Node;
  /** The running (unbiased) variance [C]: an f32 state tensor (g.state). */
  runningVar: Node;
  /** Added to the variance (default 1e-5, as torch). */
  eps?: number;
  /** Weight of the new batch statistic in the running stats (default 0.1, as torch). */
  momentum?: number;
}

const channels = (x: Node) => x.shape[x.rank - 1];
const isVec = (v: Node | undefined, c: number) => v !== undefined && v.rank === 1 && v.shape[0] === c;

const batchnormOp = defineOp("batchnorm", {
  infer: (inputs, attrs) => {
    const [x, w, b, rm, rv] = inputs;
    const training = attrs.training === true;
    const what = `x [..., C] f32 (rows >= ${training ? 2 : 1}), weight [C], bias [C] (f32/f16/bf16)` +
      (training ? "" : ", runningMean [C], runningVar [C] (f32)");
    if (inputs.length !== (training ? 3 : 5) || x.dtype !== "f32" || x.rank < 1) {
      shapeFail("batchnorm", inputs, what);
    }
    const c = channels(x);
    const rows = x.size / Math.max(c, 1);
    if (c < 1 || rows < (training ? 2 : 1)) shapeFail("batchnorm", inputs, what);
    for (const p of [w, b]) {
      if (!isVec(p, c) || !FLOATS.includes(p.dtype)) shapeFail("batchnorm", inputs, what);
    }
    if (!training) {
      for (const s of [rm, rv]) if (!isVec(s, c) || s.dtype !== "f32") shapeFail("batchnorm", inputs, what);
    }
    if (typeof attrs.eps !== "number" || !(attrs.eps >= 0)) {
      shapeFail("batchnorm", inputs, "a numeric eps >= 0");
    }
    const stat = { shape: [c], dtype: "f32" as const };
    return { shape: x.shape, dtype: "f32", aux: training ? [stat, stat] : [] };
  },
  grad: (n, dy, needs) => {
    const g = n.graph;
    const [x, w] = n.inputs;
    const training = n.attrs.training === true;
    const [mean, vr] = training ? [g.aux(n, 0), g.aux(n, 1)] : [n.inputs[3], n.inputs[4]];
    const out: (Node | undefined)[] = n.inputs.map(() => undefined);
    const eps = n.attrs.eps;
    // Σdy and Σdy·x̂ per channel: dbias, dweight, and (training) the dx correction terms
    const sums = (needs[1] || needs[2] || (needs[0] && training))
      ? g.apply(batchnormSumsOp, [x, dy, mean, vr], { eps })
      : undefined;
    if (needs[0]) {
      out[0] = training
        ? g.apply(batchnormBwdOp, [x, dy, mean, vr, w, sums!, g.aux(sums!, 0)], { eps })
        : g.apply(batchnormEvalBwdOp, [dy, w, vr], { eps });
    }
    if (needs[1]) out[1] = g.aux(sums!, 0);
    if (needs[2]) out[2] = sums;
    return out;
  },
});

/** Shape rule of the backward ops: x, dy of one shape [..., C], then [C] f32 vectors. */
function bwdCheck(op: string, inputs: readonly Node[], nVec: number, what: string): number {
  const [x, dy] = inputs;
  if (inputs.length !== 2 + nVec || x.dtype !== "f32" || dy.dtype !== "f32" || x.rank < 1) {
    shapeFail(op, inputs, what);
  }
  const c = channels(x);
  if (dy.shape.join() !== x.shape.join() || !inputs.slice(2).every((v) => isVec(v, c))) {
    shapeFail(op, inputs, what);
  }
  return c;
}

const batchnormSumsOp = defineOp("batchnorm_sums", {
  grad: "none",
  infer: (inputs) => {
    const c = bwdCheck("batchnorm_sums", inputs, 2, "x, dy [..., C] f32, mean [C], var [C]");
    return { shape: [c], dtype: "f32", aux: [{ shape: [c], dtype: "f32" }] };
  },
});

const batchnormBwdOp = defineOp("batchnorm_bwd", {
  grad: "none",
  infer: (inputs) => {
    bwdCheck("batchnorm_bwd", inputs, 5, "x, dy [..., C] f32, mean, var, weight, Σdy, Σdy·x̂ [C]");
    return { shape: inputs[0].shape, dtype: "f32" };
  },
});

const batchnormEvalBwdOp = defineOp("batchnorm_eval_bwd", {
  grad: "none",
  infer: (inputs) => {
    const [dy, w, rv] = inputs;
    if (
      inputs.length !== 3 || dy.dtype !== "f32" || dy.rank < 1 || !isVec(w, channels(dy)) ||
      !isVec(rv, channels(dy))
    ) {
      shapeFail("batchnorm_eval_bwd", inputs, "dy [..., C] f32, weight [C], runningVar [C]");
    }
    return { shape: dy.shape, dtype: "f32" };
  },
});

const batchnormStatsUpdateOp = defineOp("batchnorm_stats_update", {
  grad: "none",
  writes: [0, 1],
  infer: (inputs, attrs) => {
    const [rm, rv, mean, vr] = inputs;
    const what = "runningMean, runningVar (f32 state tensors [C], distinct), batch mean, var [C]";
    if (inputs.length !== 4) shapeFail("batchnorm_stats_update", inputs, what);
    const c = rm.shape[0];
    if (![rm, rv, mean, vr].every((v) => isVec(v, c) && v.dtype === "f32")) {
      shapeFail("batchnorm_stats_update", inputs, what);
    }
    for (const s of [rm, rv]) {
      if (s.kind !== "state") {
        shapeFail(
          "batchnorm_stats_update",
          inputs,
          `${what}; ${s} is a ${s.kind}, not a state tensor (g.state)`,
        );
      }
    }
    if (rm === rv) shapeFail("batchnorm_stats_update", inputs, `${what}; got the same tensor twice`);
    const m = attrs.momentum, n = attrs.n;
    if (typeof m !== "number" || !(m >= 0 && m <= 1) || !Number.isInteger(n) || n < 2) {
      shapeFail("batchnorm_stats_update", inputs, `momentum in [0, 1] and rows n >= 2 (got ${m}, ${n})`);
    }
    return { shape: [1], dtype: "f32" };
  },
});

/**
 * Batch normalisation over all rows of x [..., C] (channels last), as torch's BatchNorm1d. In
 * training mode it also creates the running-stat update effect (see batchNormUpdates).
 */
export function batchNorm(x: Node, weight: Node, bias: Node, opts: BatchNormOptions): Node {
  const g = x.graph;
  const { training, runningMean: rm, runningVar: rv } = opts;
  const eps = opts.eps ?? 1e-5, momentum = opts.momentum ?? 0.1;
  const all = [x, weight, bias, rm, rv];
  const c = x.rank >= 1 ? channels(x) : -1;
  for (const s of [rm, rv]) {
    if (s.kind !== "state" || !isVec(s, c) || s.dtype !== "f32") {
      shapeFail("batchnorm", all, `runningMean/runningVar f32 state tensors (g.state) of shape [${c}]`);
    }
  }
  if (rm === rv) shapeFail("batchnorm", all, "distinct runningMean and runningVar");
  if (!training) return g.apply(batchnormOp, all, { training: false, eps });
  const y = g.apply(batchnormOp, [x, weight, bias], { training: true, eps });
  g.apply(batchnormStatsUpdateOp, [rm, rv, g.aux(y, 0), g.aux(y, 1)], { momentum, n: x.size / c });
  return y;
}

/**
 * The running-stat update effects of every training-mode batchNorm built in `g` so far, in creation
 * order: pass them to compile(outputs, { effects }) (with any optimizer effects).
 */
export function batchNormUpdates(g: Graph): Node[] {
  return g.nodes.filter((n) => n.op === "batchnorm_stats_update");
}

// (typed explicitly: its gradient rule applies the op itself)
const dropoutOp: OpDefOf<"dropout"> = defineOp("dropout", {
  infer: (inputs, attrs) => {
    const [x, seed] = inputs;
    if (
      inputs.length !== 2 || x.dtype !== "f32" || seed.shape.join() !== "1" ||
      (seed.dtype !== "u32" && seed.dtype !== "i32")
    ) {
      shapeFail("dropout", inputs, "x f32 and a u32/i32 seed [1]");
    }
    const p = attrs.p;
    if (typeof p !== "number" || !(p >= 0 && p < 1)) shapeFail("dropout", inputs, `p in [0, 1) (got ${p})`);
    return { shape: x.shape, dtype: "f32" };
  },
  // the mask is a function of (seed, index) only: the same op on dy applies it again
  grad: (n, dy, needs) => [needs[0] ? n.graph.apply(dropoutOp, [dy, n.inputs[1]], n.attrs) : undefined],
});

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const batchnormOps = {
  batchnorm: batchnormOp,
  batchnorm_sums: batchnormSumsOp,
  batchnorm_bwd: batchnormBwdOp,
  batchnorm_eval_bwd: batchnormEvalBwdOp,
  batchnorm_stats_update: batchnormStatsUpdateOp,
  dropout: dropoutOp,
};

/**
 * The dropout hash, on u32: pcg(v) = the PCG-RXS-M-XS output of one LCG step (Jarzynski & Olano,
 * "Hash Functions for GPU Rendering", 2020); h(seed, i) = pcg(pcg(i) ^ pcg(seed + 0x9e3779b9)).
 * Element i is dropped when h < dropThreshold(p).
 */
export const DROPOUT_HASH = {
  lcgMul: 747796405,
  lcgAdd: 2891336453,
  rxsMul: 277803737,
  seedOffset: 0x9e3779b9,
} as const;

/** Drop elements whose hash is below this: round(p·2³²), so P(drop) = p up to 2⁻³². */
export function dropThreshold(p: number): number {
  return Math.min(0xffffffff, Math.round(p * 2 ** 32));
}

/** Inverted dropout with drop probability p (training); p = 0 returns x itself. */
export function dropout(x: Node, p: number, seed: Node): Node {
  if (p === 0) {
    if (!(seed.shape.join() === "1" && (seed.dtype === "u32" || seed.dtype === "i32"))) {
      throw new ShapeError(`dropout: seed must be a u32/i32 [1], got ${seed}`);
    }
    return x;
  }
  return x.graph.apply(dropoutOp, [x, seed], { p });
}
