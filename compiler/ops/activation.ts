// Activation functions: gelu (exact, erf-based like PyTorch's default nn.GELU), silu (x·sigmoid(x)),
// relu. Each has a dedicated backward op taking the forward input x and the output gradient dy, so
// the backward pass is one elementwise kernel that recomputes what it needs from x.

import { type Node, type OpDef, shapeFail } from "../core/ir.ts";
import { defineOp, type NoAttrs } from "./attrs.ts";

/** The activation functions with a fused-epilogue form (kernels/activation.ts). */
export type Activation = "gelu" | "silu" | "relu";

/** The forward op of activation `act`: y = act(x). */
function forward<P extends Activation>(act: P, bwd: OpDef<NoAttrs>) {
  return defineOp(act, {
    infer: (inputs) => {
      if (inputs.length !== 1 || inputs[0].dtype !== "f32") {
        shapeFail(act, inputs, "one f32 input (cast 16-bit tensors first)");
      }
      return { shape: inputs[0].shape, dtype: "f32" };
    },
    grad: (n, dy) => [n.graph.apply(bwd, [n.inputs[0], dy], {})],
    inPlace: [0],
  });
}

/** The backward op of activation `act`: dx = dy · act'(x), from the forward input x and dy. */
function backward<P extends `${Activation}_bwd`>(bwd: P) {
  return defineOp(bwd, {
    infer: (inputs) => {
      const [x, dy] = inputs;
      if (
        inputs.length !== 2 || x.dtype !== "f32" || dy.dtype !== "f32" || x.shape.join() !== dy.shape.join()
      ) {
        shapeFail(bwd, inputs, "x and dy, both f32 and of the same shape");
      }
      return { shape: x.shape, dtype: "f32" };
    },
    grad: "none",
    inPlace: [1, 0],
  });
}

const geluBwd = backward("gelu_bwd"), siluBwd = backward("silu_bwd"), reluBwd = backward("relu_bwd");
const geluOp = forward("gelu", geluBwd), siluOp = forward("silu", siluBwd), reluOp = forward("relu", reluBwd);

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const activationOps = {
  gelu: geluOp,
  gelu_bwd: geluBwd,
  silu: siluOp,
  silu_bwd: siluBwd,
  relu: reluOp,
  relu_bwd: reluBwd,
};

/** GELU, exact form x·Φ(x) = x/2·(1 + erf(x/√2)) (PyTorch's nn.GELU() default, not the tanh approximation). */
export function gelu(x: Node): Node {
  return x.graph.apply(geluOp, [x], {});
}
/** SiLU / swish: x·sigmoid(x). */
export function silu(x: Node): Node {
  return x.graph.apply(siluOp, [x], {});
}
/** max(x, 0); its gradient at exactly 0 is taken as 0. */
export function relu(x: Node): Node {
  return x.graph.apply(reluOp, [x], {});
}
