// Scaled dot-product attention (multi-head, grouped-query, bidirectional or causal), in the layout
// linear layers produce: q [B, Tq, H·Dh], k and v [B, Tk, Hkv·Dh], head h in columns h·Dh..(h+1)·Dh-1;
// the output is [B, Tq, H·Dh] in the same layout, so no transposes are needed on either side.
//
// The forward op saves the per-row logsumexp L [B, H, Tq] (aux 0) rather than the probabilities
// [B, H, Tq, Tk]: the backward recomputes P = exp(s - L) tile by tile (flash-attention style), so
// memory stays linear in T and the forward never materialises the score matrix.
// Backward ops:
//   attention_bwd_d  (o, dy)                → D [B, H, Tq], D_i = Σ_d dy_id·o_id  (= Σ_j P_ij·dP_ij)
//   attention_bwd_q  (q, k, v, dy, L, D)    → dq
//   attention_bwd_kv (q, k, v, dy, L, D)    → dk, aux 0: dv (GQA: summed over each group's query heads)
// dq and dk/dv are separate ops so a rule that needs only one side builds only that kernel.

import { fmtShape, type Node, type OutSpec, shapeFail } from "../core/ir.ts";
import { type AttnAttrs, defineOp } from "./attrs.ts";

export type { AttnAttrs } from "./attrs.ts";

/** Options of attention(): heads, grouped-query kv heads, causal masking, score scale. */
export interface AttentionOpts {
  /** Query heads H; the feature dim of q is H·Dh. */
  heads: number;
  /** Key/value heads Hkv (grouped-query attention); defaults to heads. Must divide heads. */
  kvHeads?: number;
  /** Query i attends to keys j <= i + (Tk - Tq) (bottom-right aligned). Default false. */
  causal?: boolean;
  /** Score scale; default Dh^-0.5. */
  scale?: number;
}

/** Sizes of an attention problem, derived from q and k shapes and the attrs. */
export interface AttnDims {
  B: number;
  Tq: number;
  Tk: number;
  H: number;
  Hkv: number;
  Dh: number;
}

/** The sizes of an attention problem with queries q and keys k (shapes already checked). */
export function attnDims(q: Node, k: Node, attrs: AttnAttrs): AttnDims {
  const H = attrs.heads, Hkv = attrs.kvHeads;
  return { B: q.shape[0], Tq: q.shape[1], Tk: k.shape[1], H, Hkv, Dh: q.shape[2] / H };
}

/** Validates q, k, v and the attrs (shared by the forward and the backward ops). */
function checkQKV(op: string, inputs: readonly Node[], attrs: AttnAttrs): AttnDims {
  const [q, k, v] = inputs;
  const { heads: H, kvHeads: Hkv, causal, scale } = attrs;
  if (!Number.isInteger(H) || H < 1 || !Number.isInteger(Hkv) || Hkv < 1) {
    shapeFail(op, inputs, `positive integer heads and kvHeads (got heads=${H}, kvHeads=${Hkv})`);
  }
  if (H % Hkv !== 0) shapeFail(op, inputs, `heads (${H}) to be a multiple of kvHeads (${Hkv})`);
  if (typeof causal !== "boolean" || typeof scale !== "number" || !Number.isFinite(scale)) {
    shapeFail(op, inputs, "a boolean causal and a finite numeric scale");
  }
  if (inputs.slice(0, 3).some((x) => x.dtype !== "f32" || x.rank !== 3)) {
    shapeFail(op, inputs, "f32 q [B,Tq,H·Dh], k [B,Tk,Hkv·Dh], v [B,Tk,Hkv·Dh]");
  }
  const F = q.shape[2];
  if (F === 0 || F % H !== 0) {
    shapeFail(op, inputs, `q's feature dim ${F} to be divisible by heads=${H} (q is [B,Tq,H·Dh])`);
  }
  const Dh = F / H;
  if (k.shape[0] !== q.shape[0] || v.shape[0] !== q.shape[0]) {
    shapeFail(
      op,
      inputs,
      `q, k and v to have the same batch size (got ${q.shape[0]}, ${k.shape[0]}, ${v.shape[0]})`,
    );
  }
  if (k.shape[1] !== v.shape[1]) {
    shapeFail(op, inputs, `k and v to have the same length Tk (got ${k.shape[1]} and ${v.shape[1]})`);
  }
  if (k.shape[2] !== Hkv * Dh || v.shape[2] !== Hkv * Dh) {
    shapeFail(op, inputs, `k and v feature dims of kvHeads·Dh = ${Hkv}·${Dh} = ${Hkv * Dh}`);
  }
  return { B: q.shape[0], Tq: q.shape[1], Tk: k.shape[1], H, Hkv, Dh };
}

