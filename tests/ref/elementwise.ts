// CPU references (f64) of the elementwise family.
import { broadcastShapes } from "../../compiler/core/ir.ts";
import { broadcast2, type RefOf, type RefsFor, tensor } from "./f64.ts";

const bin = (f: (x: number, y: number) => number) => (i: ReturnType<typeof tensor>[]) =>
  broadcast2(i[0], i[1], broadcastShapes(i[0].shape, i[1].shape)!, f);
const scaleRef: RefOf<"scale"> = ([x], a) => ({
  shape: x.shape,
  data: x.data.map((v) => v * a.factor + a.offset),
});
const fillRef: RefOf<"fill"> = (_i, a) => {
  const t = tensor(a.shape);
  t.data.fill(a.value);
  return t;
};

/** The CPU references of this family (entries of tests/ref/table.ts). */
export const elementwiseRefs: RefsFor<"add" | "sub" | "mul" | "div" | "scale" | "fill" | "cast" | "expand"> =
  {
    add: bin((x, y) => x + y),
    sub: bin((x, y) => x - y),
    mul: bin((x, y) => x * y),
    div: bin((x, y) => x / y),
    scale: scaleRef,
    fill: fillRef,
    cast: ([x]) => ({ shape: x.shape, data: Float64Array.from(x.data) }),
    expand: ([x], a) => broadcast2(x, tensor([]), a.shape, (v) => v),
  };
