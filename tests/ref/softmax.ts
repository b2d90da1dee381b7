// CPU references (f64) of the softmax family.
import { type RefOf, type RefsFor, type T, tensor } from "./f64.ts";

const softmaxRef: RefOf<"softmax"> = ([x]: T[]) => {
  const d = x.shape[x.shape.length - 1];
  const y = tensor(x.shape);
  for (let r = 0; r < x.data.length / d; r++) {
    const row = x.data.subarray(r * d, (r + 1) * d);
    const m = Math.max(...row);
    const e = row.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    y.data.set(e.map((v) => v / s), r * d);
  }
  return y;
};

// dx_i = Σ_j dy_j ∂y_j/∂x_i with ∂y_j/∂x_i = y_j(δ_ij − y_i), written as the full Jacobian product
const softmaxBwdRef: RefOf<"softmax_bwd"> = ([y, dy]: T[]) => {
  const d = y.shape[y.shape.length - 1];
  const dx = tensor(y.shape);
  for (let r = 0; r < y.data.length / d; r++) {
    for (let i = 0; i < d; i++) {
      let acc = 0;
      for (let j = 0; j < d; j++) {
        const yi = y.data[r * d + i], yj = y.data[r * d + j];
        acc += dy.data[r * d + j] * yj * ((i === j ? 1 : 0) - yi);
      }
      dx.data[r * d + i] = acc;
    }
  }
  return dx;
};

/** The CPU references of this family (entries of tests/ref/table.ts). */
export const softmaxRefs: RefsFor<"softmax" | "softmax_bwd"> = {
  softmax: softmaxRef,
  softmax_bwd: softmaxBwdRef,
};
