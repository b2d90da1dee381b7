// Autodiff is pruned to what trainable params need, proven on the lowered plan: the kernels of a
// training plan are counted and named for the same model with nothing, the MLP, or the whole block
// frozen. Frozen weights lose exactly their weight-gradient kernels; gradients still flow through
// frozen layers to the trainable embedding below; the data input never gets a gradient.

import "../mod.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { grad, needsGradSet } from "../compiler/grad.ts";
import { lower, type Plan } from "../compiler/lower/plan.ts";
import { crossEntropy } from "../compiler/ops/loss.ts";
import { linear } from "../compiler/ops/matmul.ts";
import { mean } from "../compiler/ops/reduce.ts";
import { sequenceClassifier, transformerBlock } from "../nn/block.ts";
import { assert, test } from "./testing.ts";

const CFG = { batch: 2, seq: 5, inDim: 6, dim: 16, heads: 2, classes: 3 };

function histogram(plan: Plan): Record<string, number> {
  const h: Record<string, number> = {};
  for (const d of plan.dispatches) h[d.label] = (h[d.label] ?? 0) + 1;
  return h;
}

/** Labels (with multiplicity) in a but not in b; fails if b has any kernel a lacks. */
function minus(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = (a[k] ?? 0) - (b[k] ?? 0);
    assert.ok(d >= 0, `the more frozen plan has an extra ${k}`);
    if (d) out[k] = d;
  }
  return out;
}

function trainingPlan(frozen: "none" | "mlp" | "all") {
  const g = new Graph();
  const { x, logits } = sequenceClassifier(g, { ...CFG, frozen });
  const loss = crossEntropy(logits, g.input("labels", [CFG.batch], "i32"));
  const grads = grad(loss);
  // unfused, so each gradient node is its own kernel and the counts below are the autodiff's
  // (epilogue fusion would fold gelu_bwd into the matmul that computes its dy; tests/fuse.test.ts)
  return { g, x, grads, plan: lower([loss, ...grads.values()], [], { fuse: false }) };
}

test("pruning: frozen sub-layers lose exactly their weight-gradient kernels", () => {
  const none = trainingPlan("none"), mlp = trainingPlan("mlp"), all = trainingPlan("all");
  const counts = [none, mlp, all].map((p) => p.plan.dispatches.length);
  console.log(
    `training-plan kernels: nothing frozen ${counts[0]}, MLP frozen ${counts[1]}, block frozen ${counts[2]}`,
  );

  // MLP frozen: fc1/fc2 weight grads (2 matmul_bwd_b), fc1/fc2/norm2 bias grads (3 sums) and the
  // norm2 weight grad (1 norm_wgrad) disappear; nothing else changes.
  assert.deepEqual(minus(histogram(none.plan), histogram(mlp.plan)), {
    matmul_bwd_b: 2,
    sum_fwd: 3,
    norm_wgrad: 1,
  });
  // the whole block frozen: also qkv/proj weights, their biases and norm1's
  assert.deepEqual(minus(histogram(mlp.plan), histogram(all.plan)), {
    matmul_bwd_b: 2,
    sum_fwd: 3,
    norm_wgrad: 1,
  });

  for (const { g, grads } of [mlp, all]) {
    for (const p of g.params) assert.equal(grads.has(p), p.trainable, `${p.name}`);
  }
  // gradients flow through the frozen block to the embedding below it: every backward kernel of
  // the block (attention, layer norms, GELU, the dX of each linear) is still there
  const h = histogram(all.plan);
  assert.ok(all.grads.has(all.g.byName("embed.weight")));
  for (const k of ["attention_bwd_q", "attention_bwd_kv", "layernorm_bwd", "gelu_bwd"]) {
    assert.ok(h[k] >= 1, k);
  }
  // dX exists for head, fc2, fc1, proj, qkv — but not for the embedding, whose input is data
  assert.equal(h.matmul_bwd_a, 5);
  for (const { x, plan } of [none, mlp, all]) {
    assert.ok(!needsGradSet(x.graph.nodes).has(x));
    for (const d of plan.dispatches) {
      if (d.label === "matmul_bwd_a") {
        assert.notDeepEqual([...d.node.shape], [...x.shape], "a gradient for the data input");
      }
    }
  }
});

test("pruning: nothing trainable below the head means no backward through the block at all", () => {
  const g = new Graph();
  const x = g.input("x", [CFG.batch, CFG.seq, CFG.dim]);
  const y = transformerBlock(g, x, "blocks.0", { dim: CFG.dim, heads: CFG.heads, frozen: "all" });
  const w = g.param("head.weight", [CFG.classes, CFG.dim]);
  const loss = crossEntropy(linear(mean(y, 1), w), g.input("labels", [CFG.batch], "i32"));
  const grads = grad(loss);
  const plan = lower([loss, ...grads.values()]);
  const labels = plan.dispatches.map((d) => d.label);
  // forward, the loss, its gradient, and the head's weight gradient: nothing else
  const backward = labels.slice(labels.indexOf("cross_entropy_bwd"));
  assert.deepEqual(backward, ["cross_entropy_bwd", "matmul_bwd_b"]);
  assert.deepEqual([...grads.keys()].map((n: Node) => n.name), ["head.weight"]);
});
