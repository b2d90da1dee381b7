// pos_embed resampling for --init of timm/DeiT weights on another grid, against PyTorch's
// F.interpolate(bicubic, align_corners=False) (tests/fixtures/pos_embed/gen_pos_embed.py); torch computes
// in float32, we in float64, so values agree to a few float32 ulps (a wrong kernel is off by ~1e-2).

import { assert, test } from "./testing.ts";
import { adaptVitInit, resamplePosEmbed } from "../models/vit.ts";

function readRef(): Map<string, { shape: number[]; data: Float32Array }> {
  const bytes = Deno.readFileSync(new URL("./fixtures/pos_embed/pos_embed.safetensors", import.meta.url));
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const head = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const out = new Map();
  for (const [k, v] of Object.entries(head) as [string, { shape: number[]; data_offsets: number[] }][]) {
    const [b, e] = v.data_offsets;
    out.set(k, { shape: v.shape, data: new Float32Array(bytes.slice(8 + n + b, 8 + n + e).buffer) });
  }
  return out;
}

const ref = readRef();
const input = ref.get("input")!;

test("resamplePosEmbed matches torch bicubic (align_corners=False), cls token kept", () => {
  for (const [h, w] of [[6, 6], [3, 3], [7, 5], [14, 14]]) {
    const want = ref.get(`to_${h}x${w}`)!;
    const got = resamplePosEmbed(input.data, 8, [4, 4], [h, w]);
    assert.equal(got.length, want.data.length);
    let err = 0;
    for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - want.data[i]));
    assert.ok(err < 1e-5, `${h}x${w}: max error ${err}`);
    assert.deepEqual(Array.from(got.subarray(0, 8)), Array.from(input.data.subarray(0, 8)));
  }
  // same grid: unchanged
  assert.deepEqual(resamplePosEmbed(input.data, 8, [4, 4], [4, 4]), input.data);
});

test("adaptVitInit resamples only pos_embed between square grids", () => {
  const got = adaptVitInit("pos_embed", input.data, [1, 17, 8], [1, 37, 8])!;
  const want = ref.get("to_6x6")!.data;
  assert.ok(got.every((v, i) => Math.abs(v - want[i]) < 1e-5));
  assert.equal(adaptVitInit("cls_token", input.data, [1, 17, 8], [1, 37, 8]), undefined);
  assert.equal(adaptVitInit("pos_embed", input.data, [1, 17, 8], [1, 37, 16]), undefined);
  assert.equal(adaptVitInit("pos_embed", input.data, [1, 17, 8], [1, 36, 8]), undefined);
});
