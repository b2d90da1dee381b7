// Gather family: embedding lookup `gather(table, idx)` and its adjoint `scatter_add(idx, src, rows)`.
//
// gather: table [V, D] (f32, or frozen f16/bf16 storage), idx i32 of any shape S → [...S, D] f32.
// scatter_add: idx i32 of shape S, src [...S, D] f32 → [V, D], row v = sum of src rows whose index
// is v. Each is the other's gradient. Indices outside [0, V) are data errors the CPU cannot see (they
// live on the GPU), so both kernels define them instead of reading out of bounds: gather yields a
// zero row and scatter_add drops the contribution (consistent: the zero row does not depend on the
// table). idx never gets a gradient.

import { fmtShape, type Node, shapeFail } from "../core/ir.ts";
import { defineOp } from "./attrs.ts";

const gatherOp = defineOp("gather", {
  infer: (inputs) => {
    const [table, idx] = inputs;
    if (
      inputs.length !== 2 || table.rank !== 2 || !["f32", "f16", "bf16"].includes(table.dtype) ||
      idx.dtype !== "i32"
    ) {
      shapeFail("gather", inputs, "a table [V, D] (f32/f16/bf16) and i32 indices of any shape");
    }
    return { shape: [...idx.shape, table.shape[1]], dtype: "f32" };
  },
  grad: (n, dy, needs) => {
    const [table, idx] = n.inputs;
    return [needs[0] ? scatterAdd(idx, dy, table.shape[0]) : undefined, undefined];
  },
});

const scatterAddOp = defineOp("scatter_add", {
  infer: (inputs, attrs) => {
    const [idx, src] = inputs;
    const rows = attrs.rows;
    const ok = inputs.length === 2 && idx.dtype === "i32" && src.dtype === "f32" &&
      src.rank === idx.rank + 1 && idx.shape.every((d, i) => d === src.shape[i]);
    if (!ok || !Number.isInteger(rows) || rows < 1) {
      shapeFail(
        "scatter_add",
        inputs,
        `i32 indices of shape S, f32 rows [...S, D] and a row count >= 1 (got rows=${rows})`,
      );
    }
    return { shape: [rows, src.shape[src.rank - 1]], dtype: "f32" };
  },
  // out[v] = sum_{p: idx[p]=v} src[p], so dsrc[p] = dy[idx[p]] (a gather; zero for bad indices)
  grad: (n, dy, needs) => [undefined, needs[1] ? gather(dy, n.inputs[0]) : undefined],
});

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const gatherOps = { gather: gatherOp, scatter_add: scatterAddOp };

/** Embedding lookup: rows of `table` [V, D] at i32 `idx` (any shape S) → [...S, D]. */
export function gather(table: Node, idx: Node): Node {
  return table.graph.apply(gatherOp, [table, idx], {});
}

/**
 * Sums rows of `src` [...S, D] into a [rows, D] table at i32 `idx` (shape S); repeated indices
 * accumulate, out-of-range ones are dropped. The adjoint of gather.
 */
export function scatterAdd(idx: Node, src: Node, rows: number): Node {
  if (src.rank < 1) shapeFail("scatter_add", [idx, src], `rows [...S, D] for indices ${fmtShape(idx.shape)}`);
  return idx.graph.apply(scatterAddOp, [idx, src], { rows });
}
