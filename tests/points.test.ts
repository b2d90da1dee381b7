// Tests of the point-cloud grouping family: fps and knn vs the f64 CPU references on random clouds
// (exact index equality), hand-worked cases pinning the tie rules, deliberate ties (duplicate points,
// integer grids where many distances are equal), G = N (a permutation), k = N, gather_points fwd +
// gradient (checkOp), groupPoints end to end vs a CPU composition, and shape errors.
import { checkOp, randParam } from "./harness.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { kernelLabels, lower } from "../compiler/lower/plan.ts";
import { grad } from "../compiler/grad.ts";
import { OPS } from "../compiler/ops/table.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { Rng } from "../compiler/core/random.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { getGpu } from "../compiler/runtime/device.ts";
import type { LowerCtx } from "../kernels/kernel.ts";
import { interpret } from "./ref/tensor.ts";
import { fps, gatherPoints, groupPoints, knn } from "../compiler/ops/points.ts";

/**
 * Both fps variants: one workgroup per cloud with tree reductions (GPUs) and one thread per cloud
 * without barriers (software adapters). knn and the gathers have one form (no barriers).
 */
const VARIANTS = [{ isSoftware: false }, { isSoftware: true }];
const vname = (c: { isSoftware?: boolean }) => c.isSoftware ? "thread-per-cloud" : "workgroup";

/** A random cloud of B·N points, N(0,1) coordinates rounded to f32. */
function randCloud(B: number, N: number, seed: number): number[] {
  const r = new Rng(seed);
  return Array.from({ length: B * N * 3 }, () => Math.fround(r.normal()));
}

/** Integer grid points (exact in f32, many equal distances), in a shuffled-but-fixed order per batch. */
function gridCloud(B: number, side: number, seed: number): number[] {
  const r = new Rng(seed);
  const out: number[] = [];
  for (let b = 0; b < B; b++) {
    const pts: number[][] = [];
    for (let x = 0; x < side; x++) {
      for (let y = 0; y < side; y++) for (let z = 0; z < side; z++) pts.push([x, y, z]);
    }
    for (let i = pts.length - 1; i > 0; i--) {
      const j = r.int(i + 1);
      [pts[i], pts[j]] = [pts[j], pts[i]];
    }
    out.push(...pts.flat());
  }
  return out;
}

/** Runs `outs` on the GPU and on the CPU references with the given feeds; returns both. */
async function runBoth(
  outs: Node[],
  feeds: Map<Node, ArrayLike<number>>,
  ctx: Partial<LowerCtx> = {},
): Promise<{ gpu: number[][]; cpu: number[][] }> {
  const cpu = interpret(outs, feeds);
  const exe = await compile(outs, { ctx: { ...(await getGpu()).lowerCtx, ...ctx } });
  for (const [n, v] of feeds) exe.write(n, n.dtype === "i32" ? Int32Array.from(v) : Float32Array.from(v));
  const got = await exe.run(outs);
  exe.destroy();
  return { gpu: got.map((a) => [...a]), cpu: outs.map((o) => [...cpu.get(o)!.data]) };
}

/** fps and knn of a cloud, GPU vs CPU, exact. Returns the GPU indices. */
async function checkFpsKnn(
  B: number,
  N: number,
  G: number,
  k: number,
  data: number[],
  ctx: Partial<LowerCtx> = {},
) {
  const g = new Graph();
  const pts = g.input("pts", [B, N, 3]);
  const ci = fps(pts, G);
  // knn around the chosen centers (taken from the CPU: the fps check below makes them identical)
  const ctr = g.input("ctr", [B, G, 3]);
  const ki = knn(pts, ctr, k);
  const cpuIdx = interpret([ci], new Map([[pts, data]])).get(ci)!.data;
  const ctrData: number[] = [];
  cpuIdx.forEach((v, q) => {
    const b = Math.floor(q / G);
    ctrData.push(...data.slice((b * N + v) * 3, (b * N + v) * 3 + 3));
  });
  const { gpu, cpu } = await runBoth(
    [ci, ki],
    new Map<Node, ArrayLike<number>>([[pts, data], [ctr, ctrData]]),
    ctx,
  );
  assert.deepEqual(gpu[0], cpu[0], "fps indices GPU vs CPU");
  assert.deepEqual(gpu[1], cpu[1], "knn indices GPU vs CPU");
  return { fpsIdx: gpu[0], knnIdx: gpu[1] };
}

