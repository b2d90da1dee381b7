import "../mod.ts";
import { Graph } from "../compiler/ir.ts";
import { crossEntropy } from "../compiler/ops/loss.ts";
import { buildVit } from "../models/vit.ts";
import { openLlm } from "../models/llm.ts";
import { Trainer } from "../train/trainer.ts";
import { MODELS, DEFAULT_LLM } from "../train/run_vit.ts";
const ck = await openLlm(DEFAULT_LLM);
const g = new Graph();
const m = await buildVit(g, { img: 28, patch: 7, chans: 1, dim: 32, depth: 2, heads: 2, classes: 10 }, 64, { llm: { ck, layers: [2] } });
const labels = g.input("labels", [64], "i32");
const tr = await Trainer.create(crossEntropy(m.logits, labels), { weights: m.llm!.loader });
tr.exe.write(m.images, new Float32Array(64 * 784).map((_, i) => Math.sin(i)));
await tr.exe.run();
const p = await tr.exe.profile();
const by: Record<string, [number, number]> = {};
for (const r of p) { by[r.label] ??= [0, 0]; by[r.label][0] += r.ms; by[r.label][1]++; }
const tot = p.reduce((s, r) => s + r.ms, 0);
console.log("total", tot.toFixed(0), "ms", p.length, "kernels");
for (const [k, [ms, c]] of Object.entries(by).sort((a, b) => b[1][0] - a[1][0]).slice(0, 12)) console.log(ms.toFixed(0).padStart(7), c, k);
p.sort((a, b) => b.ms - a.ms); for (const r of p.slice(0, 8)) console.log(r.ms.toFixed(0).padStart(7), r.label, r.node);
const seen = new Set<string>();
for (const d of tr.exe.plan.dispatches) { if (seen.has(d.label)) continue; seen.add(d.label); console.log(d.label, d.workgroups.join("x"), `${d.node}`); }
