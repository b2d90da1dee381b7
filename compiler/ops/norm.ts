// Normalisations over the last axis (rows = product of the other dims): layerNorm and rmsNorm.
//
// The forward ops save their per-row statistics as aux outputs (layernorm: mean and rstd; rmsnorm:
// rstd, each shaped like x without its last dim), so the backward kernels need not recompute them:
//   x̂ = (x − mean)·rstd (layernorm) or x·rstd (rmsnorm),  g = dy·weight (or dy),
//   dx = rstd·(g − mean(g) − x̂·mean(g·x̂))   (layernorm; rmsnorm drops the mean(g) term).
// Weight/bias gradients are built only when asked for (frozen LLM norms get none):
//   dbias = Σ_rows dy (the sum op), dweight = Σ_rows dy·x̂ as `norm_wgrad` (partial sums over blocks
//   of rows, [blocks, D]) followed by the sum op over the blocks.
// x is f32; weight and bias are [D] and may be stored f32, f16 or bf16 (frozen weights).

import { fmtShape, type Node, type OpNode, type OutSpec, shapeFail } from "../core/ir.ts";
import { defineOp, type NormAttrs } from "./attrs.ts";
import { reshape } from "./layout.ts";
import { sum } from "./broadcast.ts";

/** Rows of x each norm_wgrad workgroup column-block sums over (the partial sums' block size). */
const WGRAD_ROWS_PER_BLOCK = 64;

const FLOATS = ["f32", "f16", "bf16"];

/** Shared shape rule of layernorm/rmsnorm: inputs are x, then the weight and bias the attrs list. */
function normInfer(op: "layernorm" | "rmsnorm") {
  return (inputs: readonly Node[], attrs: NormAttrs): OutSpec => {
    const x = inputs[0];
    const nParams = (attrs.weight ? 1 : 0) + (attrs.bias ? 1 : 0);
    const what = op === "layernorm" ? "optional weight and bias" : "an optional weight";
    if (inputs.length !== 1 + nParams || !x || x.dtype !== "f32" || x.rank < 1 || x.shape[x.rank - 1] < 1) {
      shapeFail(op, inputs, `an f32 input x of rank >= 1 with a non-empty last axis, and ${what}`);
    }
    const d = x.shape[x.rank - 1];
    for (const p of inputs.slice(1)) {
      if (p.rank !== 1 || p.shape[0] !== d || !FLOATS.includes(p.dtype)) {
        shapeFail(op, inputs, `weight/bias of shape [${d}] (x's last dim), stored f32, f16 or bf16`);
      }
    }
    if (typeof attrs.eps !== "number" || !(attrs.eps >= 0)) shapeFail(op, inputs, "a numeric eps >= 0");
    const stat = { shape: x.shape.slice(0, -1), dtype: "f32" as const };
    return { shape: x.shape, dtype: "f32", aux: op === "layernorm" ? [stat, stat] : [stat] };
  };
}

/** Input positions of x, weight, bias in a norm node (-1 when absent). */
function parts(n: OpNode<NormAttrs>) {
  const w = n.attrs.weight ? 1 : -1;
  const b = n.attrs.bias ? (w > 0 ? 2 : 1) : -1;
  return { w, b };
}

function normGrad(kind: "layernorm" | "rmsnorm") {
  return (n: OpNode<NormAttrs>, dy: Node, needs: readonly boolean[]): (Node | undefined)[] => {
    const g = n.graph;
    const x = n.inputs[0];
    const { w, b } = parts(n);
    // statistics, created only if a gradient that needs them is asked for
    const stats = () =>
      kind === "layernorm"
        ? { mean: g.aux(n, 0), rstd: g.aux(n, 1) }
        : { mean: undefined, rstd: g.aux(n, 0) };
    const out: (Node | undefined)[] = n.inputs.map(() => undefined);
    const s = needs[0] || (w > 0 && needs[w]) ? stats() : undefined;
    if (needs[0]) {
      const ins = kind === "layernorm" ? [x, dy, s!.mean!, s!.rstd] : [x, dy, s!.rstd];
      if (w > 0) ins.push(n.inputs[w]);
      out[0] = g.apply(kind === "layernorm" ? layernormBwdOp : rmsnormBwdOp, ins, { weight: w > 0 });
    }
    const d = x.shape[x.rank - 1];
    const rows = x.size / d;
    if (w > 0 && needs[w]) {
      const ins = s!.mean ? [x, dy, s!.rstd, s!.mean] : [x, dy, s!.rstd];
      const partial = g.apply(normWgradOp, ins, { rowsPerBlock: WGRAD_ROWS_PER_BLOCK });
      out[w] = partial.shape[0] === 1 ? reshape(partial, [d]) : sum(partial, 0);
    }
    if (b > 0 && needs[b]) out[b] = rows === 1 ? reshape(dy, [d]) : sum(reshape(dy, [rows, d]), 0);
    return out;
  };
}

