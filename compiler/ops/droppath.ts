// Drop path (stochastic depth, timm's drop_path): a residual branch is dropped for whole samples.
//
// drop_path(x [B, ...] f32, seed [1] u32/i32) → x·keep_b/(1 − p) for every element of sample b, where
//   keep_b = hash(seed, stream, b) >= round(p·2³²) (dropThreshold), so P(drop) = p per sample.
//   hash(seed, stream, b) = pcg(pcg(b) ^ key), key = pcg(pcg(seed + seedOffset) ^ pcg(stream ^ STREAM_SALT))
//   with pcg and seedOffset of DROPOUT_HASH (compiler/ops/batchnorm.ts). `stream` tells the drop-path
//   nodes of one graph apart (two branches of one block and every block draw independent masks from
//   the one per-step seed); by default it is the input node's id, unique in its graph.
// The mask is a function of (seed, stream, b) only, never stored: the backward is the same op on dy.

import { type Node, ShapeError, shapeFail } from "../core/ir.ts";
import { defineOp, type OpDefOf } from "./attrs.ts";

/** Mixed into the stream before hashing, so stream s and sample index s do not share a hash input. */
export const STREAM_SALT = 0x85ebca6b;

const isSeed = (s: Node | undefined) =>
  s !== undefined && s.shape.join() === "1" && (s.dtype === "u32" || s.dtype === "i32");

// (typed explicitly: its gradient rule applies the op itself)
const dropPathOp: OpDefOf<"drop_path"> = defineOp("drop_path", {
  infer: (inputs, attrs) => {
    const [x, seed] = inputs;
    if (inputs.length !== 2 || x.dtype !== "f32" || x.rank < 1 || !isSeed(seed)) {
      shapeFail("drop_path", inputs, "x [B, ...] f32 and a u32/i32 seed [1]");
    }
    const p = attrs.p;
    if (typeof p !== "number" || !(p >= 0 && p < 1)) shapeFail("drop_path", inputs, `p in [0, 1) (got ${p})`);
    const s = attrs.stream;
    if (!Number.isInteger(s) || s < 0 || s > 0xffffffff) {
      shapeFail("drop_path", inputs, `stream a u32 (got ${s})`);
    }
    return { shape: x.shape, dtype: "f32" };
  },
  grad: (n, dy, needs) => [needs[0] ? n.graph.apply(dropPathOp, [dy, n.inputs[1]], n.attrs) : undefined],
});

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const dropPathOps = { drop_path: dropPathOp };

/**
 * Drop path with drop probability `p` per sample (dim 0 of x): each sample is kept and scaled by
 * 1/(1 − p), or zeroed, from a hash of (seed, stream, sample). p = 0 returns x itself. Write a new
 * `seed` every step; give each drop-path site its own `stream` (default: x's node id).
 */
export function dropPath(x: Node, p: number, seed: Node, stream: number = x.id): Node {
  if (p === 0) {
    if (!isSeed(seed)) throw new ShapeError(`drop_path: seed must be a u32/i32 [1], got ${seed}`);
    return x;
  }
  return x.graph.apply(dropPathOp, [x, seed], { p, stream });
}
