// Point-BERT with BatchNorm running stats against PyTorch (tests/fixtures/parity/gen_parity_points.py).

import { assert, test } from "./testing.ts";
import { parityInProcess as parity, POINT, ROOT } from "./parity_harness.ts";

test("parity: Point-BERT with BatchNorm running stats matches PyTorch (no LLM, a LLaMA layer)", async (t) => {
  for (
    const [ref, llm] of [
      ["parity-points-none.safetensors", "none"],
      ["parity-points-llama.safetensors", `${ROOT}tests/fixtures/llama-tiny`],
    ]
  ) {
    await t.step(ref, async () => {
      const r = await parity(ref, llm, "2", [], POINT);
      assert.equal(r.code, 0, r.text);
      assert.match(r.text, /parity: pass/);
      assert.match(r.text, /buffer\s+worst/);
    });
  }
});