test("points: hand-worked tie rules (fps lowest index, knn lower index first)", async (t) => {
  for (const ctx of VARIANTS) await t.step(vname(ctx), () => handWorked(ctx));
});

async function handWorked(ctx: Partial<LowerCtx>) {
  // points on a line x = 0, 1, 2, 3. fps from 0: dists [0,1,4,9] → 3; then mins [0,1,1,0]: tie → 1.
  const g = new Graph();
  const pts = g.input("pts", [1, 4, 3]);
  const ctr = g.input("ctr", [1, 2, 3]);
  const f = fps(pts, 3);
  const k = knn(pts, ctr, 4);
  const line = [0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0];
  // centers: x = 1.5 (ties 1,2 then 0,3) and the point x = 2 itself (distance 0 first, then 1 and 3 tie)
  const { gpu, cpu } = await runBoth(
    [f, k],
    new Map<Node, ArrayLike<number>>([[pts, line], [ctr, [1.5, 0, 0, 2, 0, 0]]]),
    ctx,
  );
  for (const [what, r] of [["gpu", gpu], ["cpu", cpu]] as const) {
    assert.deepEqual(r[0], [0, 3, 1], `${what} fps`);
    assert.deepEqual(r[1], [1, 2, 0, 3, 2, 1, 3, 0], `${what} knn`);
  }
}

test("points: fps + knn vs CPU on random clouds", async (t) => {
  // B = 11: two 8-thread workgroups in the thread-per-cloud variant
  const cases: [number, number, number, number][] = [
    [2, 64, 8, 8],
    [2, 300, 16, 32],
    [3, 37, 5, 7],
    [1, 700, 16, 8],
    [11, 29, 6, 5],
  ];
  for (const [[B, N, G, k], ctx] of cases.flatMap((c) => VARIANTS.map((v) => [c, v] as const))) {
    await t.step(`B=${B} N=${N} G=${G} k=${k} (${vname(ctx)})`, async () => {
      const { fpsIdx, knnIdx } = await checkFpsKnn(B, N, G, k, randCloud(B, N, N + G), ctx);
      for (let b = 0; b < B; b++) {
        assert.equal(fpsIdx[b * G], 0, "fps starts at index 0");
        assert.equal(new Set(fpsIdx.slice(b * G, b * G + G)).size, G, "fps picks distinct points");
      }
      // the center is one of the points: it comes first
      for (let q = 0; q < B * G; q++) assert.equal(knnIdx[q * k], fpsIdx[q]);
    });
  }
});

test("points: deliberate ties", async (t) => {
  for (const ctx of VARIANTS) await t.step(vname(ctx), (t) => ties(t, ctx));
});

async function ties(t: Deno.TestContext, ctx: Partial<LowerCtx>) {
  await t.step("integer grid 4x4x4 (many equal distances), G=16 k=32", async () => {
    await checkFpsKnn(2, 64, 16, 32, gridCloud(2, 4, 3), ctx);
  });
  await t.step(
    "integer grid 7x7x7 = 343 points (> 256 threads: ties within one thread's points)",
    async () => {
      await checkFpsKnn(1, 343, 16, 8, gridCloud(1, 7, 4), ctx);
    },
  );
  // H = 256 puts both copies in the same fps thread (256 threads stride over 512 points)
  for (const H of [32, 256]) {
    await t.step(`duplicate points: every point twice (i and i+${H})`, async () => {
      const half = randCloud(2, H, 11 + H);
      const data: number[] = [];
      for (let b = 0; b < 2; b++) {
        const s = half.slice(b * H * 3, (b + 1) * H * 3);
        data.push(...s, ...s);
      }
      const G = 8, k = 8;
      const { fpsIdx, knnIdx } = await checkFpsKnn(2, 2 * H, G, k, data, ctx);
      // fps never picks the later copy of a chosen point, and always the lower copy on a tie
      assert.ok(fpsIdx.every((v) => v < H), `fps took a higher duplicate: ${fpsIdx}`);
      // each center's two copies come first, lower index first
      for (let q = 0; q < 2 * G; q++) {
        assert.deepEqual(knnIdx.slice(q * k, q * k + 2), [fpsIdx[q], fpsIdx[q] + H]);
      }
    });
  }
  await t.step("G = N: all points chosen (a permutation), k = N", async () => {
    const N = 27;
    const { fpsIdx, knnIdx } = await checkFpsKnn(2, N, N, N, gridCloud(2, 3, 5), ctx);
    for (let b = 0; b < 2; b++) {
      assert.deepEqual([...fpsIdx.slice(b * N, b * N + N)].sort((x, y) => x - y), [...Array(N).keys()]);
    }
    for (let q = 0; q < 2 * N; q++) {
      assert.deepEqual([...knnIdx.slice(q * N, q * N + N)].sort((x, y) => x - y), [...Array(N).keys()]);
    }
  });
}

