// End to end: a small pre-LN transformer block (LayerNorm, attention, MLP) whose MLP is a *frozen*
// bf16 sub-layer, inside a sequence classifier, trained with AdamW. One full step (forward, pruned
// backward, update) is compared with the f64 CPU interpretation of the same graph; then it trains for
// a few dozen steps and the loss must fall while the frozen weights stay bit-identical.

import "../mod.ts";
import "./ref/index.ts";
import { Graph, type Node } from "../compiler/ir.ts";
import { grad } from "../compiler/grad.ts";
import { AdamW } from "../compiler/optim.ts";
import { compile } from "../compiler/runtime.ts";
import { crossEntropy } from "../compiler/ops/loss.ts";
import { type ClassifierConfig, sequenceClassifier } from "../models/block.ts";
import { batchOf, syntheticTask } from "../models/synthetic.ts";
import { Trainer } from "../train/trainer.ts";
import { interpret } from "./ref/tensor.ts";
import { assertClose } from "./harness.ts";
import { assert, test } from "./testing.ts";

const CFG: ClassifierConfig = {
  batch: 16,
  seq: 6,
  inDim: 8,
  dim: 16,
  heads: 2,
  classes: 3,
  frozen: "mlp",
  frozenDtype: "bf16",
};

function build(cfg = CFG) {
  const g = new Graph();
  const { x, logits } = sequenceClassifier(g, cfg);
  const labels = g.input("labels", [cfg.batch], "i32");
  const loss = crossEntropy(logits, labels, { labelSmoothing: 0.1 });
  return { g, x, labels, loss };
}

test("e2e: one training step with a frozen bf16 MLP matches the f64 CPU interpretation", async () => {
  const { g, x, labels, loss } = build();
  const grads = grad(loss);
  const frozen = g.params.filter((p) => !p.trainable);
  assert.ok(frozen.some((p) => p.dtype === "bf16"));
  for (const p of frozen) assert.ok(!grads.has(p), `${p} must get no gradient`);
  const opt = new AdamW(g, grads, { lr: 1e-2, weightDecay: 0.05, maxGradNorm: 1.0 });
  const gradNodes = [...grads.values()];
  const exe = await compile([loss, ...gradNodes], { effects: opt.effects });
  const data = syntheticTask({ samples: 16, seq: CFG.seq, inDim: CFG.inDim, classes: CFG.classes, seed: 7 });
  exe.write(x, data.x);
  exe.write(labels, data.labels);
  opt.prepareStep(exe, 1e-2);
  const [lossGpu, ...gradsGpu] = await exe.run([loss, ...gradNodes]);

  const feeds = new Map<Node, ArrayLike<number>>([[x, data.x], [labels, data.labels], [
    opt.hyper,
    opt.hyperValues(1e-2),
  ]]);
  const env = interpret([loss, ...gradNodes], feeds, opt.effects);
  assertClose("loss", lossGpu, env.get(loss)!.data, 1e-5);
  let i = 0;
  for (const [p, gn] of grads) assertClose(`grad of ${p.name}`, gradsGpu[i++], env.get(gn)!.data, 2e-4);
  // the update: env now holds the params after the CPU AdamW step
  for (const p of grads.keys()) {
    assertClose(`${p.name} after one AdamW step`, await exe.read(p), env.get(p)!.data, 1e-5);
  }
  exe.destroy();
});

test("e2e: the block trains (loss falls) and frozen weights never change", async () => {
  const { g, x, labels, loss } = build();
  const trainer = await Trainer.create(loss, { lr: 1e-2, weightDecay: 0.01 });
  const frozen = g.params.filter((p) => !p.trainable);
  const before = await Promise.all(frozen.map((p) => trainer.exe.read(p)));
  const data = syntheticTask({ samples: 64, seq: CFG.seq, inDim: CFG.inDim, classes: CFG.classes, seed: 11 });
  const per = CFG.seq * CFG.inDim;
  const losses: number[] = [];
  for (let s = 0; s < 40; s++) {
    const b = batchOf(data, s, CFG.batch, per);
    const l = await trainer.step(
      new Map<Node, Float32Array | Int32Array>([[x, b.x], [labels, b.labels]]),
      1e-2,
      true,
    );
    losses.push(l!);
  }
  const first = losses.slice(0, 4).reduce((a, b) => a + b) / 4;
  const last = losses.slice(-4).reduce((a, b) => a + b) / 4;
  assert.ok(losses.every(Number.isFinite), `non-finite loss: ${losses}`);
  assert.ok(
    last < 0.6 * first,
    `loss did not fall enough: first ${first.toFixed(4)}, last ${last.toFixed(4)}`,
  );
  const after = await Promise.all(frozen.map((p) => trainer.exe.read(p)));
  frozen.forEach((p, k) => assert.deepEqual(after[k], before[k], `${p.name} changed`));
  trainer.exe.destroy();
});
