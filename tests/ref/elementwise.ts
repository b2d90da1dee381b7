// CPU references (f64) of the elementwise family.
import { broadcastShapes } from "../../compiler/core/ir.ts";
import { broadcast2, defineRef, tensor } from "./tensor.ts";

const bin = (f: (x: number, y: number) => number) => (i: ReturnType<typeof tensor>[]) =>
  broadcast2(i[0], i[1], broadcastShapes(i[0].shape, i[1].shape)!, f);
defineRef("add", bin((x, y) => x + y));
defineRef("sub", bin((x, y) => x - y));
defineRef("mul", bin((x, y) => x * y));
defineRef("div", bin((x, y) => x / y));
defineRef("scale", ([x], a) => ({ shape: x.shape, data: x.data.map((v) => v * a.factor + a.offset) }));
defineRef("fill", (_i, a) => {
  const t = tensor(a.shape);
  t.data.fill(a.value);
  return t;
});
defineRef("cast", ([x]) => ({ shape: x.shape, data: Float64Array.from(x.data) }));
defineRef("expand", ([x], a) => broadcast2(x, tensor([]), a.shape, (v) => v));
