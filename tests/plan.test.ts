// The lowering passes (compiler/lower/) checked one seam at a time, on plans alone (no device):
// which nodes run, which pooled buffer each value gets and when it is handed on, in-place takeover,
// arena offsets and streaming phases. Each expectation is worked out by hand from the rule.

import "../mod.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { grad } from "../compiler/grad.ts";
import { relu } from "../compiler/ops/activation.ts";
import { add, mul, scale } from "../compiler/ops/elementwise.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { lower, type Plan, spanLayout } from "../compiler/lower/plan.ts";
import { schedule } from "../compiler/lower/live.ts";
import { assignPhases } from "../compiler/lower/stream.ts";
import type { PlannedDispatch, StreamPlan } from "../compiler/lower/types.ts";
import { AdamW } from "../nn/optim.ts";
import { assert, test } from "./testing.ts";

const pooled = (plan: Plan) => plan.buffers.filter((b) => !b.persistent).length;

test("plan: only what the outputs need runs, in creation order", () => {
  const g = new Graph();
  const x = g.param("x", [4, 8]);
  const a = scale(x, 2);
  const dead = scale(x, 3);
  const b = relu(a);
  const { order, ops } = schedule([b], []);
  assert.deepEqual(order, [x, a, b]);
  assert.deepEqual(ops, [a, b]);
  assert.ok(!lower([b]).order.includes(dead));
});

test("plan: a value's pooled buffer goes to the next value once its last reader ran", () => {
  // a → b → c → d, each read once by the next: a dies at b, so c takes a's buffer, d takes b's
  const g = new Graph();
  const x = g.param("x", [4, 8]);
  const a = scale(x, 2), b = scale(a, 3), c = scale(b, 4), d = scale(c, 5);
  const plan = lower([d], [], { inPlace: false });
  const s = (n: Node) => plan.storage.get(n)!;
  assert.ok(s(a) !== s(b), "b is computed while a is read");
  assert.equal(s(c), s(a));
  assert.equal(s(d), s(b));
  assert.equal(pooled(plan), 2);
  assert.ok(plan.buffers[s(x)].persistent && plan.buffers[s(x)].owner === x);

  // a is read again by the last op, so nothing may take its buffer: one more buffer
  const g2 = new Graph();
  const x2 = g2.param("x", [4, 8]);
  const a2 = scale(x2, 2), b2 = scale(a2, 3), c2 = scale(b2, 4), d2 = add(c2, a2);
  const plan2 = lower([d2], [], { inPlace: false });
  const s2 = (n: Node) => plan2.storage.get(n)!;
  assert.equal(new Set([s2(a2), s2(b2), s2(c2)]).size, 3);
  assert.equal(s2(d2), s2(b2), "b died at c");
  assert.equal(pooled(plan2), 3);
});

test("plan: an elementwise op takes over the buffer of an input that dies at it, never one still read", () => {
  const g = new Graph();
  const x = g.param("x", [4, 8]);
  const a = scale(x, 2), b = relu(a), c = scale(b, 3);
  const plan = lower([c]);
  const s = (n: Node) => plan.storage.get(n)!;
  // a dies at b and b at c: one pooled buffer for the chain; x (a param) is never overwritten
  assert.equal(s(b), s(a));
  assert.equal(s(c), s(a));
  assert.ok(s(a) !== s(x));
  assert.equal(pooled(plan), 1);

  // a is still read after b (by d), and d's operands are the same tensor: neither may overwrite it
  const g2 = new Graph();
  const x2 = g2.param("x", [4, 8]);
  const a2 = scale(x2, 2), b2 = relu(a2), d2 = add(mul(a2, a2), b2);
  const plan2 = lower([d2]);
  const s2 = (n: Node) => plan2.storage.get(n)!;
  assert.ok(s2(b2) !== s2(a2), "relu overwrote a value read later");
  assert.ok(s2(d2.inputs[0]) !== s2(a2), "mul(a, a) overwrote its doubly-read operand");

  // a plan output is never overwritten, even when its last reader is elementwise (it lives to the end)
  const plan3 = lower([a2, b2]);
  assert.ok(plan3.storage.get(b2) !== plan3.storage.get(a2));
});

test("plan: arena members lie back to back at 256-byte-aligned offsets", () => {
  const g = new Graph();
  // 12, 400 and 256 bytes: offsets 0, 256 (12 rounded up), 768 (256 + 400 rounded up); ends at 1024
  const ps = [g.param("a", [3]), g.param("b", [100]), g.param("c", [64])];
  assert.deepEqual(spanLayout(ps), { offsets: [0, 256, 768], bytes: 1024 });
  assert.deepEqual(spanLayout([ps[1], ps[0]]), { offsets: [0, 512], bytes: 524 });

  const loss = ps.map((p) => sumAll(mul(p, p))).reduce((s, t) => add(s, t));
  const opt = new AdamW(g, grad(loss));
  const plan = lower([loss], opt.effects);
  const arenas = plan.buffers.filter((b) => b.arena);
  assert.equal(arenas.length, 4, "params, gradients, first and second moments");
  for (const arena of arenas) {
    assert.equal(arena.bytes, 1024);
    assert.deepEqual(arena.arena!.map((n) => n.size), [3, 100, 64]);
    assert.deepEqual(arena.arena!.map((n) => plan.offsets.get(n)), [0, 256, 768]);
    for (const n of arena.arena!) assert.equal(plan.storage.get(n), arena.id);
  }
  assert.deepEqual(arenas.find((a) => a.arena![0] === ps[0])!.arena, ps);
});

test("plan: streaming phases change at each new group and alternate the two slots", () => {
  // dispatches binding groups: -, 0, 0, -, 1, 1, 0 → phases 0 [0,4), 1 [4,6), 0 [6,7)
  const groups = [undefined, 0, 0, undefined, 1, 1, 0];
  const dispatches = groups.map((grp, i) =>
    ({
      label: `d${i}`,
      bindings: [{ name: "w", buffer: grp === undefined ? 7 : -1, bytes: 4, offset: 0, writable: false }],
    }) as unknown as PlannedDispatch
  );
  const stream = { slots: [10, 11], phases: [] } as unknown as StreamPlan;
  assignPhases(stream, dispatches, groups);
  assert.deepEqual(stream.phases, [
    { group: 0, start: 0, end: 4 },
    { group: 1, start: 4, end: 6 },
    { group: 0, start: 6, end: 7 },
  ]);
  assert.deepEqual(dispatches.map((d) => d.bindings[0].buffer), [7, 10, 10, 7, 11, 11, 10]);
});