/** Checks that input `i` has exactly `shape` (f32). */
function expectShape(op: string, inputs: readonly Node[], i: number, shape: number[], what: string) {
  const x = inputs[i];
  if (x.dtype !== "f32" || x.shape.join() !== shape.join()) {
    shapeFail(op, inputs, `${what} of shape ${fmtShape(shape)}`);
  }
}

const attentionOp = defineOp("attention", {
  infer: (inputs, attrs): OutSpec => {
    if (inputs.length !== 3) shapeFail("attention", inputs, "3 inputs q, k, v");
    const { B, Tq, H } = checkQKV("attention", inputs, attrs);
    return { shape: inputs[0].shape, dtype: "f32", aux: [{ shape: [B, H, Tq], dtype: "f32" }] };
  },
  grad: (n, dy, needs) => {
    const g = n.graph;
    const [q, k, v] = n.inputs;
    const lse = g.aux(n, 0);
    const d = g.apply(attentionBwdD, [n, dy], n.attrs);
    const saved = [q, k, v, dy, lse, d];
    const dq = needs[0] ? g.apply(attentionBwdQ, saved, n.attrs) : undefined;
    const dk = needs[1] || needs[2] ? g.apply(attentionBwdKV, saved, n.attrs) : undefined;
    return [dq, needs[1] ? dk : undefined, needs[2] ? g.aux(dk!, 0) : undefined];
  },
});

const attentionBwdD = defineOp("attention_bwd_d", {
  grad: "none",
  infer: (inputs, attrs) => {
    const o = inputs[0];
    const H = attrs.heads;
    if (
      inputs.length !== 2 || o.rank !== 3 || o.dtype !== "f32" || !Number.isInteger(H) || H < 1 ||
      o.shape[2] % H !== 0
    ) {
      shapeFail("attention_bwd_d", inputs, `the attention output [B,T,H·Dh] (heads=${H}) and its gradient`);
    }
    expectShape("attention_bwd_d", inputs, 1, [...o.shape], "dy");
    return { shape: [o.shape[0], H, o.shape[1]], dtype: "f32" };
  },
});

function bwdInfer(op: string) {
  return (inputs: readonly Node[], attrs: AttnAttrs): OutSpec => {
    if (inputs.length !== 6) shapeFail(op, inputs, "6 inputs q, k, v, dy, logsumexp, D");
    const { B, Tq, H } = checkQKV(op, inputs, attrs);
    expectShape(op, inputs, 3, [...inputs[0].shape], "dy");
    expectShape(op, inputs, 4, [B, H, Tq], "logsumexp");
    expectShape(op, inputs, 5, [B, H, Tq], "D");
    const [q, k] = inputs;
    return op === "attention_bwd_q"
      ? { shape: q.shape, dtype: "f32" }
      : { shape: k.shape, dtype: "f32", aux: [{ shape: k.shape, dtype: "f32" }] };
  };
}
const attentionBwdQ = defineOp("attention_bwd_q", { infer: bwdInfer("attention_bwd_q"), grad: "none" });
const attentionBwdKV = defineOp("attention_bwd_kv", { infer: bwdInfer("attention_bwd_kv"), grad: "none" });

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const attentionOps = {
  attention: attentionOp,
  attention_bwd_d: attentionBwdD,
  attention_bwd_q: attentionBwdQ,
  attention_bwd_kv: attentionBwdKV,
};

/**
 * Multi-head scaled dot-product attention. q [B, Tq, H·Dh], k and v [B, Tk, Hkv·Dh] with heads
 * contiguous along the feature axis; returns [B, Tq, H·Dh] in the same layout. Query head h reads
 * kv head floor(h / (H/Hkv)). Causal: query i sees keys j <= i + Tk - Tq (a query with no visible
 * key outputs 0).
 */
export function attention(q: Node, k: Node, v: Node, opts: AttentionOpts): Node {
  const heads = opts.heads;
  const kvHeads = opts.kvHeads ?? heads;
  const Dh = q.rank === 3 && heads > 0 ? q.shape[2] / heads : NaN;
  const scale = opts.scale ?? (Number.isInteger(Dh) && Dh > 0 ? 1 / Math.sqrt(Dh) : 1);
  return q.graph.apply(attentionOp, [q, k, v], { heads, kvHeads, causal: opts.causal ?? false, scale });
}

/** The per-row logsumexp [B, H, Tq] of the scaled, masked scores, saved by an attention node. */
export function attentionLse(attn: Node): Node {
  if (attn.op !== "attention") throw new Error(`attentionLse: ${attn} is not an attention node`);
  return attn.graph.aux(attn, 0);
}
