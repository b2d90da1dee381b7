// Tests of Mixup / CutMix against timm's formulas (timm/data/mixup.py), values written by hand:
// mixup_target with label smoothing, the flip pairing (x_i with x_{B−1−i}), rand_bbox and the λ
// correction to the clipped box, the Beta sampler's moments, the switch probability, determinism.
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { Rng } from "../compiler/core/random.ts";
import { mixBatch, Mixup, mixupTarget, randBbox, sampleBeta } from "../data/mixup.ts";

const near = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

test("mixup: mixup_target with smoothing, by hand", () => {
  // K = 4, smoothing 0.1: off = 0.025, on = 0.925; labels [0, 2, 3, 1], λ = 0.7
  // row 0 pairs with row 3 (label 1): [0.7·0.925 + 0.3·0.025, 0.7·0.025 + 0.3·0.925, 0.025, 0.025]
  const t = mixupTarget([0, 2, 3, 1], 4, 0.7, 0.1);
  const want0 = [0.655, 0.295, 0.025, 0.025];
  want0.forEach((w, c) => near(t[c], w, 1e-7, `t[0][${c}]`));
  // row 1 (label 2) with row 2 (label 3): [0.025, 0.025, 0.7·0.925 + 0.3·0.025, 0.3·0.925 + 0.7·0.025]
  [0.025, 0.025, 0.655, 0.295].forEach((w, c) => near(t[4 + c], w, 1e-7, `t[1][${c}]`));
  for (let i = 0; i < 4; i++) {
    near(t.slice(i * 4, i * 4 + 4).reduce((a, b) => a + b, 0), 1, 1e-6, `row ${i} sums to 1`);
  }
  // λ = 1, no smoothing: plain one-hot
  assert.deepEqual([...mixupTarget([1, 0], 2, 1, 0)], [0, 1, 1, 0]);
  assertThrowsMsg(() => mixupTarget([4], 4, 1, 0), "label 4");
});

test("mixup: Mixup blends sample i with sample B−1−i; CutMix pastes the flipped batch's box", () => {
  const shape = [4, 2, 3, 5] as const;
  const per = 2 * 3 * 5;
  const orig = Float32Array.from({ length: 4 * per }, (_, i) => i);
  const x = orig.slice();
  mixBatch(x, shape, [0, 1, 2, 3], { lam: 0.25, cutmix: false }, 4, 0);
  for (let i = 0; i < 4; i++) {
    for (let e = 0; e < per; e++) {
      near(x[i * per + e], 0.25 * orig[i * per + e] + 0.75 * orig[(3 - i) * per + e], 1e-4, `mix ${i},${e}`);
    }
  }
  const y = orig.slice();
  const box = { yl: 1, yh: 3, xl: 2, xh: 4 };
  const t = mixBatch(y, shape, [0, 1, 2, 3], { lam: 1 - 4 / 15, cutmix: true, box }, 4, 0);
  for (let i = 0; i < 4; i++) {
    for (let ch = 0; ch < 2; ch++) {
      for (let r = 0; r < 3; r++) {
        for (let c = 0; c < 5; c++) {
          const e = ch * 15 + r * 5 + c, inBox = r >= 1 && r < 3 && c >= 2 && c < 4;
          assert.equal(
            y[i * per + e],
            orig[(inBox ? 3 - i : i) * per + e],
            `cutmix ${i} ch${ch} (${r},${c})`,
          );
        }
      }
    }
  }
  near(t[0], 11 / 15, 1e-6, "target of the own label = λ");
  near(t[3], 4 / 15, 1e-6, "target of the partner's label = 1 − λ");
  // λ = 1: untouched
  const z = orig.slice();
  mixBatch(z, shape, [0, 1, 2, 3], { lam: 1, cutmix: false }, 4, 0);
  assert.deepEqual(z, orig);
  assertThrowsMsg(
    () => mixBatch(new Float32Array(3 * per), [3, 2, 3, 5], [0, 1, 2], { lam: 1, cutmix: false }, 4, 0),
    "even",
  );
});

