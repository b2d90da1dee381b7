// CPU references (f64) of the reduce family.
import { normAxis } from "../../compiler/core/ir.ts";
import type { AxisAttrs } from "../../compiler/ops/attrs.ts";
import { type RefOf, type RefsFor, type T, tensor } from "./f64.ts";

function view(x: T, axis: number) {
  const a = normAxis("ref", axis, x.shape.length);
  return {
    outer: x.shape.slice(0, a).reduce((p, d) => p * d, 1),
    len: x.shape[a],
    inner: x.shape.slice(a + 1).reduce((p, d) => p * d, 1),
  };
}

function reduce(kind: "sum" | "mean" | "max") {
  return ([x]: T[], a: AxisAttrs, n: { shape: readonly number[] }): T | T[] => {
    const { outer, len, inner } = view(x, a.axis);
    const out = tensor(n.shape), arg = tensor(n.shape);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        let acc = kind === "max" ? -Infinity : 0, best = 0;
        for (let j = 0; j < len; j++) {
          const v = x.data[(o * len + j) * inner + i];
          if (kind === "max") {
            if (v > acc) [acc, best] = [v, j];
          } else acc += v;
        }
        out.data[o * inner + i] = kind === "mean" ? acc / len : acc;
        arg.data[o * inner + i] = best;
      }
    }
    return kind === "max" ? [out, arg] : out;
  };
}
const maxBwdRef: RefOf<"max_bwd"> = ([dy, arg], a, n) => {
  const dx = tensor(n.shape);
  const { outer, len, inner } = view(dx, a.axis);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const j = arg.data[o * inner + i];
      dx.data[(o * len + j) * inner + i] = dy.data[o * inner + i];
    }
  }
  return dx;
};

/** The CPU references of this family (entries of tests/ref/table.ts). */
export const reduceRefs: RefsFor<"sum" | "mean" | "max" | "max_bwd"> = {
  sum: reduce("sum"),
  mean: reduce("mean"),
  max: reduce("max"),
  max_bwd: maxBwdRef,
};
