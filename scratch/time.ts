import "../mod.ts";
import { Graph } from "../compiler/ir.ts";
import { crossEntropy } from "../compiler/ops/loss.ts";
import { buildVit } from "../models/vit.ts";
import { openLlm } from "../models/llm.ts";
import { Trainer } from "../train/trainer.ts";
import { DEFAULT_LLM } from "../train/run_vit.ts";
const ck = await openLlm(DEFAULT_LLM);
for (const [dim, depth, heads, B] of [[64, 4, 4, 64], [32, 2, 2, 64], [64, 2, 4, 32], [48, 3, 3, 64]]) {
  const g = new Graph();
  const m = await buildVit(g, { img: 28, patch: 7, chans: 1, dim, depth, heads, classes: 10 }, B, { llm: { ck, layers: [2] } });
  const labels = g.input("labels", [B], "i32");
  const tr = await Trainer.create(crossEntropy(m.logits, labels), { weights: m.llm!.loader });
  tr.exe.write(m.images, new Float32Array(B * 784).map((_, i) => Math.sin(i)));
  await tr.step(new Map(), 1e-3, true);
  const t0 = performance.now();
  for (let i = 0; i < 3; i++) await tr.step(new Map(), 1e-3, true);
  const ms = (performance.now() - t0) / 3;
  console.log(`dim ${dim} depth ${depth} B ${B}: ${ms.toFixed(0)} ms/step, ${(B / ms * 1000).toFixed(1)} img/s, ${tr.exe.kernelCount} kernels`);
  tr.exe.destroy();
}
