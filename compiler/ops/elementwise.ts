// Elementwise ops with NumPy broadcasting: add, sub, mul, div; scale (y = a·x + b with constants);
// fill (a constant tensor computed on the GPU); cast (16-bit/int storage → f32 compute).
// Gradients of broadcast inputs are summed back to the input's shape (sumTo, broadcast.ts).

import { broadcastShapes, type DType, type Graph, type Node, type Shape, shapeFail } from "../core/ir.ts";
import { defineOp } from "./attrs.ts";
import { sumTo } from "./broadcast.ts";

export { expand, sumTo } from "./broadcast.ts";

/** The four broadcasting binary ops. */
export type BinaryOp = "add" | "sub" | "mul" | "div";

function binaryInfer(op: BinaryOp) {
  return (inputs: readonly Node[]) => {
    const [a, b] = inputs;
    if (inputs.length !== 2) shapeFail(op, inputs, "2 inputs");
    if (a.dtype !== "f32" || b.dtype !== "f32") {
      shapeFail(op, inputs, "f32 inputs (cast 16-bit weights first)");
    }
    const s = broadcastShapes(a.shape, b.shape);
    if (!s) shapeFail(op, inputs, "shapes that broadcast (equal, or 1, per trailing dim)");
    return { shape: s, dtype: "f32" as DType };
  };
}

const addOp = defineOp("add", {
  infer: binaryInfer("add"),
  inPlace: [0, 1],
  grad: (n, dy, needs) => [
    needs[0] ? sumTo(dy, n.inputs[0].shape) : undefined,
    needs[1] ? sumTo(dy, n.inputs[1].shape) : undefined,
  ],
});

const subOp = defineOp("sub", {
  infer: binaryInfer("sub"),
  inPlace: [0, 1],
  grad: (n, dy, needs) => [
    needs[0] ? sumTo(dy, n.inputs[0].shape) : undefined,
    needs[1] ? sumTo(scale(dy, -1), n.inputs[1].shape) : undefined,
  ],
});

const mulOp = defineOp("mul", {
  infer: binaryInfer("mul"),
  inPlace: [0, 1],
  grad: (n, dy, needs) => {
    const [a, b] = n.inputs;
    return [
      needs[0] ? sumTo(mul(dy, b), a.shape) : undefined,
      needs[1] ? sumTo(mul(dy, a), b.shape) : undefined,
    ];
  },
});

const divOp = defineOp("div", {
  infer: binaryInfer("div"),
  inPlace: [0, 1],
  grad: (n, dy, needs) => {
    const [a, b] = n.inputs;
    // d(a/b)/db = -a/b² = -y/b
    return [
      needs[0] ? sumTo(div(dy, b), a.shape) : undefined,
      needs[1] ? sumTo(scale(div(mul(dy, n), b), -1), b.shape) : undefined,
    ];
  },
});

const scaleOp = defineOp("scale", {
  inPlace: [0],
  infer: (inputs, attrs) => {
    if (inputs.length !== 1 || inputs[0].dtype !== "f32") shapeFail("scale", inputs, "one f32 input");
    if (!Number.isFinite(attrs.factor) || !Number.isFinite(attrs.offset)) {
      shapeFail("scale", inputs, `finite factor and offset (got ${attrs.factor}, ${attrs.offset})`);
    }
    return { shape: inputs[0].shape, dtype: "f32" };
  },
  grad: (n, dy) => [scale(dy, n.attrs.factor)],
});

const fillOp = defineOp("fill", {
  infer: (inputs, attrs) => {
    if (inputs.length !== 0 || typeof attrs.value !== "number") {
      shapeFail("fill", inputs, "no inputs and a value");
    }
    return { shape: attrs.shape, dtype: "f32" };
  },
  grad: "none",
});

const castOp = defineOp("cast", {
  infer: (inputs, attrs) => {
    const x = inputs[0];
    if (inputs.length !== 1) shapeFail("cast", inputs, "one input");
    if (attrs.to !== "f32") shapeFail("cast", inputs, `a cast to f32 (got to=${attrs.to})`);
    return { shape: x.shape, dtype: "f32" };
  },
  // casts only feed frozen 16-bit or integer storage into f32 compute
  grad: "none",
});

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const elementwiseOps = {
  add: addOp,
  sub: subOp,
  mul: mulOp,
  div: divOp,
  scale: scaleOp,
  fill: fillOp,
  cast: castOp,
};

/** a + b, with NumPy broadcasting. */
export function add(a: Node, b: Node): Node {
  return a.graph.apply(addOp, [a, b], {});
}
/** a − b, with NumPy broadcasting. */
export function sub(a: Node, b: Node): Node {
  return a.graph.apply(subOp, [a, b], {});
}
/** a · b (elementwise), with NumPy broadcasting. */
export function mul(a: Node, b: Node): Node {
  return a.graph.apply(mulOp, [a, b], {});
}
/** a / b (elementwise), with NumPy broadcasting. */
export function div(a: Node, b: Node): Node {
  return a.graph.apply(divOp, [a, b], {});
}
/** y = factor·x + offset */
export function scale(x: Node, factor: number, offset = 0): Node {
  return x.graph.apply(scaleOp, [x], { factor, offset });
}
/** A tensor of `shape` filled with `value` (computed on the GPU, not uploaded). */
export function fill(g: Graph, shape: Shape, value: number): Node {
  return g.apply(fillOp, [], { shape: [...shape], value });
}
/** 16-bit float or integer storage → f32 (no-op for f32). */
export function cast(x: Node): Node {
  return x.dtype === "f32" ? x : x.graph.apply(castOp, [x], { to: "f32" });
}
