// Reverse-mode autodiff over the IR, restricted to what trainable parameters need.
//
// A node "needs grad" when it is a trainable param or an op with an input that needs grad. Only those
// nodes receive gradients, and a rule is only asked for the inputs that need one: a frozen weight's
// gradient (and the data input's) is never built, yet gradients still flow *through* frozen ops to
// the trainable ops below them, because those ops' outputs need grad. What remains unused (e.g. a
// frozen layer's weight-gradient) is never created; lower() drops anything else dead.

import { type Graph, type Node, opDef, ShapeError } from "./core/ir.ts";
import { add, fill } from "./ops/elementwise.ts";

/** The nodes among `nodes` that need a gradient: trainable params and differentiable ops of them. */
export function needsGradSet(nodes: readonly Node[]): Set<Node> {
  const s = new Set<Node>();
  for (const n of nodes) {
    if (n.kind === "param" && n.trainable) s.add(n);
    else if (n.kind === "op" && opDef(n).grad !== "none" && n.inputs.some((x) => s.has(x))) {
      s.add(n);
    }
  }
  return s;
}

/**
 * Gradients of a scalar `loss` w.r.t. `wrt` (default: every trainable param the loss depends on).
 * Returns a map param → gradient node (same shape). Params the loss does not depend on are absent.
 */
export function grad(loss: Node, wrt?: readonly Node[]): Map<Node, Node> {
  const g: Graph = loss.graph;
  if (loss.size !== 1 || loss.dtype !== "f32") {
    throw new ShapeError(`grad: loss must be a scalar f32, got ${loss}`);
  }
  const targets = wrt ?? g.trainableParams;
  for (const p of targets) {
    if (p.kind !== "param" || !p.trainable) throw new ShapeError(`grad: ${p} is not a trainable param`);
  }
  const upto = g.nodes.slice(0, loss.id + 1);
  const needs = needsGradSet(upto);
  // only nodes on a path from a target to the loss
  const onPath = new Set<Node>();
  const reach = new Set<Node>([loss]);
  for (let i = loss.id; i >= 0; i--) {
    const n = upto[i];
    if (!reach.has(n)) continue;
    if (needs.has(n)) onPath.add(n);
    else if (n.kind === "op" && n.dtype === "f32" && n.inputs.some((x) => needs.has(x))) {
      // a float value computed from trainable params by an op without a gradient rule: its
      // contribution would be silently dropped, so refuse
      const what = n.op === "aux" ? `extra output ${n.attrs.index} of '${n.inputs[0].op}'` : `op '${n.op}'`;
      throw new ShapeError(
        `grad: the loss depends on trainable params through ${what} (${n}), which has no gradient rule`,
      );
    }
    for (const x of n.inputs) reach.add(x);
  }
  const pending = new Map<Node, Node[]>();
  if (!needs.has(loss)) return new Map();
  pending.set(loss, [fill(g, loss.shape, 1)]);
  const result = new Map<Node, Node>();
  for (let i = loss.id; i >= 0; i--) {
    const n = upto[i];
    const parts = pending.get(n);
    if (!parts || !onPath.has(n)) continue;
    pending.delete(n);
    const dy = parts.reduce((a, b) => add(a, b));
    if (n.kind === "param") {
      result.set(n, dy);
      continue;
    }
    const rule = opDef(n).grad;
    if (rule === "none") throw new Error(`grad: '${n.op}' is not differentiable`); // needsGradSet excludes it
    const mask = n.inputs.map((x) => onPath.has(x));
    const gs = rule(n, dy, mask);
    n.inputs.forEach((x, k) => {
      if (!mask[k]) return;
      const gx = gs[k];
      if (!gx) throw new Error(`grad: rule for '${n.op}' returned no gradient for input ${k} (${x})`);
      if (gx.shape.join() !== x.shape.join()) {
        throw new ShapeError(`grad: rule for '${n.op}' gave gradient ${gx} for input ${x} of another shape`);
      }
      const l = pending.get(x) ?? [];
      l.push(gx);
      pending.set(x, l);
    });
  }
  const out = new Map<Node, Node>();
  for (const p of targets) {
    const r = result.get(p);
    if (r) out.set(p, r);
  }
  return out;
}
