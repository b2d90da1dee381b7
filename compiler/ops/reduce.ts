// Reductions over one axis: sum, mean, max. max also returns the argmax (an aux output, i32) so its
// backward routes each gradient to the element that won, without recomputing.

import { fmtShape, type Node, normAxis, type OutSpec, shapeFail } from "../core/ir.ts";
import { defineOp } from "./registry.ts";
import { expand, scale } from "./elementwise.ts";
import { reshape } from "./layout.ts";

function reduceInfer(op: string) {
  return (inputs: readonly Node[], attrs: Record<string, unknown>): OutSpec => {
    const x = inputs[0];
    if (inputs.length !== 1 || x.dtype !== "f32") shapeFail(op, inputs, "one f32 input");
    const axis = normAxis(op, attrs.axis as number, x.rank);
    const shape = x.shape.filter((_, i) => i !== axis);
    const out = attrs.keepdims ? x.shape.map((d, i) => (i === axis ? 1 : d)) : shape;
    if (op === "max") {
      if (x.shape[axis] === 0) shapeFail(op, inputs, "a non-empty axis");
      return { shape: out, dtype: "f32", aux: [{ shape: out, dtype: "i32" }] };
    }
    return { shape: out, dtype: "f32" };
  };
}

/** dy of a reduction, reshaped with the reduced axis kept and broadcast back over it. */
function spread(n: Node, dy: Node): Node {
  const x = n.inputs[0];
  const axis = normAxis(n.op, n.attrs.axis as number, x.rank);
  const kept = x.shape.map((d, i) => (i === axis ? 1 : d));
  return expand(reshape(dy, kept), x.shape);
}

defineOp({ name: "sum", infer: reduceInfer("sum"), grad: (n, dy) => [spread(n, dy)] });
defineOp({
  name: "mean",
  infer: reduceInfer("mean"),
  grad: (n, dy) => {
    const x = n.inputs[0];
    const len = x.shape[normAxis("mean", n.attrs.axis as number, x.rank)];
    return [scale(spread(n, dy), 1 / len)];
  },
});
defineOp({
  name: "max",
  infer: reduceInfer("max"),
  grad: (
    n,
    dy,
  ) => [n.graph.apply("max_bwd", [dy, n.graph.aux(n, 0)], { axis: n.attrs.axis, shape: n.inputs[0].shape })],
});
defineOp({
  name: "max_bwd",
  infer: (inputs, attrs) => {
    const [dy, idx] = inputs;
    const shape = attrs.shape as number[];
    if (inputs.length !== 2 || dy.shape.join() !== idx.shape.join() || idx.dtype !== "i32") {
      shapeFail("max_bwd", inputs, `dy and an i32 argmax of the same shape, for input ${fmtShape(shape)}`);
    }
    return { shape, dtype: "f32" };
  },
});

/** Sum over `axis`. */
export function sum(x: Node, axis: number, keepdims = false): Node {
  return x.graph.apply("sum", [x], { axis, keepdims });
}
/** Mean over `axis`. */
export function mean(x: Node, axis: number, keepdims = false): Node {
  return x.graph.apply("mean", [x], { axis, keepdims });
}
/** Max over `axis`; the argmax is saved for the backward pass (read it with argmax()). */
export function max(x: Node, axis: number, keepdims = false): Node {
  return x.graph.apply("max", [x], { axis, keepdims });
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
