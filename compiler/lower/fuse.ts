// Epilogue fusion: which matmuls compute their consumer in the same kernel.
//
// A matmul whose value goes straight into an activation (gelu/silu/relu) or into a same-shape add
// (a residual connection) can apply that consumer to each accumulator before storing it
// (kernels/epilogue.ts): one dispatch instead of two, and the intermediate is neither re-read nor —
// for a residual add, whose backward needs no saved value — written at all. The graph is unchanged
// (autodiff, the CPU references and the gradient rules never see fusion); only the lowering differs,
// so fused and unfused plans compute the same numbers.
//
// Rules, checked here so the lowering can trust them:
// - the producer is a forward-layout matmul (no transOut; the output index is row-major);
// - an activation consumer reads the matmul as its only input; the matmul's value is still written
//   (`keepPre`) when anything else reads it — typically the activation's backward;
// - an activation-backward consumer (gelu_bwd(x, dy) …) reads the matmul as dy, and its x is
//   computed before the matmul runs (it always is: x comes from the forward pass);
// - an add consumer has two inputs of the output's exact shape (no broadcasting), the other input
//   (the residual) is computed before the matmul runs (or is persistent), and is a different tensor;
// - each matmul fuses at most one consumer, each consumer at most one matmul (the first in order).
//
// Prologue fusion (kernels/prologue.ts): a layernorm/rmsnorm N whose value is read only by matmuls,
// each taking it as A (input 0, not transposed, forward-layout output), and that is not a plan output,
// gets no storage: each of those matmuls binds N's input x and N's statistics (aux outputs) and
// normalises A as it loads it, and N only computes the statistics (`statsOnly`). Typical: the q/k/v
// and gate/up projections of a frozen LLM layer, whose backward needs only dx (matmul_bwd_a reads the
// weight and dy; the norm's backward reads x and the statistics). A trainable weight's gradient
// reads N in the B slot, so those norms (ViT) stay unfused; so do norms read by anything else, by a
// reshape, or whose matmuls would bind more storage buffers than the device allows.

import type { Node } from "../core/ir.ts";
import type { Epilogue } from "../../kernels/epilogue.ts";
import { normPrologue, type Prologue, prologueBuffers } from "../../kernels/prologue.ts";
import type { LowerCtx } from "../../kernels/kernel.ts";
import type { Activation } from "../ops/activation.ts";
import { aliasRoot } from "./live.ts";

const ACTS = new Set<string>(["gelu", "silu", "relu"]);

export interface FusionPlan {
  /** Producer matmul → what it computes in its epilogue. */
  epilogues: Map<Node, Epilogue>;
  /** Consumers computed by their producer's kernel (they get no dispatch of their own). */
  absorbed: Set<Node>;
  /** Matmul → the norm it computes on the fly from its A operand's input. */
  prologues: Map<Node, Prologue>;
  /** Norms whose output nobody stores: their kernel writes only the statistics. */
  statsOnly: Set<Node>;
}

/** A plan with no fusion (LowerOptions.fuse false). */
export function noFusion(): FusionPlan {
  return { epilogues: new Map(), absorbed: new Set(), prologues: new Map(), statsOnly: new Set() };
}

/**
 * Finds fusable (matmul, consumer) pairs and (norm, matmuls) prologues among `ops` (execution order).
 * `outputs` are the plan's requested values (a matmul that is one keeps its own value; a norm that is
 * one is stored). `ctx` bounds the storage buffers a fused matmul may bind.
 */
export function planFusion(
  ops: readonly Node[],
  outputs: readonly Node[],
  ctx?: Pick<LowerCtx, "maxStorageBuffers">,
): FusionPlan {
  const pos = new Map<Node, number>(ops.map((n, i) => [n, i]));
  const readers = new Map<Node, Node[]>();
  for (const n of ops) {
    for (const x of n.inputs) {
      const l = readers.get(x) ?? [];
      if (!l.includes(n)) l.push(n);
      readers.set(x, l);
    }
  }
  const isOutput = new Set(outputs);
  const epilogues = new Map<Node, Epilogue>();
  const absorbed = new Set<Node>();
  for (const p of ops) {
    if (p.op !== "matmul" || p.attrs.transOut || p.dtype !== "f32") continue;
    const rs = readers.get(p) ?? [];
    for (const c of rs) {
      if (absorbed.has(c)) continue;
      let epi: Epilogue | undefined;
      const others = rs.length > 1 || isOutput.has(p);
      if (ACTS.has(c.op) && c.inputs.length === 1) {
        epi = { out: c, act: c.op as Activation, keepPre: others };
      } else if (c.op.endsWith("_bwd") && ACTS.has(c.op.slice(0, -4)) && c.inputs[1] === p) {
        // the matmul computes the activation's incoming gradient; x is its saved input
        const x = c.inputs[0];
        const ready = x.kind !== "op" || pos.get(x)! < pos.get(p)!;
        if (x !== p && ready) {
          epi = { out: c, actBwd: c.op.slice(0, -4) as Activation, residual: x, keepPre: others };
        }
      } else if (c.op === "add" && c.inputs.length === 2) {
        const [a, b] = c.inputs;
        const r = a === p ? b : a;
        const same = (x: Node) => x.shape.join() === c.shape.join();
        const ready = r.kind !== "op" || pos.get(r)! < pos.get(p)!;
        if (r !== p && same(a) && same(b) && ready && r.dtype === "f32") {
          epi = { out: c, residual: r, keepPre: others };
        }
      }
      if (epi) {
        epilogues.set(p, epi);
        absorbed.add(c);
        break;
      }
    }
  }
  const { prologues, statsOnly } = planPrologues(
    ops,
    readers,
    isOutput,
    epilogues,
    ctx?.maxStorageBuffers ?? 8,
  );
  return { epilogues, absorbed, prologues, statsOnly };
}

function planPrologues(
  ops: readonly Node[],
  readers: Map<Node, Node[]>,
  isOutput: Set<Node>,
  epilogues: Map<Node, Epilogue>,
  maxBuffers: number,
): { prologues: Map<Node, Prologue>; statsOnly: Set<Node> } {
  const prologues = new Map<Node, Prologue>();
  const statsOnly = new Set<Node>();
  for (const n of ops) {
    if ((n.op !== "layernorm" && n.op !== "rmsnorm") || isOutput.has(n) || n.dtype !== "f32") continue;
    // aux nodes read the statistics, not the normalised value
    const rs = (readers.get(n) ?? []).filter((r) => r.op !== "aux");
    const pro = normPrologue(n);
    const ok = rs.length > 0 && rs.every((m) => {
      if (m.op !== "matmul" || m.inputs[0] !== n || m.inputs.indexOf(n, 1) >= 0) return false;
      if (m.attrs.transA || m.attrs.transOut) return false;
      // a, b, out, then the bias, the epilogue's extra buffers and the prologue's
      const epi = epilogues.get(m);
      const buffers = 3 + (m.inputs[2] ? 1 : 0) + (epi?.keepPre ? 1 : 0) + (epi?.residual ? 1 : 0) +
        prologueBuffers(pro);
      if (buffers > maxBuffers) return false;
      // a dispatch may bind streamed weights of one group only (dispatch.ts)
      const groups = new Set([m.inputs[1], pro.weight, pro.bias].map((t) => t && aliasRoot(t).streamGroup));
      groups.delete(undefined);
      return groups.size <= 1;
    });
    if (!ok) continue;
    statsOnly.add(n);
    for (const m of rs) prologues.set(m, pro);
  }
  return { prologues, statsOnly };
}
