// The ablation arms (models/arms.ts) and the LLM position in the ViT: which params each arm trains
// (gradients into the mlp, random-trained and finetune layers, none into frozen ones), that one
// training step changes exactly those weights (finetune: the pretrained bf16 layer, via its f32 copy),
// that the random arms are not the checkpoint's values, and that head/middle/tail put the
// mapper → layer → mapper chain where stated.

import "../compiler/ops/mod.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { grad } from "../compiler/grad.ts";
import { crossEntropy } from "../compiler/ops/loss.ts";
import { openLlm } from "../io/llm.ts";
import { toFloat32 } from "../io/weights.ts";
import { writeRandomLlama } from "../io/random_llm.ts";
import { DEFAULT_LLM } from "../models/presets.ts";
import { buildVit, type VitConfig } from "../models/vit.ts";
import { isLlmParam, type LlmArm, llmParamGroup } from "../models/arms.ts";
import { Trainer } from "../train/trainer.ts";
import { assert, test } from "./testing.ts";

const CFG: VitConfig = { img: 8, patch: 4, chans: 1, dim: 16, depth: 4, heads: 2, classes: 3 };
const B = 2;

async function model(arm: LlmArm, position: "tail" | "middle" | "head" = "tail", dir = DEFAULT_LLM) {
  const ck = await openLlm(dir);
  const g = new Graph();
  const m = await buildVit(g, CFG, B, { llm: { ck, layers: [ck.cfg.layers - 1], arm, position }, seed: 1 });
  const labels = g.input("labels", [B], "i32");
  return { g, m, ck, loss: crossEntropy(m.logits, labels), labels };
}

const layerParamsOf = (g: Graph) => g.params.filter((p) => isLlmParam(p) || p.name!.startsWith("llm_mlp."));

test("arms: gradients reach the mlp, random-trained and finetune layers, none reach frozen layers", async () => {
  for (const arm of ["mlp", "random-trained", "finetune", "frozen", "random-frozen"] as const) {
    const { g, loss, ck } = await model(arm);
    const layer = layerParamsOf(g);
    assert.ok(layer.length > 0, `${arm}: layer params exist`);
    const grads = grad(loss);
    const trained = arm === "mlp" || arm === "random-trained" || arm === "finetune";
    for (const p of layer) {
      assert.equal(p.trainable, trained, `${arm}: ${p.name} trainable`);
      assert.equal(grads.has(p), trained, `${arm}: gradient into ${p.name}`);
      if (trained) assert.equal(p.dtype, "f32", `${arm}: ${p.name} is f32 (the master copy)`);
    }
    // mlp: the LLM's FFN form and sizes (LLaMA: SwiGLU hidden → intermediate → hidden)
    if (arm === "mlp") {
      assert.deepEqual(g.byName("llm_mlp.0.gate.weight").shape, [ck.cfg.intermediate, ck.cfg.hidden]);
      assert.deepEqual(g.byName("llm_mlp.0.down.weight").shape, [ck.cfg.hidden, ck.cfg.intermediate]);
      assert.ok(!layer.some(isLlmParam), "mlp: no LLM params");
    } else {
      assert.ok(layer.every(isLlmParam), `${arm}: the LLM's names`);
    }
    ck.src.close();
  }
});

