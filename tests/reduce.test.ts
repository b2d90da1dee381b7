import { checkOp, randParam } from "./harness.ts";
import { test } from "./testing.ts";
import { max, mean, sum } from "../compiler/ops/reduce.ts";

test("reduce: sum/mean/max over each axis, short and long axes", async (t) => {
  for (const shape of [[3, 5, 4], [2, 130, 3], [300, 2]]) {
    for (let axis = 0; axis < shape.length; axis++) {
      for (const [name, f] of [["sum", sum], ["mean", mean], ["max", max]] as const) {
        await t.step(`${name} axis ${axis} of [${shape}]`, async () => {
          await checkOp({ build: (g) => f(randParam(g, "x", shape), axis, axis === 1) });
        });
      }
    }
  }
});
