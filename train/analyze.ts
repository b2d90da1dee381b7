// The information-filtering analysis of a saved image run: the ViT(-LLM) is rebuilt from the run's
// stored configuration with its analysis taps (models/vit.ts VitTaps), its weights loaded, the first N
// test images run, and the scores of train/analysis.ts computed per image and stage. Writes one PNG
// per image (the paper's Fig. 3 layout), analysis.json, and optionally the dump (contract below).
//
// Dump (safetensors, all F32): `pixels` [N,H,W] raw 0–255; `masks` [N,T] token foreground 0/1 (patch
// tokens row-major); for each stage s present: `features.<s>` [N,T,C] (patch tokens, CLS excluded),
// `scores.magnitude.<s>` and `scores.frequency.<s>` [N,T], `miou.magnitude.<s>` and
// `miou.frequency.<s>` [1]; plus `scores.cls_attention` [N,T] (normalised) and `miou.cls_attention` [1].
// Stages: vit, mapper1, llm_attn, llm_ffn, mapper2 — a run without LLM layers (`--arm none` or
// `--llm none`) has only `vit` (the last block's output), so its dump holds the `vit` keys only.

import { Graph, type Node } from "../compiler/core/ir.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { getGpu } from "../compiler/runtime/device.ts";
import { parseLayerSelection } from "../io/config.ts";
import { findCheckpoint, loadCheckpoint, readCheckpointState } from "../io/checkpoint.ts";
import { encodePng } from "../io/png.ts";
import { writeSafetensors } from "../io/safetensors.ts";
import { CheckpointError } from "../io/weights.ts";
import { firstSamples, imageSamples, loadFashionMnist } from "../data/fashion_mnist.ts";
import { buildVit, type VitConfig } from "../models/vit.ts";
import { closeRunLlm, openRunLlm } from "./loop.ts";
import type { RunConfig } from "./config.ts";
import {
  ANALYSIS_STAGES,
  type AnalysisStage,
  clsAttention,
  frequencyScores,
  magnitudeScores,
  minMax,
  oracleIoU,
  tokenForeground,
} from "./analysis.ts";

/** What to analyse. */
export interface AnalyzeOptions {
  /** A run directory (or its checkpoint/) of an image run. */
  checkpoint: string;
  /** Fashion-MNIST directory (default: the run's). */
  data?: string;
  /** The first N test images (default 16). */
  limit?: number;
  /** Figure directory: one PNG per image and analysis.json. */
  out: string;
  /** Also write the dump (safetensors) here. */
  dump?: string;
}

/** The analysis' numbers (what analysis.json holds). */
export interface AnalysisResult {
  /** The checkpoint directory read. */
  checkpoint: string;
  /** The run's arm and LLM. */
  arm: string;
  /** The run's --llm. */
  llm: string;
  /** Images analysed. */
  n: number;
  /** The stages present, in model order. */
  stages: AnalysisStage[];
  /** mIoU per score and stage (oracle threshold per image). */
  miou: { magnitude: Record<string, number>; frequency: Record<string, number>; cls_attention: number };
  /** Mean oracle threshold per score and stage. */
  threshold: { magnitude: Record<string, number>; frequency: Record<string, number>; cls_attention: number };
}

const f32 = (a: ArrayLike<number>) => new Uint8Array(Float32Array.from(a).buffer);

