// Every matmul kernel variant forced in turn against the CPU reference (forward and gradients), split from
// tests/matmul.test.ts so that `deno test --parallel` can run the two halves on different cores.

import { checkOp } from "./harness.ts";
import { assert, test } from "./testing.ts";
import { Graph } from "../compiler/core/ir.ts";
import { lower } from "../compiler/lower/plan.ts";
import type { MatmulVariant } from "../kernels/matmul.ts";
import {
  barriers,
  buildMatmul,
  type Layout,
  PRODUCTION,
  SOFT_BIG,
  TRANS,
  VARIANTS,
  withVariant,
} from "./matmul_cases.ts";

test("matmul: every variant, forced, vs the CPU reference (fwd + grads)", async (t) => {
  // [7,37,5]: odd everywhere (scalar reads and staging, K tail, 2-5 K steps of the tiles);
  // [12,40,20]: multiples of 4 (vec4 reads along k, m and n; vec4 staging of the tiles);
  // [36,20,44]: several tiles of the deep-K config, partial ones at both edges.
  // Together with the production blocks below, these reach every line shape and tile geometry
  // (partial / several tiles, K tail, 1 / 2 / ≥3 K steps, batch strides) of the former 136 cases
  // (every variant × 3 sizes × 7 layouts, 8×8 blocks included), checked when this set was chosen.
  const combos: [Layout, boolean, boolean][] = [
    ...TRANS.map(([ta, tb]): [Layout, boolean, boolean] => ["batched", ta, tb]),
    ["shared", false, true],
    ["shared", true, false],
    ["2d", true, true],
  ];
  const cases: [MatmulVariant, number[], Layout, boolean, boolean][] = [];
  for (const v of VARIANTS) {
    for (const [layout, ta, tb] of combos) {
      const mkn = layout === "batched" && !ta && !tb
        ? [7, 37, 5]
        : v.kind === "tiled" && v.BK === 32 && layout === "shared" && !ta
        ? [36, 20, 44]
        : [12, 40, 20];
      cases.push([v, mkn, layout, ta, tb]);
    }
  }
  cases.push(...PRODUCTION, [SOFT_BIG, [12, 40, 20], "batched", false, false]);
  for (const [v, mkn, layout, ta, tb] of cases) {
    await t.step(
      `${JSON.stringify(v)} ${layout} ${mkn.join("x")} transA=${ta} transB=${tb}`,
      async () => {
        await withVariant(v, async () => {
          const g = new Graph();
          const code = lower([buildMatmul(g, layout, mkn, ta, tb, true, [2])]).dispatches[0].code;
          assert.equal(
            code.includes("workgroupBarrier"),
            v.kind === "tiled",
            "the forced variant is used",
          );
          if (v.kind === "tiled") assert.equal(barriers(code), v.double ? 2 : 3, "barriers per K step");
          // vec4 reads / staging iff the layout allows them (all sides multiples of 4, or none; the
          // direct variant reads along m / n only in groups of 4 rows / columns)
          const groups = v.kind === "tiled" || !ta || tb || v.TM % 4 === 0 || v.TN % 4 === 0;
          if (mkn[1] % 4 === 0 && groups) {
            assert.ok(code.includes("array<vec4<f32>>"), "vec4 reads for multiples of 4");
          }
          if (mkn[0] === 7) assert.ok(!code.includes("vec4<f32>"), "scalar reads for odd sizes");
          await checkOp({
            build: (g) => buildMatmul(g, layout, mkn, ta, tb, true, [2]),
            fdSamples: 4,
          });
        });
      },
    );
  }
});
