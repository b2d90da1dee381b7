import { checkOp, randParam } from "./harness.ts";
import { test } from "./testing.ts";
import { add, div, expand, mul, scale, sub } from "../compiler/ops/elementwise.ts";
import { OPS } from "../compiler/ops/table.ts";

test("elementwise: add/sub/mul/div with broadcasting, fwd + grad", async (t) => {
  const cases: [string, number[], number[]][] = [
    ["same", [3, 5], [3, 5]],
    ["row", [4, 7], [7]],
    ["col", [4, 1], [4, 6]],
    ["3d", [2, 1, 5], [3, 1]],
  ];
  for (const [what, sa, sb] of cases) {
    for (const [name, f] of [["add", add], ["sub", sub], ["mul", mul], ["div", div]] as const) {
      await t.step(`${name} ${what} [${sa}]∘[${sb}]`, async () => {
        await checkOp({
          build: (g) => {
            const a = randParam(g, "a", sa);
            const b = name === "div"
              ? g.apply(OPS.scale, [randParam(g, "b", sb, 0.3)], { factor: 1, offset: 2 })
              : randParam(g, "b", sb);
            return f(a, b);
          },
        });
      });
    }
  }
  await t.step("scale and expand", async () => {
    await checkOp({ build: (g) => scale(randParam(g, "x", [5, 3]), -1.5, 0.25) });
    await checkOp({ build: (g) => expand(randParam(g, "x", [3, 1]), [2, 3, 4]) });
  });
});
