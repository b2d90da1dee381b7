// The finetune arm against PyTorch (tests/fixtures/parity/gen_parity_finetune.py): one training step of
// the ViT-LLaMA with the LLaMA layer trainable from its bf16 checkpoint (f32 master copies) and its own
// AdamW lr scale — logits, loss, every gradient (the LLM's included) and every weight after the step.
// Run as users run it (a subprocess with the documented flags).

import { assert, test } from "./testing.ts";

const ROOT = new URL("../", import.meta.url).pathname;

test("parity: the finetune arm's training step matches PyTorch (bf16 LLaMA layer trained, lr × 0.5)", async () => {
  const out = await Deno.makeTempFile({ suffix: ".safetensors" });
  try {
    const args = [
      "run",
      "-A",
      `${ROOT}examples/parity.ts`,
      ...`--ref ${ROOT}tests/fixtures/parity/parity-finetune.safetensors --out ${out} --model vit --img 28 --patch 7 --chans 1 --dim 32 --depth 2 --heads 2 --classes 10 --label-smoothing 0.1 --lr 1e-3 --weight-decay 0.05`
        .split(" "),
      ...["--llm", `${ROOT}tests/fixtures/llama-tiny-bf16`, "--llm-layers", "2", "--arm", "finetune"],
    ];
    const run = async (extra: string[]) => {
      const r = await new Deno.Command(Deno.execPath(), {
        args: [...args, ...extra],
        stdout: "piped",
        stderr: "piped",
      })
        .output();
      return { code: r.code, text: new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr) };
    };
    const r = await run(["--llm-lr-scale", "0.5"]);
    assert.equal(r.code, 0, r.text);
    assert.match(r.text, /parity: pass/);
    for (const group of ["logits", "loss", "grad", "next"]) {
      assert.match(r.text, new RegExp(`${group}\\s+worst`));
    }
    // the LLM layer's weights are among those compared: the wrong lr scale fails on them
    const wrong = await run(["--llm-lr-scale", "1"]);
    assert.match(wrong.text, /next\s+worst [0-9.e+-]+ \(model\.layers\.2\./);
    assert.match(wrong.text, /parity: fail/);
  } finally {
    await Deno.remove(out);
  }
});
