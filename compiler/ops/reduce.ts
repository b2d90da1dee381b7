// Reductions over one axis: sum (defined with its adjoint expand in broadcast.ts), mean, max. max
// also returns the argmax (an aux output, i32) so its backward routes each gradient to the element
// that won, without recomputing.

import { fmtShape, type Node, type OutSpec, shapeFail } from "../core/ir.ts";
import { defineOp } from "./attrs.ts";
import { reduceShape, spread, sum } from "./broadcast.ts";
import { scale } from "./elementwise.ts";
import { reshape } from "./layout.ts";

export { sum } from "./broadcast.ts";

const meanOp = defineOp("mean", {
  infer: (inputs, attrs) => ({ shape: reduceShape("mean", inputs, attrs), dtype: "f32" }),
  grad: (n, dy) => {
    const x = n.inputs[0];
    const axis = n.attrs.axis < 0 ? n.attrs.axis + x.rank : n.attrs.axis;
    return [scale(spread(x, axis, dy), 1 / x.shape[axis])];
  },
});

const maxOp = defineOp("max", {
  infer: (inputs, attrs): OutSpec => {
    const out = reduceShape("max", inputs, attrs);
    const x = inputs[0];
    if (x.shape[attrs.axis < 0 ? attrs.axis + x.rank : attrs.axis] === 0) {
      shapeFail("max", inputs, "a non-empty axis");
    }
    return { shape: out, dtype: "f32", aux: [{ shape: out, dtype: "i32" }] };
  },
  grad: (n, dy) => [
    n.graph.apply(maxBwdOp, [dy, n.graph.aux(n, 0)], { axis: n.attrs.axis, shape: n.inputs[0].shape }),
  ],
});

const maxBwdOp = defineOp("max_bwd", {
  infer: (inputs, attrs) => {
    const [dy, idx] = inputs;
    const shape = attrs.shape;
    if (inputs.length !== 2 || dy.shape.join() !== idx.shape.join() || idx.dtype !== "i32") {
      shapeFail("max_bwd", inputs, `dy and an i32 argmax of the same shape, for input ${fmtShape(shape)}`);
    }
    return { shape, dtype: "f32" };
  },
  grad: "none",
});

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const reduceOps = { mean: meanOp, max: maxOp, max_bwd: maxBwdOp };

/** Mean over `axis`. */
export function mean(x: Node, axis: number, keepdims = false): Node {
  return x.graph.apply(meanOp, [x], { axis, keepdims });
}
/** Max over `axis`; the argmax is saved for the backward pass (read it with argmax()). */
export function max(x: Node, axis: number, keepdims = false): Node {
  return x.graph.apply(maxOp, [x], { axis, keepdims });
}
/** The i32 index of the maximum along the axis of a max() node (first one on ties). */
export function argmax(maxNode: Node): Node {
  if (maxNode.op !== "max") throw new Error(`argmax: ${maxNode} is not a max node`);
  return maxNode.graph.aux(maxNode, 0);
}
/** Sum of all elements, as shape [1]. */
export function sumAll(x: Node): Node {
  return sum(reshape(x, [x.size]), 0, true);
}
