// Activation functions: gelu (exact, erf-based like PyTorch's default nn.GELU), silu (x·sigmoid(x)),
// relu. Each has a dedicated backward op taking the forward input x and the output gradient dy, so
// the backward pass is one elementwise kernel that recomputes what it needs from x.

import { type Node, shapeFail } from "../core/ir.ts";
import { defineOp } from "./registry.ts";

export type Activation = "gelu" | "silu" | "relu";
const ACTIVATIONS: readonly Activation[] = ["gelu", "silu", "relu"];

for (const act of ACTIVATIONS) {
  const bwd = `${act}_bwd`;
  defineOp({
    name: act,
    infer: (inputs) => {
      if (inputs.length !== 1 || inputs[0].dtype !== "f32") {
        shapeFail(act, inputs, "one f32 input (cast 16-bit tensors first)");
      }
      return { shape: inputs[0].shape, dtype: "f32" };
    },
    grad: (n, dy) => [n.graph.apply(bwd, [n.inputs[0], dy])],
    inPlace: [0],
  });
  // dx = dy · act'(x)
  defineOp({
    name: bwd,
    infer: (inputs) => {
      const [x, dy] = inputs;
      if (
        inputs.length !== 2 || x.dtype !== "f32" || dy.dtype !== "f32" || x.shape.join() !== dy.shape.join()
      ) {
        shapeFail(bwd, inputs, "x and dy, both f32 and of the same shape");
      }
      return { shape: x.shape, dtype: "f32" };
    },
    inPlace: [1, 0],
  });
}

/** GELU, exact form x·Φ(x) = x/2·(1 + erf(x/√2)) (PyTorch's nn.GELU() default, not the tanh approximation). */
export function gelu(x: Node): Node {
  return x.graph.apply("gelu", [x]);
}
/** SiLU / swish: x·sigmoid(x). */
export function silu(x: Node): Node {
  return x.graph.apply("silu", [x]);
}
/** max(x, 0); its gradient at exactly 0 is taken as 0. */
export function relu(x: Node): Node {
  return x.graph.apply("relu", [x]);
}
