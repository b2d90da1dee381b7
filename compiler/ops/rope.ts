// Rotary position embedding (RoPE), Hugging Face LLaMA convention ("default" rope type).
//
// x is [B, T, H·Dh] with head h in columns h·Dh..(h+1)·Dh-1 — the layout of q/k straight out of
// their linear layers, which is also what the attention op takes. For position t (token index +
// positionOffset) and i in [0, Dh/2):
//   inv_freq_i = theta^(-2i/Dh),  angle = t·inv_freq_i,
//   out = x·cos + rotate_half(x)·sin,  rotate_half(x) = concat(-x[Dh/2:], x[:Dh/2]),
// with cos/sin of angle_i used for both columns i and i + Dh/2. So the rotated pairs are
// (i, i + Dh/2) — HF's half-split order — not Meta's original interleaved pairs (2i, 2i+1);
// checkpoint loaders permute Meta's q/k rows into HF order, so only this order exists here.
//
// Precision follows HF: inv_freq is computed the way HF computes it, in f32, and the angle is the f32
// product f32(t)·inv_freq (ropeInvFreq gives those f32 values; the kernel and the CPU reference share
// them). Matching HF's f32 inv_freq bit for bit matters at long positions: one ulp of inv_freq ≈ 1
// moves the angle by 0.12 rad at t = 2·10^6.
//
// Backward: rope is a rotation of each pair, so its gradient is the inverse rotation of dy (angle →
// −angle). That is the same op with attr `inverse` flipped, whose own gradient is the forward again.

import { type Node, shapeFail } from "../core/ir.ts";
import { defineOp, type OpDefOf } from "./attrs.ts";
import { fromBf16, fromF16, toBf16, toF16 } from "../core/dtype.ts";

export type { RopeAttrs } from "./attrs.ts";

/** Options of rope(): heads, frequency base, position offset, direction and inv_freq precision. */
export interface RopeOpts {
  /** Heads H; the feature dim of x is H·Dh, Dh even. */
  heads: number;
  /** Base of the frequencies; default 10000 (LLaMA 1/2); LLaMA 3 uses 500000. */
  theta?: number;
  /** Position of the first token (e.g. the length of a KV cache); default 0. */
  positionOffset?: number;
  /** Rotate by −angle instead (the inverse; what the gradient uses). Default false. */
  inverse?: boolean;
  /**
   * Precision of inv_freq. HF keeps inv_freq as a buffer of the model's dtype, so a model loaded in
   * bf16 (or f16) rotates by frequencies rounded to bf16 even when it computes in f32 afterwards;
   * "bf16"/"f16" reproduce that. Default "f32".
   */
  invFreqDtype?: "f32" | "bf16" | "f16";
}

/** Largest position (exclusive) at which f32(t) is still exact. */
const MAX_POSITION = 2 ** 24;

/**
 * inv_freq_i = theta^(-2i/Dh) for i in [0, Dh/2) as f32, evaluated like HF's
 * `1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))`: every step rounded to f32. (Rounding the
 * f64 value once instead differs from HF's tensor in ~40% of entries; this form matched HF on 1347
 * of 1352 entries checked (Dh 4..256, theta 100..10^6); the rest are 1 ulp, where torch's powf rounds
 * a near-tie differently.)
 */
export function ropeInvFreq(
  headDim: number,
  theta: number,
  dtype: "f32" | "bf16" | "f16" = "f32",
): Float32Array {
  const f = Math.fround;
  const round = dtype === "bf16"
    ? (v: number) => fromBf16(toBf16(v))
    : dtype === "f16"
    ? (v: number) => fromF16(toF16(v))
    : f;
  return Float32Array.from(
    { length: headDim / 2 },
    (_, i) => round(f(1 / f(Math.pow(f(theta), f((2 * i) / headDim))))),
  );
}

/** Sizes of a rope problem: x is [B, T, H·Dh]. */
export function ropeDims(x: Node, attrs: { heads: number }): { B: number; T: number; H: number; Dh: number } {
  const H = attrs.heads;
  return { B: x.shape[0], T: x.shape[1], H, Dh: x.shape[2] / H };
}

// (typed explicitly: its gradient rule applies the op itself)
const ropeOp: OpDefOf<"rope"> = defineOp("rope", {
  infer: (inputs, attrs) => {
    const x = inputs[0];
    const { heads: H, theta, positionOffset: off, inverse } = attrs;
    if (inputs.length !== 1 || x.dtype !== "f32" || x.rank !== 3) {
      shapeFail("rope", inputs, "one f32 input x [B,T,H·Dh] (cast 16-bit tensors first)");
    }
    if (typeof H !== "number" || !Number.isInteger(H) || H < 1) {
      shapeFail("rope", inputs, `a positive integer heads (got ${H})`);
    }
    const F = x.shape[2];
    if (F % H !== 0) shapeFail("rope", inputs, `the feature dim ${F} to be divisible by heads=${H}`);
    const Dh = F / H;
    if (Dh % 2 !== 0 || Dh === 0) {
      shapeFail("rope", inputs, `an even, non-zero head dim (got ${F}/${H} heads = ${Dh})`);
    }
    if (typeof theta !== "number" || !Number.isFinite(theta) || !(theta > 1)) {
      shapeFail("rope", inputs, `a finite theta > 1 (got ${theta})`);
    }
    if (typeof off !== "number" || !Number.isInteger(off) || off < 0 || off + x.shape[1] > MAX_POSITION) {
      shapeFail(
        "rope",
        inputs,
        `an integer positionOffset >= 0 with positionOffset + T <= 2^24 (got ${off})`,
      );
    }
    if (typeof inverse !== "boolean") shapeFail("rope", inputs, "a boolean inverse");
    if (!["f32", "bf16", "f16"].includes(attrs.invFreqDtype)) {
      shapeFail("rope", inputs, `invFreqDtype f32, bf16 or f16 (got ${attrs.invFreqDtype})`);
    }
    return { shape: x.shape, dtype: "f32" };
  },
  // the transpose of a rotation is its inverse
  grad: (n, dy) => [n.graph.apply(ropeOp, [dy], { ...n.attrs, inverse: !n.attrs.inverse })],
});

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const ropeOps = { rope: ropeOp };

/**
 * Rotary position embedding of q or k ([B, T, H·Dh], heads contiguous on the last axis), HF LLaMA
 * convention: pairs (i, i + Dh/2) rotated by (t + positionOffset)·theta^(-2i/Dh).
 */
export function rope(x: Node, opts: RopeOpts): Node {
  return x.graph.apply(ropeOp, [x], {
    heads: opts.heads,
    theta: opts.theta ?? 10000,
    positionOffset: opts.positionOffset ?? 0,
    inverse: opts.inverse ?? false,
    invFreqDtype: opts.invFreqDtype ?? "f32",
  });
}
