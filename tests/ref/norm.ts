// CPU references (f64) of the norm family, written row by row straight from the definitions.
import type { NormAttrs } from "../../compiler/ops/attrs.ts";
import { type RefOf, type RefsFor, type T, tensor } from "./f64.ts";

function rowsOf(x: T) {
  const d = x.shape[x.shape.length - 1];
  return { d, rows: x.data.length / d };
}
const statShape = (x: T) => x.shape.slice(0, -1);

/** layernorm / rmsnorm forward; returns [y, mean, rstd] or [y, rstd]. */
function normRef(kind: "layernorm" | "rmsnorm") {
  return (ins: T[], a: NormAttrs): T[] => {
    const x = ins[0];
    const w = a.weight ? ins[1] : undefined;
    const b = a.bias ? ins[a.weight ? 2 : 1] : undefined;
    const { d, rows } = rowsOf(x);
    const y = tensor(x.shape), mean = tensor(statShape(x)), rstd = tensor(statShape(x));
    for (let r = 0; r < rows; r++) {
      const row = x.data.subarray(r * d, (r + 1) * d);
      const mu = kind === "layernorm" ? row.reduce((s, v) => s + v, 0) / d : 0;
      const ms = row.reduce((s, v) => s + (v - mu) ** 2, 0) / d;
      const rs = 1 / Math.sqrt(ms + a.eps);
      for (let j = 0; j < d; j++) {
        y.data[r * d + j] = (row[j] - mu) * rs * (w ? w.data[j] : 1) + (b ? b.data[j] : 0);
      }
      mean.data[r] = mu;
      rstd.data[r] = rs;
    }
    return kind === "layernorm" ? [y, mean, rstd] : [y, rstd];
  };
}

/** dx from the chain rule through x̂ = (x − μ)·ρ, with μ = mean(x) (layernorm) or 0 (rmsnorm) and
 * ρ = (mean((x − μ)²) + eps)^(-1/2):  dx_i = ρ·g_i − ρ·mean(g) [layernorm] − x̂_i·ρ·mean(g·x̂). */
function normBwdRef(kind: "layernorm" | "rmsnorm") {
  return (ins: T[], a: { weight: boolean }): T => {
    const [x, dy] = ins;
    const mean = kind === "layernorm" ? ins[2] : undefined;
    const rstd = ins[kind === "layernorm" ? 3 : 2];
    const w = a.weight ? ins[ins.length - 1] : undefined;
    const { d, rows } = rowsOf(x);
    const dx = tensor(x.shape);
    for (let r = 0; r < rows; r++) {
      const mu = mean ? mean.data[r] : 0, rho = rstd.data[r];
      const g = Array.from({ length: d }, (_, j) => dy.data[r * d + j] * (w ? w.data[j] : 1));
      const xh = Array.from({ length: d }, (_, j) => (x.data[r * d + j] - mu) * rho);
      const gMean = kind === "layernorm" ? g.reduce((s, v) => s + v, 0) / d : 0;
      const gxMean = g.reduce((s, v, j) => s + v * xh[j], 0) / d;
      for (let j = 0; j < d; j++) dx.data[r * d + j] = rho * (g[j] - gMean - xh[j] * gxMean);
    }
    return dx;
  };
}

const normWgradRef: RefOf<"norm_wgrad"> = ([x, dy, rstd, mean], a, n) => {
  const { d, rows } = rowsOf({ shape: [...x.shape], data: x.data });
  const out = tensor(n.shape);
  for (let r = 0; r < rows; r++) {
    const blk = Math.floor(r / a.rowsPerBlock);
    for (let j = 0; j < d; j++) {
      const xh = (x.data[r * d + j] - (mean ? mean.data[r] : 0)) * rstd.data[r];
      out.data[blk * d + j] += dy.data[r * d + j] * xh;
    }
  }
  return out;
};

/** The CPU references of this family (entries of tests/ref/table.ts). */
export const normRefs: RefsFor<"layernorm" | "rmsnorm" | "layernorm_bwd" | "rmsnorm_bwd" | "norm_wgrad"> = {
  layernorm: normRef("layernorm"),
  rmsnorm: normRef("rmsnorm"),
  layernorm_bwd: normBwdRef("layernorm"),
  rmsnorm_bwd: normBwdRef("rmsnorm"),
  norm_wgrad: normWgradRef,
};
