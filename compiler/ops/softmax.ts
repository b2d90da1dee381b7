// Softmax over the last axis, numerically stable (the row max is subtracted before exp). Its
// backward op takes the forward output y and dy: dx = y ⊙ (dy − Σ_row dy ⊙ y).

import { type Node, normAxis, shapeFail } from "../core/ir.ts";
import { defineOp } from "./attrs.ts";

const softmaxOp = defineOp("softmax", {
  infer: (inputs, attrs) => {
    const x = inputs[0];
    if (inputs.length !== 1 || x.dtype !== "f32" || x.rank < 1) {
      shapeFail("softmax", inputs, "one f32 input of rank >= 1");
    }
    const axis = normAxis("softmax", attrs.axis, x.rank);
    if (axis !== x.rank - 1) {
      shapeFail(
        "softmax",
        inputs,
        `the last axis (${x.rank - 1} or -1); got axis ${attrs.axis} (transpose the axis to the end first)`,
      );
    }
    return { shape: x.shape, dtype: "f32" };
  },
  grad: (n, dy) => [n.graph.apply(softmaxBwdOp, [n, dy], {})],
});

const softmaxBwdOp = defineOp("softmax_bwd", {
  grad: "none",
  infer: (inputs) => {
    const [y, dy] = inputs;
    if (
      inputs.length !== 2 || y.dtype !== "f32" || dy.dtype !== "f32" || y.rank < 1 ||
      y.shape.join() !== dy.shape.join()
    ) {
      shapeFail("softmax_bwd", inputs, "the softmax output y and dy, both f32 and of the same shape");
    }
    return { shape: y.shape, dtype: "f32" };
  },
});

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const softmaxOps = { softmax: softmaxOp, softmax_bwd: softmaxBwdOp };

/** Softmax along `axis`, which must be the last one (-1 or rank-1). */
export function softmax(x: Node, axis = -1): Node {
  return x.graph.apply(softmaxOp, [x], { axis });
}
