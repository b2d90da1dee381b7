// The video ViT (models/video.ts) against PyTorch (tests/fixtures/parity/gen_video.py): the sinusoid
// table equals numpy's, the tubelet embedding orders tokens (time, row, column), drop path / fc dropout
// are wired, and VideoMAE checkpoints import by the reference's rules. One full training step (logits,
// loss, every gradient and weight after AdamW, with layer scale and no LLM, and with a frozen LLaMA
// layer) is checked against the same references through the parity CLI in tests/parity.test.ts.

import "../mod.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { openSafetensors, type SafetensorsSource } from "../io/safetensors.ts";
import { toFloat32 } from "../io/weights.ts";
import { readVideoMae } from "../io/videomae.ts";
import { buildVideoVit, sinusoidTable, tubeletEmbed, type VideoConfig } from "../models/video.ts";
import { assert, assertRejectsMsg, test } from "./testing.ts";

const FX = new URL("./fixtures/", import.meta.url).pathname;
const CFG: VideoConfig = {
  frames: 4,
  tubelet: 2,
  img: 28,
  patch: 7,
  chans: 1,
  dim: 32,
  depth: 2,
  heads: 2,
  classes: 10,
};

const read = async (src: SafetensorsSource, name: string) => toFloat32(src.info(name), await src.read(name));

test("video: the position table is numpy's get_sinusoid_encoding_table", async () => {
  const ref = await openSafetensors(`${FX}parity/parity-video-none.safetensors`);
  const want = await read(ref, "pos_table");
  ref.close();
  assert.deepEqual(ref.info("pos_table").shape, [1, 32, 32]);
  const ours = sinusoidTable(32, 32);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(ours[i] - want[i]));
  assert.ok(worst <= 1.2e-7, `worst |ours − numpy| = ${worst}`); // at most one f32 ulp near 1
  assert.equal(ours[0 * 32 + 1], 1); // cos(0)
  assert.equal(ours[1 * 32 + 0], Math.fround(Math.sin(1)));
});

test("video: tubelet embedding = Conv3d with kernel = stride, tokens in (time, row, column) order", async () => {
  // clips [1, 2, 4, 4, 6], tubelet 2, patch 2 → 2·2·3 = 12 tokens of C·t·p·p = 16 values
  const g = new Graph();
  const [C, T, H, W, t, p, D] = [2, 4, 4, 6, 2, 2, 3];
  const x = g.input("x", [1, C, T, H, W]);
  const w = g.input("w", [D, C, t, p, p]);
  const y = tubeletEmbed(x, w, undefined, t, p);
  assert.deepEqual(y.shape, [1, 12, D]);
  const xv = Float32Array.from({ length: C * T * H * W }, (_, i) => Math.sin(i * 0.37));
  const wv = Float32Array.from({ length: D * C * t * p * p }, (_, i) => Math.cos(i * 0.11));
  const exe = await compile([y]);
  exe.write(x, xv);
  exe.write(w, wv);
  const [out] = (await exe.run([y])) as Float32Array[];
  exe.destroy();
  const at = (c: number, f: number, r: number, col: number) => xv[((c * T + f) * H + r) * W + col];
  let worst = 0;
  for (let tt = 0; tt < T / t; tt++) {
    for (let r = 0; r < H / p; r++) {
      for (let cc = 0; cc < W / p; cc++) {
        const tok = (tt * (H / p) + r) * (W / p) + cc;
        for (let d = 0; d < D; d++) {
          let s = 0;
          for (let c = 0; c < C; c++) {
            for (let kt = 0; kt < t; kt++) {
              for (let ky = 0; ky < p; ky++) {
                for (let kx = 0; kx < p; kx++) {
                  s += wv[(((d * C + c) * t + kt) * p + ky) * p + kx] *
                    at(c, tt * t + kt, r * p + ky, cc * p + kx);
                }
              }
            }
          }
          worst = Math.max(worst, Math.abs(out[tok * D + d] - s));
        }
      }
    }
  }
  assert.ok(worst < 1e-5, `worst ${worst}`);
});

