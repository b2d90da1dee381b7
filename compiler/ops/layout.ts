// Layout ops: reshape (shares storage, no kernel), transpose/permute, slice, concat.

import { fmtShape, type Node, numel, type Shape, shapeFail } from "../ir.ts";
import { defineOp } from "../registry.ts";

defineOp({
  name: "reshape",
  alias: true,
  infer: (inputs, attrs) => {
    const x = inputs[0];
    const shape = attrs.shape as Shape;
    if (inputs.length !== 1 || numel(shape) !== x.size) {
      shapeFail("reshape", inputs, `as many elements as ${fmtShape(shape)} (${numel(shape)})`);
    }
    return { shape, dtype: x.dtype };
  },
  grad: (n, dy) => [reshape(dy, n.inputs[0].shape)],
});

/** Same data, new shape (one dim may be -1). No copy: the output shares the input's buffer. */
export function reshape(x: Node, shape: Shape): Node {
  const s = [...shape];
  const k = s.indexOf(-1);
  if (k >= 0) {
    const rest = s.reduce((a, d, i) => (i === k ? a : a * d), 1);
    s[k] = rest === 0 ? 0 : x.size / rest;
    if (!Number.isInteger(s[k])) {
      shapeFail("reshape", [x], `a shape whose -1 divides evenly: ${fmtShape(shape)}`);
    }
  }
  if (s.join() === x.shape.join()) return x;
  return x.graph.apply("reshape", [x], { shape: s });
}

// The k-th extra output of a multi-output node, made by Graph.aux (never by apply). It shares the
// storage the producing kernel wrote and is not differentiable.
defineOp({
  name: "aux",
  infer: (inputs) => shapeFail("aux", inputs, "to be created with Graph.aux(node, k)"),
});
