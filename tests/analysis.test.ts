// The information-filtering analysis: the score math against hand-computed values, the DFT phase
// against a direct f64 DFT, token masks / IoU / the oracle threshold by hand, the CLS attention in a
// case with a known answer, the PNG encoder round trip through the repository's decoder, and the dump
// contract on a one-step run (frozen and none arms) recomputed from the dump itself.

import "../mod.ts";
import {
  clsAttention,
  dftPhase,
  frequencyScores,
  iou,
  magnitudeScores,
  oracleIoU,
  tokenForeground,
} from "../train/analysis.ts";
import { analyzeCheckpoint } from "../train/analyze.ts";
import { runTraining } from "../train/run.ts";
import { encodePng } from "../io/png.ts";
import { decodeImage, initImageDecoders } from "../data/image/decode.ts";
import { openSafetensors } from "../io/safetensors.ts";
import { toFloat32 } from "../io/weights.ts";
import { VIT_PRESETS } from "../models/presets.ts";
import { DEFAULT_DATA_DIR } from "../data/fashion_mnist.ts";
import { assert, test } from "./testing.ts";

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-9, what = "") => {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - b[i]) <= tol, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
  }
};

test("analysis: magnitude and frequency scores match hand-computed values", () => {
  // z = [[0,0],[2,0],[0,4]]: mean (2/3, 4/3); centred norms √20/3, √32/3, √68/3
  const mag = magnitudeScores([0, 0, 2, 0, 0, 4], 3, 2);
  close(mag, [0, (Math.sqrt(32) - Math.sqrt(20)) / (Math.sqrt(68) - Math.sqrt(20)), 1]);
  // C = 2: FFT([a, b]) = [a + b, a − b]; phases [0,0], [0,π], [π,0]; mean (π/3, π/3);
  // distances √2·π/3, √5·π/3, √5·π/3 → [0, 1, 1]
  close(frequencyScores([1, 0, 0, 1, -1, -1], 3, 2), [0, 1, 1]);
  // constant tokens: all zeros
  close(magnitudeScores([1, 2, 1, 2], 2, 2), [0, 0]);
});

test("analysis: the FFT phase equals a direct f64 DFT's (power-of-two and other lengths)", () => {
  for (const C of [8, 6, 16]) {
    const x = Array.from({ length: C }, (_, i) => Math.sin(1.7 * i + 0.3) + 0.2 * i);
    const want = Array.from({ length: C }, (_, k) => {
      let re = 0, im = 0;
      for (let n = 0; n < C; n++) {
        re += x[n] * Math.cos(-2 * Math.PI * k * n / C);
        im += x[n] * Math.sin(-2 * Math.PI * k * n / C);
      }
      return k === 0 || 2 * k === C ? (re < 0 ? Math.PI : 0) : Math.atan2(im, re);
    });
    close(dftPhase(x, C), want, 1e-9, `C=${C}`);
  }
});

test("analysis: token foreground, IoU and the oracle threshold by hand", () => {
  // 4×4 image, patch 2: top-left patch 2/4 fg (→ fg), top-right 1/4 (→ bg), bottom-left 4/4, bottom-right 0
  const px = [
    [9, 0, 0, 0],
    [9, 0, 0, 3],
    [1, 1, 0, 0],
    [1, 1, 0, 0],
  ].flat();
  assert.deepEqual(Array.from(tokenForeground(px, 4, 4, 2)), [1, 0, 1, 0]);
  assert.equal(iou([1, 1, 0, 0], [1, 0, 1, 0]), 1 / 3);
  assert.equal(iou([0, 0], [0, 0]), 1);
  // scores 0.95, 0.35, 0.6, 0.05 vs gt [1,0,1,0]: t in [0.35, 0.6) gives [1,0,1,0] → IoU 1 at t = 0.4
  assert.deepEqual(oracleIoU([0.95, 0.35, 0.6, 0.05], [1, 0, 1, 0]), { iou: 1, t: 0.4 });
  // best is partial: scores [0.5, 0.5, 0.2] vs [1, 0, 1]: t < 0.2 → 2/3; t ≥ 0.5 → 0; else 1/3
  assert.deepEqual(oracleIoU([0.5, 0.5, 0.2], [1, 0, 1]), { iou: 2 / 3, t: 0.1 });
});

test("analysis: CLS attention is uniform when the keys carry nothing, and follows a key that matches", () => {
  const T1 = 4, D = 2;
  const x = [1, -1, 2, 0, -1, 3, 0.5, 0.5];
  const ap = { normW: [1, 1], normB: [0, 0], qkvW: new Array(3 * D * D).fill(0), heads: 2, eps: 1e-6 };
  close(clsAttention(x, T1, D, ap), [0.5, 0.5, 0.5], 1e-12); // 2 heads × 1/4
  // one head (D = 2, heads 1), q = k = the normalised token: LayerNorm of (a, b) is ±(1, −1)
  const w = [1, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0]; // q = n, k = n
  const a = clsAttention(x, T1, D, { ...ap, qkvW: w, heads: 1 });
  // n: cls (1,−1); tokens (1,−1), (−1,1), (−1,1)·0 → token 3 is (0.5,0.5) → n = (0, 0)
  const e = [Math.exp(2 / Math.SQRT2), Math.exp(2 / Math.SQRT2), Math.exp(-2 / Math.SQRT2), 1];
  const z = e.reduce((s, v) => s + v);
  close(a, [e[1] / z, e[2] / z, e[3] / z], 1e-5);
});