test("video: drop path and fc dropout draw per-sample masks from a seed input; evaluation has none", async () => {
  const g = new Graph();
  const m = await buildVideoVit(g, CFG, 8, { training: true, reg: { dropPath: 0.5, fcDropout: 0.3 } });
  assert.ok(m.dropoutSeed, "a seed input");
  const ev = await buildVideoVit(new Graph(), CFG, 8, { training: false, reg: { dropPath: 0.5 } });
  assert.equal(ev.dropoutSeed, undefined);
  // block 1 of 2 has rate 0.5 (block 0 has 0): with a fixed seed the logits are deterministic, and
  // different seeds give different logits
  const exe = await compile([m.logits]);
  const clips = Float32Array.from({ length: m.clips.size }, (_, i) => Math.sin(i * 0.013));
  exe.write(m.clips, clips);
  const run = async (seed: number) => {
    exe.write(m.dropoutSeed!, Uint32Array.of(seed));
    return ((await exe.run([m.logits])) as Float32Array[])[0].slice();
  };
  const a = await run(1), b = await run(1), c = await run(2);
  exe.destroy();
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.ok(a.every(Number.isFinite));
});

test("video: bad shapes are refused naming the setting", async () => {
  await assertRejectsMsg(
    () => buildVideoVit(new Graph(), { ...CFG, frames: 5 }, 2),
    "frames 5",
    "tubelet size 2",
  );
  await assertRejectsMsg(
    () => buildVideoVit(new Graph(), { ...CFG, img: 30 }, 2),
    "image size 30",
    "patch size 7",
  );
  await assertRejectsMsg(
    () => buildVideoVit(new Graph(), CFG, 2, { training: true, reg: { dropPath: 1 } }),
    "drop path rate must be in [0, 1)",
  );
});

/** The trainable params of the no-LLM model with layer scale (what the checkpoints were made for). */
function videoParams(classes = 10): Promise<Node[]> {
  const g = new Graph();
  return buildVideoVit(g, { ...CFG, classes, initValues: 0.1 }, 1).then(() => g.trainableParams);
}

test("video: a VideoMAE fine-tuning checkpoint ({model: ...}) imports; pos_embed and another head skipped", async () => {
  const ref = await openSafetensors(`${FX}parity/parity-video-none.safetensors`);
  const params = await videoParams();
  const r = await readVideoMae(`${FX}video/videomae-finetune.pth`, params);
  assert.deepEqual(r.kept.sort(), ["head.bias", "head.weight"]);
  assert.ok(
    r.skipped.some((s) => s.startsWith("pos_embed: the position table is a fixed sinusoid")),
    r.skipped.join(),
  );
  assert.ok(r.skipped.some((s) => s.startsWith("head.weight: [174,32] is another class count")));
  for (const p of params) {
    if (p.name!.startsWith("head.")) continue;
    assert.deepEqual(r.values.get(p.name!), await read(ref, `param.${p.name}`), p.name);
  }
  ref.close();
});

test("video: a VideoMAE pretraining checkpoint ({module: encoder.*}, f16 blocks) imports", async () => {
  const ref = await openSafetensors(`${FX}parity/parity-video-none.safetensors`);
  const params = await videoParams();
  const r = await readVideoMae(`${FX}video/videomae-pretrain.pth`, params);
  assert.deepEqual(r.kept.sort(), ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"]);
  for (const s of ["encoder.norm.weight", "mask_token", "decoder.blocks.0.mlp.fc1.weight"]) {
    assert.ok(r.skipped.includes(`${s}: not in the model`), s);
  }
  let worst = 0;
  for (const [name, v] of r.values) {
    const want = await read(ref, `param.${name}`);
    for (let i = 0; i < v.length; i++) {
      worst = Math.max(worst, Math.abs(v[i] - want[i]) / (Math.abs(want[i]) + 1e-3));
    }
  }
  assert.equal(r.values.size, params.length - 4);
  assert.ok(worst < 1e-3, `f16 round trip: ${worst}`);
  ref.close();
});

test("video: VideoMAE checkpoints of another model or with pickled objects are refused clearly", async () => {
  await assertRejectsMsg(
    () => readVideoMae(`${FX}video/videomae-args.pth`, []),
    "videomae-args.pth",
    "argparse.Namespace",
    `torch.save({"model": torch.load(FILE)["model"]}, OUT)`,
  );
  const g = new Graph();
  await buildVideoVit(g, { ...CFG, tubelet: 4 }, 1);
  await assertRejectsMsg(
    () => readVideoMae(`${FX}video/videomae-finetune.pth`, g.trainableParams),
    "videomae-finetune.pth",
    "'patch_embed.proj.weight' has shape [32,1,2,7,7] but the model's 'patch_embed.proj.weight' is [32,1,4,7,7]",
  );
});
