// CPU references (f64, plain loops) of the point-cloud grouping family: fps (ties → lowest index),
// knn (nearest first, ties → lower index), gather_points (out of range → zero row) and its backward.
import { type RefOf, type RefsFor, tensor } from "./f64.ts";

const fpsRef: RefOf<"fps"> = ([p], a) => {
  const [B, N] = p.shape;
  const G = a.groups;
  const out = tensor([B, G]);
  for (let b = 0; b < B; b++) {
    const at = (i: number, c: number) => p.data[(b * N + i) * 3 + c];
    const dist = new Array(N).fill(1e10);
    let last = 0;
    out.data[b * G] = 0;
    for (let j = 1; j < G; j++) {
      let best = -1, bestD = -Infinity;
      for (let i = 0; i < N; i++) {
        let d = 0;
        for (let c = 0; c < 3; c++) d += (at(i, c) - at(last, c)) ** 2;
        dist[i] = Math.min(dist[i], d);
        if (dist[i] > bestD) [best, bestD] = [i, dist[i]]; // strict: the first (lowest) max wins
      }
      last = best;
      out.data[b * G + j] = best;
    }
  }
  return out;
};

const knnRef: RefOf<"knn"> = ([p, ctr], a) => {
  const [B, N] = p.shape;
  const G = ctr.shape[1];
  const K = a.k;
  const out = tensor([B, G, K]);
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < G; g++) {
      const ds: [number, number][] = [];
      for (let i = 0; i < N; i++) {
        let d = 0;
        for (let c = 0; c < 3; c++) d += (p.data[(b * N + i) * 3 + c] - ctr.data[(b * G + g) * 3 + c]) ** 2;
        ds.push([d, i]);
      }
      ds.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
      for (let j = 0; j < K; j++) out.data[(b * G + g) * K + j] = ds[j][1];
    }
  }
  return out;
};

const gatherPointsRef: RefOf<"gather_points"> = ([p, idx], _a, n) => {
  const [B, N, C] = p.shape;
  const S = idx.data.length / B;
  const out = tensor(n.shape);
  idx.data.forEach((v, q) => {
    if (v < 0 || v >= N) return;
    const b = Math.floor(q / S);
    for (let c = 0; c < C; c++) out.data[q * C + c] = p.data[(b * N + v) * C + c];
  });
  return out;
};

const gatherPointsBwdRef: RefOf<"gather_points_bwd"> = ([idx, dy], _a, n) => {
  const [B, N, C] = n.shape;
  const S = idx.data.length / B;
  const out = tensor(n.shape);
  idx.data.forEach((v, q) => {
    if (v < 0 || v >= N) return;
    const b = Math.floor(q / S);
    for (let c = 0; c < C; c++) out.data[(b * N + v) * C + c] += dy.data[q * C + c];
  });
  return out;
};

/** The CPU references of this family (entries of tests/ref/table.ts). */
export const pointsRefs: RefsFor<"fps" | "knn" | "gather_points" | "gather_points_bwd"> = {
  fps: fpsRef,
  knn: knnRef,
  gather_points: gatherPointsRef,
  gather_points_bwd: gatherPointsBwdRef,
};
