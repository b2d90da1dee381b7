// `deno task pretrain` (train/pretrain.ts): a run stopped and resumed gives exactly the losses of the
// same run straight through (weights, AdamW state, data generator and step restored); the corpus is
// tokenized once into a cache next to it; the exported model directory is a complete HF checkpoint.

import "../mod.ts";
import { type PretrainOptions, runPretrain, tokenizedCorpus } from "../train/pretrain.ts";
import { readMetrics } from "../train/progress.ts";
import { openLlm } from "../io/llm.ts";
import { assert, test } from "./testing.ts";

const ROOT = new URL("../", import.meta.url).pathname;

test("pretrain: stop + resume reproduces the uninterrupted run's losses exactly", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "pretrain-" });
  // a slice of the committed sample corpus (whole documents), so the test tokenizes little
  const docs = (await Deno.readTextFile(`${ROOT}data/corpus/sample.txt`)).split("\n\n").slice(0, 120);
  const corpus = `${tmp}/corpus.txt`;
  await Deno.writeTextFile(corpus, docs.join("\n\n") + "\n");
  const base: PretrainOptions = {
    corpus,
    tokenizer: `${ROOT}data/corpus/reference/tokenizer-1k.json`,
    out: `${tmp}/straight`,
    hidden: 32,
    layers: 1,
    heads: 2,
    kvHeads: 0,
    intermediate: 0,
    context: 16,
    batch: 2,
    steps: 6,
    lr: 1e-2,
    warmup: 2,
    minLr: 1e-3,
    weightDecay: 0.1,
    clip: 1,
    evalEvery: 0,
    evalWindows: 2,
    saveEvery: 0,
    logEvery: 1,
    seed: 5,
    dtype: "bf16",
  };
  const straight = await runPretrain(base);
  assert.ok(straight.finished);
  assert.equal(straight.losses.length, 6);
  assert.ok(straight.losses.every(([, l]) => Number.isFinite(l) && l > 1));

  const cache = [...Deno.readDirSync(tmp)].map((e) => e.name).filter((n) => /\.(u16|u32)$/.test(n)).sort();
  assert.deepEqual(cache.map((n) => n.replace(/\.[0-9a-f]{8}\./, ".H.")), [
    "corpus.txt.train.H.u16",
    "corpus.txt.valid.H.u16",
  ]);
  const before = Deno.statSync(`${tmp}/${cache[0]}`).mtime?.getTime();
  const again = await tokenizedCorpus(corpus, base.tokenizer);
  assert.equal(
    Deno.statSync(`${tmp}/${cache[0]}`).mtime?.getTime(),
    before,
    "the cache is read, not rewritten",
  );
  assert.equal(again.eot, 1023);
  assert.equal(
    again.train.filter((t) => t === 1023).length + again.valid.filter((t) => t === 1023).length,
    120,
  );

  const first = await runPretrain({ ...base, out: `${tmp}/split` }, { stopAfter: 3 });
  assert.ok(!first.finished);
  assert.equal(first.step, 3);
  const second = await runPretrain({ ...base, out: "ignored", lr: 99 }, { resume: `${tmp}/split` });
  assert.ok(second.finished);
  assert.deepEqual([...first.losses, ...second.losses], straight.losses);
  assert.equal(second.valLoss, straight.valLoss);
  const recs = await readMetrics(`${tmp}/split/metrics.jsonl`);
  assert.deepEqual(recs.filter((r) => r.loss !== undefined).map((r) => r.step), [1, 2, 3, 4, 5, 6]);
  assert.equal(recs.filter((r) => r.final).length, 1);

  const ck = await openLlm(`${tmp}/split/model`);
  assert.equal(ck.cfg.layers, 1);
  assert.equal(ck.cfg.maxPositions, 16);
  assert.ok(await Deno.stat(`${tmp}/split/model/tokenizer.json`));
  ck.src.close();
  assert.ok(straight.unigramPerplexity > 10 && straight.unigramPerplexity < 1024);
  await Deno.remove(tmp, { recursive: true });
});