test("points: fps with clouds beyond maxWorkgroupsPerDim (folded 2-D grid)", async (t) => {
  // workgroup variant: 5 clouds → a 3x2 grid of cloud workgroups (one idle); thread-per-cloud: 17 clouds →
  // three 8-thread workgroups → a 2x2 grid (one idle)
  const cases = [
    { B: 5, ctx: { isSoftware: false, maxWorkgroupsPerDim: 3 } },
    { B: 17, ctx: { isSoftware: true, maxWorkgroupsPerDim: 2 } },
  ];
  for (const { B, ctx } of cases) {
    await t.step(`B=${B} (${vname(ctx)})`, async () => {
      const g = new Graph();
      const pts = g.input("pts", [B, 9, 3]);
      const ci = fps(pts, 4);
      const data = randCloud(B, 9, B);
      const { gpu, cpu } = await runBoth([ci], new Map([[pts, data]]), ctx);
      assert.deepEqual(gpu[0], cpu[0], "fps indices GPU vs CPU");
      const exe = await compile([ci], { ctx: { ...(await getGpu()).lowerCtx, ...ctx } });
      assert.ok(exe.plan.dispatches.some((d) => d.label === "fps_fwd" && d.workgroups[1] > 1), "not folded");
      exe.destroy();
    });
  }
});

test("points: gather_points fwd + gradient", async (t) => {
  await t.step("idx [2,5] into [2,7,3], repeats and one out of range", async () => {
    await checkOp({
      build: (g) => gatherPoints(randParam(g, "pts", [2, 7, 3]), g.input("idx", [2, 5], "i32")),
      feeds: { idx: [0, 6, 6, 3, 9, 1, 1, 1, 5, 0] },
    });
  });
  await t.step("idx [2,3,4] into [2,9,5] (C = 5)", async () => {
    const r = new Rng(3);
    await checkOp({
      build: (g) => gatherPoints(randParam(g, "pts", [2, 9, 5]), g.input("idx", [2, 3, 4], "i32")),
      feeds: { idx: Array.from({ length: 24 }, () => r.int(9)) },
    });
  });
});

