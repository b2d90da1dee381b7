// Broadcasting and its adjoint: `expand` (materialise NumPy broadcasting) and `sum` over one axis are
// each other's gradient, so they are defined together, with `sumTo` (a broadcast gradient summed
// back to its input's shape). Every family that broadcasts builds its gradients from these; the
// other reductions (mean, max) are in reduce.ts.

import { broadcastShapes, fmtShape, type Node, normAxis, type Shape, shapeFail } from "../core/ir.ts";
import { type AxisAttrs, defineOp } from "./attrs.ts";
import { reshape } from "./layout.ts";

/** Shape rule of the reductions over one axis (sum here, mean and max in reduce.ts). */
export function reduceShape(op: string, inputs: readonly Node[], attrs: AxisAttrs): number[] {
  const x = inputs[0];
  if (inputs.length !== 1 || x.dtype !== "f32") shapeFail(op, inputs, "one f32 input");
  const axis = normAxis(op, attrs.axis, x.rank);
  const shape = x.shape.filter((_, i) => i !== axis);
  return attrs.keepdims ? x.shape.map((d, i) => (i === axis ? 1 : d)) : shape;
}

/** dy of a reduction of x over `axis`, reshaped with the axis kept and broadcast back over it. */
export function spread(x: Node, axis: number, dy: Node): Node {
  const a = normAxis("spread", axis, x.rank);
  const kept = x.shape.map((d, i) => (i === a ? 1 : d));
  return expand(reshape(dy, kept), x.shape);
}

const expandOp = defineOp("expand", {
  infer: (inputs, attrs) => {
    const x = inputs[0];
    const shape = attrs.shape;
    const s = broadcastShapes(x.shape, shape);
    if (inputs.length !== 1 || x.dtype !== "f32" || !s || s.join() !== shape.join()) {
      shapeFail("expand", inputs, `one f32 input that broadcasts to ${fmtShape(shape)}`);
    }
    return { shape, dtype: "f32" };
  },
  grad: (n, dy) => [sumTo(dy, n.inputs[0].shape)],
});

const sumOp = defineOp("sum", {
  infer: (inputs, attrs) => ({ shape: reduceShape("sum", inputs, attrs), dtype: "f32" }),
  grad: (n, dy) => [spread(n.inputs[0], n.attrs.axis, dy)],
});

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const broadcastOps = { expand: expandOp, sum: sumOp };

/** Broadcasts x to `shape` (NumPy rules), materialising the copies. */
export function expand(x: Node, shape: Shape): Node {
  return x.shape.join() === shape.join() ? x : x.graph.apply(expandOp, [x], { shape: [...shape] });
}

/** Sum over `axis` (negative counts from the end); `keepdims` keeps it with size 1. */
export function sum(x: Node, axis: number, keepdims = false): Node {
  return x.graph.apply(sumOp, [x], { axis, keepdims });
}

/** Sums a broadcast gradient back to `shape` (the inverse of broadcasting). */
export function sumTo(x: Node, shape: Shape): Node {
  if (x.shape.join() === shape.join()) return x;
  const r = x.shape.length;
  if (shape.length > r) throw new Error(`sumTo: cannot reduce ${x} to larger rank ${fmtShape(shape)}`);
  let y = x;
  for (let d = 0; d < r; d++) {
    const target = d < r - shape.length ? 1 : shape[d - (r - shape.length)];
    if (target === 1 && x.shape[d] !== 1) y = sum(y, d, true);
  }
  return reshape(y, shape);
}
