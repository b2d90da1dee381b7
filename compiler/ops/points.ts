// Point-cloud grouping for a Point-BERT-style encoder: farthest point sampling (fps), k nearest
// neighbours (knn), batched point gathering (gather_points + its backward), and the groupPoints
// builder that composes them into centers and relative neighbourhoods.
//
// fps(points [B,N,3], G) → i32 [B,G]: pointnet2's furthest_point_sampling. Starts at index 0, keeps
//   each point's min squared distance to the chosen set (initialised to 1e10) and picks the argmax
//   each round. Ties → the LOWEST index (pointnet2's CUDA reduction leaves ties unspecified; we fix
//   the lowest so GPU and CPU agree). Unlike pointnet2's CUDA kernel we do NOT skip points with
//   |p|² <= 1e-3 (that quirk makes points at the origin unselectable; it is not part of the
//   algorithm). With G = N and distinct points the result is a permutation.
// knn(points [B,N,3], centers [B,G,3], k) → i32 [B,G,k]: the k nearest points of each center by
//   squared Euclidean distance, nearest first; equal distances → lower index first. So a center that
//   is one of the points comes first (distance 0), unless an exact duplicate has a lower index.
// gather_points(points [B,N,C], idx i32 [B,...S]) → [B,...S,C]: per-batch row gather; an index
//   outside [0,N) yields a zero row. Its gradient is gather_points_bwd(idx, dy) → [B,N,C], summing
//   the dy rows of every position that picked a point.
// fps and knn produce indices: they have no gradient rule (not differentiable).

import { fmtShape, type Node, ShapeError, shapeFail } from "../core/ir.ts";
import { defineOp } from "./attrs.ts";
import { sub } from "./elementwise.ts";
import { reshape } from "./layout.ts";

/** A point cloud [B, N, 3] of f32, else a ShapeError naming the op. */
function checkCloud(op: string, inputs: readonly Node[], x: Node, what: string): void {
  if (x.rank !== 3 || x.shape[2] !== 3 || x.dtype !== "f32") {
    shapeFail(op, inputs, `${what} of shape [B, N, 3] and dtype f32`);
  }
}

const fpsOp = defineOp("fps", {
  grad: "none",
  infer: (inputs, attrs) => {
    if (inputs.length !== 1) shapeFail("fps", inputs, "one input: points [B, N, 3] f32");
    const [p] = inputs;
    checkCloud("fps", inputs, p, "points");
    const G = attrs.groups;
    if (!Number.isInteger(G) || G < 1) {
      throw new ShapeError(`fps: groups must be an integer >= 1 (got ${G})`);
    }
    if (G > p.shape[1]) {
      throw new ShapeError(
        `fps: groups larger than the cloud: ${G} groups from ${p.shape[1]} points (points ${
          fmtShape(p.shape)
        })`,
      );
    }
    return { shape: [p.shape[0], G], dtype: "i32" };
  },
});

const knnOp = defineOp("knn", {
  grad: "none",
  infer: (inputs, attrs) => {
    if (inputs.length !== 2) shapeFail("knn", inputs, "points [B, N, 3] and centers [B, G, 3], both f32");
    const [p, c] = inputs;
    checkCloud("knn", inputs, p, "points");
    checkCloud("knn", inputs, c, "centers");
    if (p.shape[0] !== c.shape[0]) shapeFail("knn", inputs, "points and centers with the same batch B");
    const k = attrs.k;
    if (!Number.isInteger(k) || k < 1) throw new ShapeError(`knn: k must be an integer >= 1 (got ${k})`);
    if (k > p.shape[1]) {
      throw new ShapeError(
        `knn: k larger than the cloud: k = ${k} neighbours from ${p.shape[1]} points (points ${
          fmtShape(p.shape)
        })`,
      );
    }
    return { shape: [c.shape[0], c.shape[1], k], dtype: "i32" };
  },
});

const gatherPointsOp = defineOp("gather_points", {
  infer: (inputs) => {
    const [p, idx] = inputs;
    if (
      inputs.length !== 2 || p.rank !== 3 || p.dtype !== "f32" || idx.dtype !== "i32" || idx.rank < 1 ||
      idx.shape[0] !== p.shape[0]
    ) {
      shapeFail("gather_points", inputs, "points [B, N, C] f32 and i32 indices [B, ...S]");
    }
    return { shape: [...idx.shape, p.shape[2]], dtype: "f32" };
  },
  grad: (n, dy, needs) => {
    const [p, idx] = n.inputs;
    return [
      needs[0] ? n.graph.apply(gatherPointsBwdOp, [idx, dy], { n: p.shape[1] }) : undefined,
      undefined,
    ];
  },
});

// dpoints[b, j] = sum of dy[b, s] over the positions s with idx[b, s] = j
const gatherPointsBwdOp = defineOp("gather_points_bwd", {
  grad: "none",
  infer: (inputs, attrs) => {
    const [idx, dy] = inputs;
    const N = attrs.n;
    const ok = inputs.length === 2 && idx.dtype === "i32" && dy.dtype === "f32" && idx.rank >= 1 &&
      dy.rank === idx.rank + 1 && idx.shape.every((d, i) => d === dy.shape[i]);
    if (!ok || !Number.isInteger(N) || N < 1) {
      shapeFail(
        "gather_points_bwd",
        inputs,
        `i32 indices [B, ...S], f32 dy [B, ...S, C] and n >= 1 (got ${N})`,
      );
    }
    return { shape: [idx.shape[0], N, dy.shape[dy.rank - 1]], dtype: "f32" };
  },
});

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const pointsOps = {
  fps: fpsOp,
  knn: knnOp,
  gather_points: gatherPointsOp,
  gather_points_bwd: gatherPointsBwdOp,
};

/** Farthest point sampling: i32 [B, groups] indices into points [B, N, 3] (first is 0; ties → lowest index). */
export function fps(points: Node, groups: number): Node {
  return points.graph.apply(fpsOp, [points], { groups });
}

/** The k nearest points [B, N, 3] of each center [B, G, 3] → i32 [B, G, k], nearest first, ties → lower index. */
export function knn(points: Node, centers: Node, k: number): Node {
  return points.graph.apply(knnOp, [points, centers], { k });
}

/** Per-batch gather: points [B, N, C], i32 idx [B, ...S] → [B, ...S, C] (out-of-range → zero row). */
export function gatherPoints(points: Node, idx: Node): Node {
  return points.graph.apply(gatherPointsOp, [points, idx], {});
}

/**
 * Point-BERT grouping: `groups` centers by farthest point sampling, and for each the `k` nearest
 * points expressed relative to their center. neighborhoods is [B, G, k, 3]; centers [B, G, 3];
 * centerIdx i32 [B, G]; knnIdx i32 [B, G, k]. Differentiable w.r.t. points through the gathers (the
 * selections themselves are constants).
 */
export function groupPoints(
  points: Node,
  groups: number,
  k: number,
): { centers: Node; neighborhoods: Node; centerIdx: Node; knnIdx: Node } {
  const centerIdx = fps(points, groups);
  const centers = gatherPoints(points, centerIdx);
  const knnIdx = knn(points, centers, k);
  const B = points.shape[0];
  const neighborhoods = sub(gatherPoints(points, knnIdx), reshape(centers, [B, groups, 1, 3]));
  return { centers, neighborhoods, centerIdx, knnIdx };
}
