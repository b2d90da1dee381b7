// Elementwise ops with NumPy broadcasting: add, sub, mul, div; scale (y = a·x + b with constants);
// fill (a constant tensor computed on the GPU); cast (16-bit/int storage → f32 compute).
// Gradients of broadcast inputs are summed back to the input's shape (sumTo).

import {
  broadcastShapes,
  type DType,
  fmtShape,
  type Graph,
  type Node,
  type Shape,
  shapeFail,
} from "../core/ir.ts";
import { defineOp } from "./registry.ts";
import { reshape } from "./layout.ts";
import { sum } from "./reduce.ts";

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

defineOp({
  name: "add",
  infer: binaryInfer("add"),
  inPlace: [0, 1],
  grad: (
    n,
    dy,
    needs,
  ) => [
    needs[0] ? sumTo(dy, n.inputs[0].shape) : undefined,
    needs[1] ? sumTo(dy, n.inputs[1].shape) : undefined,
  ],
});
defineOp({
  name: "sub",
  infer: binaryInfer("sub"),
  inPlace: [0, 1],
  grad: (n, dy, needs) => [
    needs[0] ? sumTo(dy, n.inputs[0].shape) : undefined,
    needs[1] ? sumTo(scale(dy, -1), n.inputs[1].shape) : undefined,
  ],
});
defineOp({
  name: "mul",
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
defineOp({
  name: "div",
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

defineOp({
  name: "scale",
  inPlace: [0],
  infer: (inputs, attrs) => {
    if (inputs.length !== 1 || inputs[0].dtype !== "f32") shapeFail("scale", inputs, "one f32 input");
    if (!Number.isFinite(attrs.factor) || !Number.isFinite(attrs.offset)) {
      shapeFail("scale", inputs, `finite factor and offset (got ${attrs.factor}, ${attrs.offset})`);
    }
    return { shape: inputs[0].shape, dtype: "f32" };
  },
  grad: (n, dy) => [scale(dy, n.attrs.factor as number)],
});

defineOp({
  name: "fill",
  infer: (inputs, attrs) => {
    if (inputs.length !== 0 || typeof attrs.value !== "number") {
      shapeFail("fill", inputs, "no inputs and a value");
    }
    return { shape: attrs.shape as Shape, dtype: "f32" };
  },
});

defineOp({
  name: "cast",
  infer: (inputs, attrs) => {
    const x = inputs[0];
    if (inputs.length !== 1) shapeFail("cast", inputs, "one input");
    if (attrs.to !== "f32") shapeFail("cast", inputs, `a cast to f32 (got to=${attrs.to})`);
    return { shape: x.shape, dtype: "f32" };
  },
});

export function add(a: Node, b: Node): Node {
  return a.graph.apply("add", [a, b]);
}
export function sub(a: Node, b: Node): Node {
  return a.graph.apply("sub", [a, b]);
}
export function mul(a: Node, b: Node): Node {
  return a.graph.apply("mul", [a, b]);
}
export function div(a: Node, b: Node): Node {
  return a.graph.apply("div", [a, b]);
}
/** y = factor·x + offset */
export function scale(x: Node, factor: number, offset = 0): Node {
  return x.graph.apply("scale", [x], { factor, offset });
}
export function fill(g: Graph, shape: Shape, value: number): Node {
  return g.apply("fill", [], { shape: [...shape], value });
}
/** 16-bit float or integer storage → f32 (no-op for f32). */
export function cast(x: Node): Node {
  return x.dtype === "f32" ? x : x.graph.apply("cast", [x], { to: "f32" });
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

defineOp({
  name: "expand",
  infer: (inputs, attrs) => {
    const x = inputs[0];
    const shape = attrs.shape as Shape;
    const s = broadcastShapes(x.shape, shape);
    if (inputs.length !== 1 || x.dtype !== "f32" || !s || s.join() !== shape.join()) {
      shapeFail("expand", inputs, `one f32 input that broadcasts to ${fmtShape(shape)}`);
    }
    return { shape, dtype: "f32" };
  },
  grad: (n, dy) => [sumTo(dy, n.inputs[0].shape)],
});

/** Broadcasts x to `shape` (NumPy rules), materialising the copies. */
export function expand(x: Node, shape: Shape): Node {
  return x.shape.join() === shape.join() ? x : x.graph.apply("expand", [x], { shape: [...shape] });
}