test("png: encoder output decodes to the same pixels (grey and RGB)", async () => {
  await initImageDecoders();
  const [w, h] = [5, 3];
  const grey = Uint8Array.from({ length: w * h }, (_, i) => (i * 37) % 256);
  const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 91 + 7) % 256);
  for (const [c, px] of [[1, grey], [3, rgb]] as const) {
    const d = await decodeImage(encodePng(w, h, c, px), `t${c}.png`);
    assert.deepEqual([d.width, d.height, d.channels], [w, h, c]);
    assert.deepEqual(Array.from(d.data), Array.from(px));
  }
});

test("analyze: the dump follows the contract and recomputes (frozen and none arms, one-step runs)", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    for (const arm of ["frozen", "none"] as const) {
      const run = `${tmp}/${arm}`;
      await runTraining({
        task: "image",
        model: VIT_PRESETS.fmnist,
        modelName: "fmnist",
        llm: "random",
        llmLayers: "last",
        arm,
        epochs: 1,
        steps: 1,
        batch: 4,
        lr: 1e-3,
        warmup: 0,
        weightDecay: 0.05,
        labelSmoothing: 0.1,
        dropout: 0,
        clip: 1,
        data: DEFAULT_DATA_DIR,
        out: run,
        seed: 0,
        logEvery: 1,
        evalBatch: 4,
        trainLimit: 4,
        evalLimit: 4,
      });
      const dump = `${tmp}/${arm}.safetensors`;
      const r = await analyzeCheckpoint({ checkpoint: run, limit: 4, out: `${tmp}/${arm}-fig`, dump });
      const stages = arm === "none" ? ["vit"] : ["vit", "mapper1", "llm_attn", "llm_ffn", "mapper2"];
      assert.deepEqual(r.stages, stages);
      const st = await openSafetensors(dump);
      const get = async (n: string) => toFloat32(st.info(n), await st.read(n));
      const [N, T] = [4, 16];
      assert.deepEqual(st.info("pixels").shape, [N, 28, 28]);
      assert.deepEqual(st.info("masks").shape, [N, T]);
      const pixels = await get("pixels"), masks = await get("masks");
      for (let i = 0; i < N; i++) {
        const m = tokenForeground(pixels.subarray(i * 784, (i + 1) * 784), 28, 28, 7);
        assert.deepEqual(Array.from(masks.subarray(i * T, (i + 1) * T)), Array.from(m));
      }
      for (const s of stages) {
        const C = st.info(`features.${s}`).shape[2];
        assert.deepEqual(st.info(`features.${s}`).shape, [N, T, C]);
        assert.equal(C, s === "vit" || s === "mapper2" ? 32 : 64, `${s} width`);
        const f = await get(`features.${s}`);
        for (const [kind, fn] of [["magnitude", magnitudeScores], ["frequency", frequencyScores]] as const) {
          const sc = await get(`scores.${kind}.${s}`);
          assert.deepEqual(st.info(`scores.${kind}.${s}`).shape, [N, T]);
          let sum = 0;
          for (let i = 0; i < N; i++) {
            const want = fn(f.subarray(i * T * C, (i + 1) * T * C), T, C);
            close(sc.subarray(i * T, (i + 1) * T), want, 1e-6, `${kind}.${s}`);
            sum += oracleIoU(want, masks.subarray(i * T, (i + 1) * T)).iou;
          }
          const miou = await get(`miou.${kind}.${s}`);
          assert.deepEqual(st.info(`miou.${kind}.${s}`).shape, [1]);
          close(miou, [sum / N], 1e-6, `miou.${kind}.${s}`);
          assert.ok(Math.abs(r.miou[kind][s] - sum / N) < 1e-9);
        }
      }
      // exactly the contract's keys (plus the CLS attention's)
      const keys = ["pixels", "masks", "scores.cls_attention", "miou.cls_attention"];
      for (const s of stages) {
        keys.push(`features.${s}`);
        for (const k of ["magnitude", "frequency"]) keys.push(`scores.${k}.${s}`, `miou.${k}.${s}`);
      }
      assert.deepEqual(st.list().map((t) => t.name).sort(), keys.sort());
      st.close();
      const pngs = [...Deno.readDirSync(`${tmp}/${arm}-fig`)].map((e) => e.name).sort();
      assert.deepEqual(pngs, [
        "analysis.json",
        "image0000.png",
        "image0001.png",
        "image0002.png",
        "image0003.png",
      ]);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