test("mixup: rand_bbox sizes, clipping and timm's λ correction", () => {
  // λ = 0.75 on 10×20: ratio 0.5 → cut 5×10, half-sizes 2 and 5 (floor), so unclipped boxes are 4×10
  const r = new Rng(1);
  let clipped = 0;
  for (let k = 0; k < 500; k++) {
    const b = randBbox(10, 20, 0.75, r);
    assert.ok(b.yl >= 0 && b.yh <= 10 && b.xl >= 0 && b.xh <= 20 && b.yl <= b.yh && b.xl <= b.xh, "inside");
    if (b.yh - b.yl === 4 && b.xh - b.xl === 10) continue;
    clipped++;
    assert.ok(b.yl === 0 || b.yh === 10 || b.xl === 0 || b.xh === 20, "smaller boxes touch an edge");
  }
  assert.ok(clipped > 0, "some boxes were clipped");
  // Mixup with only CutMix on: λ is 1 − box area / image area
  const m = new Mixup({ numClasses: 3, mixupAlpha: 0, cutmixAlpha: 1 }, 5);
  for (let k = 0; k < 50; k++) {
    const p = m.params(10, 20);
    assert.ok(p.cutmix && p.box, "cutmix");
    const area = (p.box!.yh - p.box!.yl) * (p.box!.xh - p.box!.xl);
    near(p.lam, 1 - area / 200, 1e-12, "corrected λ");
  }
  const raw = new Mixup({ numClasses: 3, mixupAlpha: 0, cutmixAlpha: 1, correctLam: false }, 5);
  const p = raw.params(10, 20);
  assert.ok(p.lam > 0 && p.lam < 1, "uncorrected λ is the Beta draw");
});

test("mixup: Beta(α, α) moments, switch probability 0.5, prob, determinism", () => {
  const r = new Rng(7);
  for (const a of [0.8, 1, 2.5]) {
    const n = 40000;
    let s = 0, s2 = 0;
    for (let i = 0; i < n; i++) {
      const v = sampleBeta(r, a, a);
      assert.ok(v >= 0 && v <= 1, "in [0, 1]");
      s += v;
      s2 += v * v;
    }
    const mean = s / n, vr = s2 / n - mean * mean, want = 1 / (4 * (2 * a + 1)); // αβ/((α+β)²(α+β+1))
    near(mean, 0.5, 0.01, `Beta(${a}) mean`);
    near(vr, want, 0.005, `Beta(${a}) var`);
  }
  const m = new Mixup({ numClasses: 10 }, 3);
  let cut = 0;
  for (let i = 0; i < 2000; i++) cut += m.params(32, 32).cutmix ? 1 : 0;
  near(cut / 2000, 0.5, 0.05, "switch prob");
  const never = new Mixup({ numClasses: 10, prob: 0 }, 3);
  assert.deepEqual(never.params(8, 8), { lam: 1, cutmix: false });
  const [a, b] = [new Mixup({ numClasses: 10 }, 9), new Mixup({ numClasses: 10 }, 9)];
  for (let i = 0; i < 20; i++) assert.deepEqual(a.params(16, 16), b.params(16, 16), "same seed, same draws");
  // apply: images mixed and targets returned
  const x = Float32Array.from({ length: 2 * 3 * 4 * 4 }, (_, i) => i % 7);
  const { targets, params } = new Mixup({ numClasses: 5 }, 1).apply(x, [2, 3, 4, 4], [1, 4]);
  assert.equal(targets.length, 10);
  near(targets[1], params.lam * (0.9 + 0.02) + (1 - params.lam) * 0.02, 1e-6, "target from the drawn λ");
  assertThrowsMsg(() => new Mixup({ numClasses: 0 }), "numClasses");
});
