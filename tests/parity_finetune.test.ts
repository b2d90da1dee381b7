// The finetune arm against PyTorch (tests/fixtures/parity/gen_parity_finetune.py): one training step of
// the ViT-LLaMA with the LLaMA layer trainable from its bf16 checkpoint (f32 master copies) and its own
// AdamW lr scale — logits, loss, every gradient (the LLM's included) and every weight after the step.
// Run in this process through the CLI's own code (runParity) with the documented flags, so both runs
// share compiled kernels; the CLI as a subprocess is run in parity_video.test.ts.

import { assert, test } from "./testing.ts";
import { parityInProcess, ROOT } from "./parity_harness.ts";

test("parity: the finetune arm's training step matches PyTorch (bf16 LLaMA layer trained, lr × 0.5)", async () => {
  const run = (extra: string[]) =>
    parityInProcess("parity-finetune.safetensors", `${ROOT}tests/fixtures/llama-tiny-bf16`, "2", [
      "--arm",
      "finetune",
      ...extra,
    ]);
  const r = await run(["--llm-lr-scale", "0.5"]);
  assert.equal(r.code, 0, r.text);
  assert.match(r.text, /parity: pass/);
  for (const group of ["logits", "loss", "grad", "next"]) {
    assert.match(r.text, new RegExp(`${group}\\s+worst`));
  }
  // the LLM layer's weights are among those compared: the wrong lr scale fails on them
  const wrong = await run(["--llm-lr-scale", "1"]);
  assert.equal(wrong.code, 1, wrong.text);
  assert.match(wrong.text, /next\s+worst [0-9.e+-]+ \(model\.layers\.2\./);
  assert.match(wrong.text, /parity: fail/);
});