const layernormOp = defineOp("layernorm", { infer: normInfer("layernorm"), grad: normGrad("layernorm") });
const rmsnormOp = defineOp("rmsnorm", { infer: normInfer("rmsnorm"), grad: normGrad("rmsnorm") });

/** Shape rule of the dx ops: x, dy, [mean,] rstd, [weight]. */
function bwdInfer(op: "layernorm_bwd" | "rmsnorm_bwd") {
  return (inputs: readonly Node[], attrs: { weight: boolean }): OutSpec => {
    const nStats = op === "layernorm_bwd" ? 2 : 1;
    const [x, dy] = inputs;
    const want = `x, dy (f32, same shape), ${nStats === 2 ? "mean, rstd" : "rstd"} (x's shape without the ` +
      `last dim)${attrs.weight ? " and a weight [D]" : ""}`;
    if (inputs.length !== 2 + nStats + (attrs.weight ? 1 : 0) || x.dtype !== "f32" || dy.dtype !== "f32") {
      shapeFail(op, inputs, want);
    }
    const rowShape = fmtShape(x.shape.slice(0, -1));
    const ok = dy.shape.join() === x.shape.join() &&
      inputs.slice(2, 2 + nStats).every((s) => fmtShape(s.shape) === rowShape && s.dtype === "f32") &&
      (!attrs.weight || inputs[2 + nStats].shape.join() === String(x.shape[x.rank - 1]));
    if (!ok) shapeFail(op, inputs, want);
    return { shape: x.shape, dtype: "f32" };
  };
}
const layernormBwdOp = defineOp("layernorm_bwd", { infer: bwdInfer("layernorm_bwd"), grad: "none" });
const rmsnormBwdOp = defineOp("rmsnorm_bwd", { infer: bwdInfer("rmsnorm_bwd"), grad: "none" });

// Per-block partial sums of dy·x̂ over rows: inputs x, dy, rstd[, mean] → [ceil(rows/rowsPerBlock), D].
const normWgradOp = defineOp("norm_wgrad", {
  grad: "none",
  infer: (inputs, attrs) => {
    const [x, dy, rstd, mean] = inputs;
    const rpb = attrs.rowsPerBlock;
    const rowShape = fmtShape(x?.shape.slice(0, -1) ?? []);
    if (
      inputs.length < 3 || inputs.length > 4 || x.dtype !== "f32" || dy.shape.join() !== x.shape.join() ||
      fmtShape(rstd.shape) !== rowShape || (mean && fmtShape(mean.shape) !== rowShape) ||
      !Number.isInteger(rpb) || rpb < 1
    ) {
      shapeFail("norm_wgrad", inputs, "x, dy (same shape), rstd[, mean] (x's shape without the last dim)");
    }
    const d = x.shape[x.rank - 1];
    return { shape: [Math.max(1, Math.ceil(x.size / d / rpb)), d], dtype: "f32" };
  },
});

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const normOps = {
  layernorm: layernormOp,
  rmsnorm: rmsnormOp,
  layernorm_bwd: layernormBwdOp,
  rmsnorm_bwd: rmsnormBwdOp,
  norm_wgrad: normWgradOp,
};

/**
 * Layer normalisation over the last axis: (x − mean)/sqrt(var + eps)·weight + bias, with the biased
 * variance (as PyTorch). weight and bias ([D], f32/f16/bf16) are each optional.
 */
export function layerNorm(x: Node, weight?: Node, bias?: Node, eps = 1e-5): Node {
  const ins = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  return x.graph.apply(layernormOp, ins, { eps, weight: !!weight, bias: !!bias });
}

/** RMS normalisation over the last axis (LLaMA): x/sqrt(mean(x²) + eps)·weight; no weight = unit scale. */
export function rmsNorm(x: Node, weight?: Node, eps = 1e-6): Node {
  return x.graph.apply(rmsnormOp, weight ? [x, weight] : [x], { eps, weight: !!weight, bias: false });
}