/** Runs the analysis; writes the figures, analysis.json and the dump; prints nothing. */
export async function analyzeCheckpoint(opts: AnalyzeOptions): Promise<AnalysisResult> {
  const limit = opts.limit ?? 16;
  if (!(Number.isInteger(limit) && limit >= 1)) {
    throw new Error(`--limit: expected an integer ≥ 1, got ${limit}`);
  }
  const where = await findCheckpoint(opts.checkpoint);
  const st = await readCheckpointState(where.checkpoint);
  const run = st.run as RunConfig | undefined;
  if (run?.task !== "image") {
    throw new CheckpointError(
      `${where.checkpoint}/state.json`,
      `the analysis needs an image run (field 'run.task' is ${run?.task ?? "missing"})`,
    );
  }
  const cfg = run.model as VitConfig;
  const d = firstSamples(await loadFashionMnist(opts.data ?? run.data, "test"), limit);
  if (d.rows !== cfg.img || d.cols !== cfg.img) {
    throw new Error(`data: ${d.rows}×${d.cols} images, but the run's model takes ${cfg.img}×${cfg.img}`);
  }
  const samples = imageSamples(d);
  const N = d.n, hw = d.rows * d.cols, T = (cfg.img / cfg.patch) ** 2;
  const B = Math.min(N, 32);
  await getGpu({ quiet: true });
  const runLlm = await openRunLlm(run.llm);
  const feats = new Map<AnalysisStage, { C: number; data: Float32Array }>();
  let attn: Float64Array[] = [];
  try {
    const ck = runLlm.ck;
    const llm = ck ? { ck, layers: parseLayerSelection(run.llmLayers, ck.cfg.layers) } : undefined;
    const g = new Graph();
    const m = await buildVit(g, cfg, B, {
      llm: llm && { ...llm, arm: run.arm, position: run.llmPosition },
      seed: run.seed,
    });
    const stages = ANALYSIS_STAGES.filter((s) => m.taps[s] !== undefined);
    const tapNodes = stages.map((s) => m.taps[s]!) as Node[];
    const exe = await compile([m.logits, ...tapNodes, m.taps.lastBlockIn], { weights: m.llm?.loader });
    try {
      await loadCheckpoint(where.checkpoint, exe, g.params.filter((p) => p.trainable), undefined);
      const last = `blocks.${cfg.depth - 1}.`;
      const read = (n: string) => exe.read(g.byName(last + n));
      const [normW, normB, qkvW] = await Promise.all(
        ["norm1.weight", "norm1.bias", "attn.qkv.weight"].map(read),
      );
      const qkvB = g.params.some((p) => p.name === last + "attn.qkv.bias")
        ? await read("attn.qkv.bias")
        : undefined;
      const ap = { normW: normW!, normB: normB!, qkvW: qkvW!, qkvB, heads: cfg.heads, eps: cfg.eps ?? 1e-6 };
      for (const [k, s] of stages.entries()) {
        const C = tapNodes[k].shape[2];
        feats.set(s, { C, data: new Float32Array(N * T * C) });
      }
      const x = new Float32Array(B * hw);
      for (let start = 0; start < N; start += B) {
        x.fill(0);
        const n = Math.min(B, N - start);
        for (let i = 0; i < n; i++) samples.write(start + i, x, i * hw);
        exe.write(m.images, x);
        const out = await exe.run([...tapNodes, m.taps.lastBlockIn]);
        for (const [k, s] of stages.entries()) {
          const { C, data } = feats.get(s)!;
          for (let i = 0; i < n; i++) { // drop CLS (token 0)
            data.set(out[k].subarray((i * (T + 1) + 1) * C, (i + 1) * (T + 1) * C), (start + i) * T * C);
          }
        }
        const xb = out[stages.length], D = cfg.dim;
        for (let i = 0; i < n; i++) {
          attn.push(clsAttention(xb.subarray(i * (T + 1) * D, (i + 1) * (T + 1) * D), T + 1, D, ap));
        }
      }
    } finally {
      exe.destroy();
    }
  } finally {
    closeRunLlm(runLlm);
  }
  attn = attn.map(minMax);

  // scores, masks, IoUs
  const stages = [...feats.keys()];
  const masks = Array.from(
    { length: N },
    (_, i) => tokenForeground(d.images.subarray(i * hw, (i + 1) * hw), d.rows, d.cols, cfg.patch),
  );
  const scores: Record<"magnitude" | "frequency", Record<string, Float64Array[]>> = {
    magnitude: {},
    frequency: {},
  };
  const result: AnalysisResult = {
    checkpoint: where.checkpoint,
    arm: run.llm === "none" ? "none" : run.arm ?? "frozen",
    llm: run.llm,
    n: N,
    stages,
    miou: { magnitude: {}, frequency: {}, cls_attention: 0 },
    threshold: { magnitude: {}, frequency: {}, cls_attention: 0 },
  };
  const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
  for (const s of stages) {
    const { C, data } = feats.get(s)!;
    for (const kind of ["magnitude", "frequency"] as const) {
      const fn = kind === "magnitude" ? magnitudeScores : frequencyScores;
      scores[kind][s] = Array.from(
        { length: N },
        (_, i) => fn(data.subarray(i * T * C, (i + 1) * T * C), T, C),
      );
      const best = scores[kind][s].map((sc, i) => oracleIoU(sc, masks[i]));
      result.miou[kind][s] = mean(best.map((b) => b.iou));
      result.threshold[kind][s] = mean(best.map((b) => b.t));
    }
  }
  const bestA = attn.map((sc, i) => oracleIoU(sc, masks[i]));
  result.miou.cls_attention = mean(bestA.map((b) => b.iou));
  result.threshold.cls_attention = mean(bestA.map((b) => b.t));

  // outputs
  await Deno.mkdir(opts.out, { recursive: true });
  await Deno.writeTextFile(`${opts.out}/analysis.json`, JSON.stringify(result, null, 2) + "\n");
  for (let i = 0; i < N; i++) {
    const png = figure(
      d.images.subarray(i * hw, (i + 1) * hw),
      d.rows,
      masks[i],
      stages.map((s) => scores.magnitude[s][i]),
      stages.map((s) => scores.frequency[s][i]),
      attn[i],
      cfg.img / cfg.patch,
    );
    await Deno.writeFile(`${opts.out}/image${String(i).padStart(4, "0")}.png`, png);
  }
  if (opts.dump) {
    const t = [
      {
        name: "pixels",
        dtype: "F32" as const,
        shape: [N, d.rows, d.cols],
        data: f32(d.images.subarray(0, N * hw)),
      },
      {
        name: "masks",
        dtype: "F32" as const,
        shape: [N, T],
        data: f32(masks.flatMap((mk) => Array.from(mk))),
      },
      {
        name: "scores.cls_attention",
        dtype: "F32" as const,
        shape: [N, T],
        data: f32(attn.flatMap((a) => Array.from(a))),
      },
      {
        name: "miou.cls_attention",
        dtype: "F32" as const,
        shape: [1],
        data: f32([result.miou.cls_attention]),
      },
    ];
    for (const s of stages) {
      const { C, data } = feats.get(s)!;
      t.push({ name: `features.${s}`, dtype: "F32", shape: [N, T, C], data: f32(data) });
      for (const kind of ["magnitude", "frequency"] as const) {
        t.push({
          name: `scores.${kind}.${s}`,
          dtype: "F32",
          shape: [N, T],
          data: f32(scores[kind][s].flatMap((a) => Array.from(a))),
        });
        t.push({ name: `miou.${kind}.${s}`, dtype: "F32", shape: [1], data: f32([result.miou[kind][s]]) });
      }
    }
    await writeSafetensors(opts.dump, t, { checkpoint: where.checkpoint, stages: stages.join(",") });
  }
  return result;
}