test("points: groupPoints end to end vs a CPU composition", async () => {
  const B = 2, N = 96, G = 8, k = 16;
  const data = randCloud(B, N, 77);
  const g = new Graph();
  const pts = g.input("pts", [B, N, 3]);
  const r = groupPoints(pts, G, k);
  assert.deepEqual(r.neighborhoods.shape, [B, G, k, 3]);
  assert.deepEqual(r.centers.shape, [B, G, 3]);
  const outs = [r.centerIdx, r.knnIdx, r.centers, r.neighborhoods];
  const { gpu } = await runBoth(outs, new Map([[pts, data]]));
  // an independent CPU composition: brute-force fps and knn written out here
  const at = (b: number, i: number) => data.slice((b * N + i) * 3, (b * N + i) * 3 + 3);
  const d2 = (p: number[], q: number[]) => p.reduce((s, v, c) => s + (v - q[c]) ** 2, 0);
  const wantC: number[] = [], wantK: number[] = [], wantCtr: number[] = [], wantNb: number[] = [];
  for (let b = 0; b < B; b++) {
    const chosen = [0];
    while (chosen.length < G) {
      const score = [...Array(N).keys()].map((i) => Math.min(...chosen.map((c) => d2(at(b, i), at(b, c)))));
      chosen.push(score.indexOf(Math.max(...score)));
    }
    for (const c of chosen) {
      wantC.push(c);
      wantCtr.push(...at(b, c));
      const order = [...Array(N).keys()].sort((x, y) =>
        d2(at(b, x), at(b, c)) - d2(at(b, y), at(b, c)) || x - y
      );
      for (const i of order.slice(0, k)) {
        wantK.push(i);
        wantNb.push(...at(b, i).map((v, ch) => v - at(b, c)[ch]));
      }
    }
  }
  assert.deepEqual(gpu[0], wantC);
  assert.deepEqual(gpu[1], wantK);
  assert.deepEqual(gpu[2], wantCtr);
  gpu[3].forEach((v, i) =>
    assert.ok(Math.abs(v - wantNb[i]) < 1e-6, `neighborhoods[${i}]: ${v} vs ${wantNb[i]}`)
  );
  assert.ok(wantNb.some((v) => v !== 0));
});

test("points: groupPoints gradient w.r.t. points (through the gathers)", async () => {
  await checkOp({ build: (g) => groupPoints(randParam(g, "pts", [2, 20, 3]), 4, 5).neighborhoods });
});

test("points: kernel labels, no gradient for indices", () => {
  const g = new Graph();
  const pts = randParam(g, "pts", [2, 16, 3]);
  const r = groupPoints(pts, 4, 3);
  const labels = kernelLabels(lower([r.neighborhoods]));
  for (const l of ["fps_fwd", "knn_fwd", "gather_points_fwd"]) {
    assert.ok(labels.includes(l), `${l} in ${labels}`);
  }
  assert.equal(OPS.fps.grad, "none");
  assert.equal(OPS.knn.grad, "none");
  const gs = grad(sumAll(r.neighborhoods));
  assert.deepEqual([...gs.keys()], [pts]);
  const bwd = kernelLabels(lower([gs.get(pts)!]));
  assert.ok(bwd.includes("gather_points_bwd"), `${bwd}`);
  // the backward reuses the forward selections (fps_fwd/knn_fwd once each); no index op has a bwd kernel
  assert.equal(bwd.filter((l) => l === "fps_fwd").length, 1, `${bwd}`);
  assert.ok(!bwd.some((l) => /^(fps|knn)/.test(l) && l.endsWith("_bwd")), `${bwd}`);
});

test("points: shape errors", () => {
  const g = new Graph();
  const p = g.input("p", [2, 8, 3]);
  assertThrowsMsg(() => fps(p, 9), "fps", "groups larger than the cloud", "9", "8");
  assertThrowsMsg(() => fps(p, 0), "fps", "groups");
  assertThrowsMsg(() => fps(g.input("p2", [2, 8]), 2), "fps", "[2,8]", "[B, N, 3]");
  assertThrowsMsg(() => fps(g.input("p4", [2, 8, 2]), 2), "fps", "[2,8,2]", "[B, N, 3]");
  assertThrowsMsg(() => fps(g.input("pi", [2, 8, 3], "i32"), 2), "fps", "i32", "f32");
  const c = g.input("c", [2, 4, 3]);
  assertThrowsMsg(() => knn(p, c, 9), "knn", "k larger than the cloud", "9", "8");
  assertThrowsMsg(() => knn(p, g.input("c2", [3, 4, 3]), 2), "knn", "[3,4,3]", "same batch");
  assertThrowsMsg(() => knn(p, g.input("c3", [2, 4, 2]), 2), "knn", "[2,4,2]", "centers");
  assertThrowsMsg(() => knn(g.input("p5", [8, 3]), c, 2), "knn", "[8,3]", "points");
  assertThrowsMsg(() => groupPoints(p, 16, 4), "fps", "groups larger than the cloud", "16", "8");
  assertThrowsMsg(() => gatherPoints(p, g.input("i", [3, 2], "i32")), "gather_points", "[3,2]");
});
