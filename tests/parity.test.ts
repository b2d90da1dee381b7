// The parity tool against our PyTorch references (tests/fixtures/parity/gen_parity.py): a ViT with no
// LLM, with a LLaMA layer, and with two OPT layers, one training step each — logits, loss, every
// gradient, every weight after AdamW. Run in this process through the CLI's own code (runParity), so
// the cases share compiled kernels; the CLI as a subprocess is run in parity_video.test.ts.
// Point-BERT and the video ViT are in parity_points.test.ts and parity_video.test.ts.

import { assert, test } from "./testing.ts";
import { parityInProcess as parity, ROOT } from "./parity_harness.ts";

test("parity: one training step matches PyTorch (no LLM, a LLaMA layer, two OPT layers)", async (t) => {
  for (
    const [ref, llm, layers] of [
      ["parity-none.safetensors", "none", "2"],
      ["parity-llama.safetensors", `${ROOT}tests/fixtures/llama-tiny`, "2"],
      ["parity-opt.safetensors", `${ROOT}tests/fixtures/opt-tiny`, "1,2"],
    ]
  ) {
    await t.step(ref, async () => {
      const r = await parity(ref, llm, layers);
      assert.equal(r.code, 0, r.text);
      assert.match(r.text, /parity: pass/);
      for (const group of ["logits", "loss", "grad", "next"]) {
        assert.match(r.text, new RegExp(`${group}\\s+worst`));
      }
      assert.ok(r.size > 10_000, "OUT was written");
    });
  }
});

test("parity: a wrong setting fails, and a REF of another shape is refused clearly", async () => {
  const wrong = await parity("parity-none.safetensors", "none", "2", ["--weight-decay", "0.1"]);
  assert.equal(wrong.code, 1, wrong.text);
  assert.match(wrong.text, /parity: fail/);
  const shape = await parity("parity-none.safetensors", "none", "2", ["--dim", "48"]);
  assert.notEqual(shape.code, 0);
  assert.match(
    shape.text,
    /parity-none\.safetensors: 'param\.[a-z_.0-9]+' has shape \[[0-9,]+\], the model's is/,
  );
});