/** A one-screen summary of a result: mIoU per stage and score. */
export function analysisSummary(r: AnalysisResult): string {
  const pct = (v: number) => (100 * v).toFixed(1).padStart(6);
  return [
    `information filtering: ${r.n} test images, arm ${r.arm}, llm ${r.llm} (${r.checkpoint})`,
    `mIoU %      ${r.stages.map((s) => s.padStart(9)).join("")}`,
    `magnitude   ${r.stages.map((s) => pct(r.miou.magnitude[s]).padStart(9)).join("")}`,
    `frequency   ${r.stages.map((s) => pct(r.miou.frequency[s]).padStart(9)).join("")}`,
    `CLS attention (last encoder block): ${pct(r.miou.cls_attention).trim()}`,
  ].join("\n");
}

/** Five-stop colour ramp (dark blue → yellow) for scores in [0, 1]. */
function colour(v: number): [number, number, number] {
  const stops = [[13, 8, 135], [126, 3, 168], [204, 71, 120], [248, 149, 64], [240, 249, 33]];
  const x = Math.min(1, Math.max(0, v)) * 4, i = Math.min(3, Math.floor(x)), f = x - i;
  return [0, 1, 2].map((c) => Math.round(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]))) as [
    number,
    number,
    number,
  ];
}

/**
 * The paper's Fig. 3 layout for one image: row 1 the image, then the magnitude heatmap per stage,
 * then the CLS attention; row 2 the token foreground, then the frequency heatmap per stage. Each
 * panel is the image side ×4, heatmaps nearest-upsampled from the token grid.
 */
function figure(
  pixels: Uint8Array,
  side: number,
  mask: Uint8Array,
  mag: Float64Array[],
  freq: Float64Array[],
  attn: Float64Array,
  grid: number,
): Uint8Array {
  const S = side * 4, gap = 4, cols = mag.length + 2, W = cols * (S + gap) - gap, H = 2 * S + gap;
  const img = new Uint8Array(W * H * 3).fill(255);
  const panel = (r: number, c: number, at: (y: number, x: number) => [number, number, number]) => {
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const o = ((r * (S + gap) + y) * W + c * (S + gap) + x) * 3;
        img.set(at(y, x), o);
      }
    }
  };
  const token = (s: ArrayLike<number>) => (y: number, x: number) =>
    colour(s[Math.floor(y * grid / S) * grid + Math.floor(x * grid / S)]);
  panel(0, 0, (y, x) => {
    const v = pixels[Math.floor(y / 4) * side + Math.floor(x / 4)];
    return [v, v, v];
  });
  panel(1, 0, token(mask));
  mag.forEach((s, k) => panel(0, k + 1, token(s)));
  freq.forEach((s, k) => panel(1, k + 1, token(s)));
  panel(0, cols - 1, token(attn));
  return encodePng(W, H, 3, img);
}
