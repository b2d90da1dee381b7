// The engine's first example: train a small pre-LayerNorm transformer block whose MLP is a FROZEN
// sub-layer stored in bf16, inside a sequence classifier, on a synthetic task with a learnable rule.
// Prints the adapter, the compiled plan (kernels, peak bytes), a progress bar, the falling loss, and
// held-out accuracy; writes JSONL metrics to --out.
//
//   deno task train-block           (same as: deno run -A examples/train_block.ts)
//   deno run -A examples/train_block.ts --steps 400 --frozen none --out out/block

import {
  compile,
  data,
  type Executable,
  getGpu,
  Graph,
  nn,
  type Node,
  ops,
  train as training,
} from "../mod.ts";

const { batchOf, syntheticTask } = data;
const { cosineLr, Metrics, num, parseFlags, Progress, Trainer } = training;
type ClassifierConfig = nn.ClassifierConfig;

const flags = parseFlags("usage: deno run -A examples/train_block.ts [flags]", {
  steps: { type: "string", default: "300", help: "training steps" },
  batch: { type: "string", default: "32", help: "sequences per step" },
  lr: { type: "string", default: "3e-3", help: "peak learning rate (cosine schedule)" },
  warmup: { type: "string", default: "20", help: "linear warmup steps" },
  frozen: { type: "string", default: "mlp", help: "frozen sub-layer: none | attn | mlp | all" },
  "log-every": { type: "string", default: "25", help: "read the loss back every N steps" },
  seed: { type: "string", default: "1", help: "data seed" },
  out: { type: "string", default: "out/train_block", help: "directory for metrics.jsonl" },
});
const frozen = flags.frozen as ClassifierConfig["frozen"];
if (!["none", "attn", "mlp", "all"].includes(frozen!)) {
  console.error(`--frozen: expected none|attn|mlp|all, got '${flags.frozen}'`);
  Deno.exit(2);
}
const steps = num("steps", flags.steps), batch = num("batch", flags.batch), lr = num("lr", flags.lr);
const warmup = num("warmup", flags.warmup), logEvery = num("log-every", flags["log-every"]);
const cfg: ClassifierConfig = {
  batch,
  seq: 8,
  inDim: 8,
  dim: 32,
  heads: 4,
  classes: 4,
  frozen,
  frozenDtype: "bf16",
};

const gpu = await getGpu();
const build = (b: number) => {
  const g = new Graph();
  const { x, logits } = nn.sequenceClassifier(g, { ...cfg, batch: b });
  const labels = g.input("labels", [b], "i32");
  return { g, x, logits, labels, loss: ops.crossEntropy(logits, labels, { labelSmoothing: 0.1 }) };
};
const m = build(batch);
const trainer = await Trainer.create(m.loss, { lr, weightDecay: 0.05, maxGradNorm: 1.0 });
const frozenCount = m.g.params.filter((p) => !p.trainable).reduce((s, p) => s + p.size, 0);
console.log(
  `model: ${trainer.paramCount} trainable params, ${frozenCount} frozen (${frozen}, bf16); ` +
    `plan: ${trainer.exe.kernelCount} kernels/step, peak ${
      (trainer.exe.plan.peakBytes / 1024).toFixed(1)
    } KiB`,
);

const per = cfg.seq * cfg.inDim;
const train = syntheticTask({
  samples: 4096,
  seq: cfg.seq,
  inDim: cfg.inDim,
  classes: cfg.classes,
  seed: num("seed", flags.seed),
});
await Deno.mkdir(flags.out, { recursive: true });
const metrics = new Metrics(`${flags.out}/metrics.jsonl`);
const bar = new Progress(steps, "seq");
const logged: number[] = [];
const t0 = performance.now();
for (let s = 0; s < steps; s++) {
  const b = batchOf(train, s, batch, per);
  const read = (s + 1) % logEvery === 0 || s === 0 || s === steps - 1;
  const lrNow = cosineLr(s, steps, lr, warmup);
  const loss = await trainer.step(
    new Map<Node, Float32Array | Int32Array>([[m.x, b.x], [m.labels, b.labels]]),
    lrNow,
    read,
  );
  if (loss !== undefined) {
    logged.push(loss);
    metrics.log({ step: s + 1, loss, lr: lrNow, seconds: (performance.now() - t0) / 1000 });
    bar.update(s + 1, { loss, lr: lrNow }, (s + 1) * batch, true);
  } else bar.update(s + 1, { loss: logged.at(-1) ?? NaN, lr: lrNow }, (s + 1) * batch);
}
const secs = (performance.now() - t0) / 1000;

// held-out accuracy: a forward-only plan of the same model, weights copied by name
const evalB = 256;
const e = build(evalB);
const evalExe = await compile([e.logits]);
await copyParams(trainer.exe, m.g, evalExe, e.g);
const test = syntheticTask({
  samples: evalB,
  seq: cfg.seq,
  inDim: cfg.inDim,
  classes: cfg.classes,
  seed: 999,
});
evalExe.write(e.x, test.x);
const [logits] = await evalExe.run([e.logits]);
let correct = 0;
for (let i = 0; i < evalB; i++) {
  const row = logits.subarray(i * cfg.classes, (i + 1) * cfg.classes);
  if (row.indexOf(Math.max(...row)) === test.labels[i]) correct++;
}
const acc = correct / evalB;
metrics.log({ final: true, held_out_accuracy: acc, seconds: secs, adapter: gpu.adapterName });
metrics.close();
console.log(`loss: ${logged.map((l) => l.toFixed(3)).join(" → ")}`);
console.log(
  `done: ${steps} steps in ${secs.toFixed(1)} s (${
    ((steps * batch) / secs).toFixed(0)
  } seq/s) on ${gpu.adapterName}; ` +
    `held-out accuracy ${(100 * acc).toFixed(1)}% (chance ${
      (100 / cfg.classes).toFixed(0)
    }%); metrics in ${flags.out}/metrics.jsonl`,
);

/** Copies every param by name from one compiled graph to another (e.g. training → eval plan). */
async function copyParams(from: Executable, gFrom: Graph, to: Executable, gTo: Graph): Promise<void> {
  for (const p of gTo.params) {
    const src = gFrom.byName(p.name!);
    to.write(p, await from.read(src));
  }
}
