// The paper's information-filtering analysis (App. A.3 / A.5) of a saved image run: per test image,
// the magnitude and FFT-phase (frequency) scores of the patch tokens at five stages (vit, mapper1,
// llm_attn, llm_ffn, mapper2) and the last block's CLS attention; pseudo-masks at the oracle threshold
// against Fashion-MNIST's exact token foreground; mIoU per stage and score. Writes one PNG per image
// (the paper's Fig. 3 layout: row 1 image, magnitude per stage, CLS attention; row 2 token foreground,
// frequency per stage), analysis.json and, with --dump, the safetensors dump (contract in
// train/analyze.ts).
//
//   deno task analyze --checkpoint out/vit --limit 16 --out out/vit/analysis
//   deno task analyze --checkpoint out/vit --limit 100 --out out/fig --dump out/fig/dump.safetensors

import { train } from "../mod.ts";

const raw = train.parseFlags("usage: deno task analyze --checkpoint RUN_DIR --out FIG_DIR [flags]", {
  checkpoint: { type: "string", help: "the run directory (what train --out wrote) or its checkpoint/" },
  data: { type: "string", help: "Fashion-MNIST directory (default: the run's)" },
  limit: { type: "string", default: "16", help: "analyse the first N test images" },
  out: { type: "string", help: "figure directory (PNGs + analysis.json)" },
  dump: { type: "string", help: "also write the features, masks and scores here (safetensors)" },
});
try {
  if (!raw.checkpoint) throw new Error("--checkpoint: a run directory is needed");
  if (!raw.out) throw new Error("--out: a figure directory is needed");
  const limit = Number(raw.limit);
  const r = await train.analyzeCheckpoint({
    checkpoint: raw.checkpoint,
    data: raw.data || undefined,
    limit,
    out: raw.out,
    dump: raw.dump || undefined,
  });
  console.log(train.analysisSummary(r));
  console.log(`figures and analysis.json in ${raw.out}` + (raw.dump ? `; dump ${raw.dump}` : ""));
} catch (e) {
  console.error(`analyze: ${(e as Error).message}`);
  Deno.exit(1);
}
