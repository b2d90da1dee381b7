// Matrix multiplication: `matmul` (batched, optional transposes, optional fused bias) and `linear`
// (PyTorch's x·Wᵀ + b with w [out, in]).
//
// out[..., m, n] = Σ_k op(a)[..., m, k] · op(b)[..., k, n] (+ bias[n]), where op() transposes the
// last two dims when transA / transB is set. b is either batched like a (same leading dims) or 2-D
// and shared by every batch (the linear-layer case). Only b may be stored as f16/bf16 (frozen LLM
// weights); a, bias and the output are f32.
//
// The gradients are matmuls again, written with trans flags instead of transpose copies. One internal
// attr, transOut, stores the result transposed ([..., N, M]): it is what lets dA of a transA product
// keep b (possibly 16-bit and/or shared) in the b slot. `role` only names the kernel in plan listings
// (matmul_fwd / matmul_bwd_a / matmul_bwd_b), so a plan shows which weight gradients exist.

import { fmtShape, type Node, shapeFail } from "../core/ir.ts";
import { defineOp, type MatmulRole } from "./attrs.ts";
import { reshape } from "./layout.ts";
import { sum } from "./broadcast.ts";

export type { MatmulAttrs, MatmulRole } from "./attrs.ts";

/** Options of matmul: transposes of a and b (last two dims), and a bias [N] added to every row. */
export interface MatmulOpts {
  /** a is stored [..., K, M]: use its transpose. */
  transA?: boolean;
  /** b is stored [..., N, K]: use its transpose (PyTorch's Linear weight). */
  transB?: boolean;
  /** A bias [N] (f32) added to every output row. */
  bias?: Node;
}

/** The resolved geometry of a matmul node (also used by the kernel lowering and the CPU reference). */
export interface MatmulDims {
  batch: number[];
  M: number;
  K: number;
  N: number;
  /** b is 2-D and shared by every batch entry. */
  sharedB: boolean;
}

/** The geometry of a matmul of `inputs` (a, b[, bias]) with transposes from attrs; throws on mismatch. */
export function matmulDims(
  inputs: readonly Node[],
  attrs: { transA?: boolean; transB?: boolean },
): MatmulDims {
  const [a, b, bias] = inputs;
  const fail = (what: string): never => shapeFail("matmul", inputs, what);
  if (inputs.length < 2 || inputs.length > 3) fail("inputs (a, b) or (a, b, bias)");
  if (a.dtype !== "f32") fail("a to be f32 (only b may be stored as f16/bf16)");
  if (b.dtype !== "f32" && b.dtype !== "f16" && b.dtype !== "bf16") fail("b to be f32, f16 or bf16");
  if (a.rank < 2 || b.rank < 2) fail("a and b of rank >= 2");
  const ta = !!attrs.transA, tb = !!attrs.transB;
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const M = ta ? ac : ar, K = ta ? ar : ac;
  const Kb = tb ? bc : br, N = tb ? br : bc;
  const batch = a.shape.slice(0, -2);
  const sharedB = b.rank === 2;
  if (K !== Kb) {
    fail(
      `a's K (${K}, from ${fmtShape(a.shape)}${ta ? " with transA" : ""}) to equal b's K ` +
        `(${Kb}, from ${fmtShape(b.shape)}${tb ? " with transB" : ""})`,
    );
  }
  if (!sharedB && b.shape.slice(0, -2).join() !== batch.join()) {
    fail(`b to be 2-D (shared) or to have a's batch dims ${fmtShape(batch)}`);
  }
  if (bias && (bias.dtype !== "f32" || bias.shape.join() !== String(N))) {
    fail(`a bias of shape [${N}]:f32`);
  }
  return { batch, M, K, N, sharedB };
}

const matmulOp = defineOp("matmul", {
  infer: (inputs, attrs) => {
    const { batch, M, N } = matmulDims(inputs, attrs);
    return { shape: [...batch, ...(attrs.transOut ? [N, M] : [M, N])], dtype: "f32" };
  },
  grad: (n, dy, needs) => {
    const [a, b, bias] = n.inputs;
    const ta = !!n.attrs.transA, tb = !!n.attrs.transB;
    if (n.attrs.transOut) throw new Error("matmul: transOut products are internal and not differentiable");
    const { batch, M, K, N, sharedB } = matmulDims(n.inputs, n.attrs);
    // dA = dY · op(B)ᵀ; stored transposed when a was (transOut), so b stays in the b slot.
    const da = needs[0] ? mm(dy, b, { transB: !tb, transOut: ta }, "bwd_a") : undefined;
    let db: Node | undefined;
    if (needs[1]) {
      const rows = batch.reduce((p, d) => p * d, 1) * M;
      if (sharedB && batch.length > 0 && ta) {
        // a is [...batch, K, M]: the batch cannot fold into M, so sum per-batch products.
        const per = dbOf(reshape(a, [rows / M, K, M]), reshape(dy, [rows / M, M, N]), ta, tb);
        db = sum(per, 0);
      } else if (sharedB && batch.length > 0) {
        // fold the batch into the rows: one matmul sums over it.
        db = dbOf(reshape(a, [rows, K]), reshape(dy, [rows, N]), false, tb);
      } else {
        db = dbOf(a, dy, ta, tb);
      }
    }
    const dbias = needs[2] && bias ? sum(reshape(dy, [dy.size / N, N]), 0) : undefined;
    return [da, db, dbias];
  },
});

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const matmulOps = { matmul: matmulOp };

/** dB = op(A)ᵀ · dY, stored as b is ([K, N], or [N, K] with transB: then dYᵀ · op(A)). */
function dbOf(a: Node, dy: Node, ta: boolean, tb: boolean): Node {
  return tb ? mm(dy, a, { transA: true, transB: ta }, "bwd_b") : mm(a, dy, { transA: !ta }, "bwd_b");
}

function mm(
  a: Node,
  b: Node,
  o: { transA?: boolean; transB?: boolean; transOut?: boolean },
  role: MatmulRole,
): Node {
  return a.graph.apply(matmulOp, [a, b], {
    transA: !!o.transA,
    transB: !!o.transB,
    transOut: !!o.transOut,
    role,
  });
}

/**
 * a [...batch, M, K] (transA: [..., K, M]) times b [...batch, K, N] (transB: [..., N, K]) or a 2-D b
 * shared by every batch entry; plus bias [N]. b may be stored as f16/bf16. Output f32 [...batch, M, N].
 */
export function matmul(a: Node, b: Node, opts: MatmulOpts = {}): Node {
  const inputs = opts.bias ? [a, b, opts.bias] : [a, b];
  return a.graph.apply(matmulOp, inputs, {
    transA: !!opts.transA,
    transB: !!opts.transB,
    transOut: false,
    role: "fwd",
  });
}

/** PyTorch's Linear: x [..., in] · wᵀ (+ bias), with w [out, in] (f32, or f16/bf16 when frozen). */
export function linear(x: Node, w: Node, bias?: Node): Node {
  return matmul(x, w, { transB: true, bias });
}
