import "../mod.ts";
import { Graph } from "../compiler/ir.ts";
import { add, scale } from "../compiler/ops/elementwise.ts";
import { compile } from "../compiler/runtime.ts";
for (const distinct of [false, true]) {
  const g = new Graph();
  const x = g.input("x", [64]);
  let y = x;
  for (let i = 0; i < 200; i++) y = distinct ? scale(y, 1 + i * 1e-3) : add(y, x);
  const exe = await compile([y]);
  await exe.run([y]);
  const t0 = performance.now();
  for (let i = 0; i < 3; i++) await exe.run([y]);
  console.log(distinct ? "200 distinct pipelines" : "200 same pipeline", ((performance.now() - t0) / 3).toFixed(1), "ms/run");
}