test("arms: one step changes the trained layers' weights (finetune: from the bf16 checkpoint's values)", async () => {
  // a bf16 checkpoint (llama-tiny is stored f32)
  const dir = await Deno.makeTempDir();
  await writeRandomLlama(dir, { hidden: 32, heads: 2, kvHeads: 2, intermediate: 48, layers: 2, vocab: 16 }, {
    seed: 4,
  });
  // (frozen and random-frozen: no gradient, proven on the graph above)
  for (const arm of ["finetune", "random-trained", "mlp"] as const) {
    const { g, m, loss, labels, ck } = await model(arm, "tail", dir);
    const probe = arm === "mlp"
      ? "llm_mlp.0.up.weight"
      : `model.layers.${ck.cfg.layers - 1}.mlp.up_proj.weight`;
    const p = g.byName(probe);
    const tr = await Trainer.create(loss, {
      lr: 1e-2,
      weights: m.llm?.loader,
      paramGroup: llmParamGroup(arm, 0.5),
    });
    try {
      const x = new Float32Array(B * 64).map((_, i) => Math.sin(i * 0.37));
      const feeds = new Map<Node, Float32Array | Int32Array>([[m.images, x], [labels, Int32Array.of(0, 2)]]);
      const before = await tr.exe.read(p);
      if (arm === "finetune") {
        // the f32 master copy starts at the checkpoint's bf16 values
        const f = toFloat32(ck.src.info(probe), await ck.src.read(probe));
        assert.ok(["BF16", "F16"].includes(ck.src.info(probe).dtype), "a 16-bit checkpoint");
        assert.deepEqual(Array.from(before.slice(0, 8)), Array.from(f.slice(0, 8)));
        assert.equal(tr.opt.groups.find((gr) => gr.params.includes(p))?.lrScale, 0.5, "finetune: lr scale");
      } else if (arm === "random-trained") {
        // random values, not the checkpoint's
        const f = toFloat32(ck.src.info(probe), await ck.src.read(probe));
        assert.ok(before.some((v, i) => v !== f[i]) && before.some((v) => v !== before[0]), "random values");
      }
      await tr.step(feeds, 1e-2, true);
      const after = await tr.exe.read(p);
      let changed = 0;
      for (let i = 0; i < after.length; i++) if (after[i] !== before[i]) changed++;
      assert.ok(changed > after.length / 2, `${arm}: ${changed}/${after.length} weights changed`);
    } finally {
      tr.exe.destroy();
      ck.src.close();
    }
  }
  await Deno.remove(dir, { recursive: true });
});

test("arms: --llm-position head/middle/tail put mapper1 → layer → mapper2 where stated", async () => {
  const blockIn = (g: Graph, i: number) => g.byName(`blocks.${i}.norm1.weight`).id;
  for (const position of ["head", "middle", "tail"] as const) {
    const { g, m, ck } = await model("frozen", position);
    const t = m.taps;
    const H = ck.cfg.hidden, T = (CFG.img / CFG.patch) ** 2 + 1;
    assert.deepEqual(t.mapper1!.shape, [B, T, H]);
    assert.deepEqual(t.llm_attn!.shape, [B, T, H]);
    assert.deepEqual(t.llm_ffn!.shape, [B, T, H]);
    assert.deepEqual(t.mapper2!.shape, [B, T, CFG.dim]);
    assert.deepEqual(t.vit.shape, [B, T, CFG.dim]);
    assert.deepEqual(t.mapper1!.inputs, [t.vit, g.byName("llama_dim_mapper1.weight")]);
    const m1 = t.mapper1!.id, m2 = t.mapper2!.id;
    assert.ok(m1 < t.llm_attn!.id && t.llm_attn!.id < t.llm_ffn!.id && t.llm_ffn!.id < m2);
    if (position === "head") {
      assert.ok(m2 < blockIn(g, 0), "head: before block 0");
      assert.equal(t.vit.op, "add", "head: the tokens + pos_embed");
    } else if (position === "middle") {
      assert.ok(blockIn(g, 1) < m1 && m2 < blockIn(g, 2), "middle: after block depth/2 = 2");
    } else {
      assert.ok(blockIn(g, 3) < m1 && m2 < g.byName("norm.weight").id, "tail: after the last block");
    }
    ck.src.close();
  }
  // none: no mappers, the plain encoder
  const { g, m, ck } = await model("none");
  assert.equal(m.llm, undefined);
  assert.ok(!g.params.some((p) => p.name!.startsWith("llama_dim_mapper") || isLlmParam(p)));
  assert.equal(m.taps.mapper1, undefined);
  ck.src.close();
});
