// CPU references (f64) of the gather family. Out-of-range indices: gather gives a zero row,
// scatter_add drops the contribution (the semantics the kernels document).
import { type RefOf, type RefsFor, tensor } from "./f64.ts";

const gatherRef: RefOf<"gather"> = ([table, idx], _a, n) => {
  const [V, D] = table.shape;
  const out = tensor(n.shape);
  idx.data.forEach((v, p) => {
    if (v < 0 || v >= V) return;
    for (let d = 0; d < D; d++) out.data[p * D + d] = table.data[v * D + d];
  });
  return out;
};

const scatterAddRef: RefOf<"scatter_add"> = ([idx, src], a, n) => {
  const D = n.shape[1];
  const out = tensor(n.shape);
  idx.data.forEach((v, p) => {
    if (v < 0 || v >= a.rows) return;
    for (let d = 0; d < D; d++) out.data[v * D + d] += src.data[p * D + d];
  });
  return out;
};

/** The CPU references of this family (entries of tests/ref/table.ts). */
export const gatherRefs: RefsFor<"gather" | "scatter_add"> = {
  gather: gatherRef,
  scatter_add: scatterAddRef,
};
