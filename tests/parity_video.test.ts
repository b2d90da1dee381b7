// The video ViT against PyTorch (tests/fixtures/parity/gen_video.py): layer scale without an LLM, and
// the exact command with a middle LLaMA layer — run as users run it (a subprocess: the CLI's
// output and exit code), the other cases in this process (runParity).

import { assert, test } from "./testing.ts";
import { parity, parityInProcess, ROOT, VIDEO } from "./parity_harness.ts";

test("parity: the video ViT matches PyTorch (layer scale without an LLM; a middle LLaMA layer)", async (t) => {
  for (
    const [ref, llm, layers, extra, run] of [
      ["parity-video-none.safetensors", "none", "1", ["--init-values", "0.1"], parityInProcess],
      ["parity-video-llama.safetensors", `${ROOT}tests/fixtures/llama-tiny`, "1", [], parity],
    ] as const
  ) {
    await t.step(ref, async () => {
      const r = await run(ref, llm, layers, [...extra], VIDEO);
      assert.equal(r.code, 0, r.text);
      assert.match(r.text, /parity: pass/);
      for (const group of ["logits", "loss", "grad", "next"]) {
        assert.match(r.text, new RegExp(`${group}\\s+worst`));
      }
    });
  }
  await t.step("without --init-values the layer-scale params are named as missing", async () => {
    const r = await parityInProcess("parity-video-none.safetensors", "none", "1", [], VIDEO);
    assert.notEqual(r.code, 0);
    assert.match(r.text, /params the model does not have: blocks\.0\.gamma_1.*pass --init-values/);
  });
});
