// Pass 1: what runs, in which order. Only nodes the requested outputs and side effects depend on are
// kept (dead code is dropped, which is also where a pruned backward graph loses what nothing needs),
// in creation order, which is a topological order. In-place updates (OpDef.writes) are checked here:
// they must come after every reader of what they overwrite.

import { type Node, opDef, writesOf } from "../core/ir.ts";

/** The live nodes in execution order, and the ops among them (aliases included; they dispatch nothing). */
export interface Schedule {
  order: Node[];
  ops: Node[];
}

/**
 * Keeps the nodes `outputs` and `effects` depend on, sorted into execution order, and checks that
 * every in-place update in it comes after the readers of its target.
 */
export function schedule(outputs: readonly Node[], effects: readonly Node[]): Schedule {
  const live = new Set<Node>();
  const stack = [...outputs, ...effects];
  while (stack.length) {
    const n = stack.pop()!;
    if (live.has(n)) continue;
    live.add(n);
    for (const x of n.inputs) stack.push(x);
  }
  const order = [...live].sort((a, b) => a.id - b.id);
  const ops = order.filter((n) => n.kind === "op");
  checkEffectOrder(ops);
  return { order, ops };
}

/** The node whose storage an alias (reshape, possibly chained) shares. */
export function aliasRoot(n: Node): Node {
  while (n.kind === "op" && opDef(n).alias) n = n.inputs[0];
  return n;
}

/**
 * In-place updates must come after every reader of the tensors they overwrite (readers through
 * reshapes included; ops marked OpDef.readsUpdated excepted), and each tensor may be updated in place
 * only once per step.
 */
function checkEffectOrder(ops: Node[]): void {
  const writer = new Map<Node, Node>();
  for (let i = 0; i < ops.length; i++) {
    const writes = writesOf(ops[i]);
    if (!writes) continue;
    for (const w of writes) {
      const target = aliasRoot(ops[i].inputs[w]);
      if (!target.persistent) {
        throw new Error(`lower: ${ops[i]} writes in place to ${target}, which is not a param/state tensor`);
      }
      const prev = writer.get(target);
      if (prev) {
        throw new Error(`lower: ${target} is updated in place twice in one step (${prev} and ${ops[i]})`);
      }
      writer.set(target, ops[i]);
      for (let j = i + 1; j < ops.length; j++) {
        if (!opDef(ops[j]).readsUpdated && ops[j].inputs.some((x) => aliasRoot(x) === target)) {
          throw new Error(`lower: ${ops[j]} reads ${target} after ${ops[i]} updated it in place`);
        }
      }
    }
  }
}
