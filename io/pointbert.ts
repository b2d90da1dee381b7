// Point-BERT checkpoints (a torch.save zip, its state dict under "base_model" — the released
// Point-BERT.pth pretraining checkpoint and the fine-tuning runs' ckpt-*.pth — or "model") as initial
// weights of models/pointbert.ts, with the reference's rules (LM4VisualEncoding
// models/Point_BERT.py PointTransformer.load_model_from_ckpt and tools/builder.py load_model):
//   - `module.` is removed from every name (DataParallel);
//   - a pretraining checkpoint (names under `transformer_q.` or `base_model.`): those prefixes are
//     dropped, `transformer_q.cls_head*` and every other tensor (dVAE, the momentum encoder
//     transformer_k, queues) are skipped; otherwise (a fine-tuned model) names are used as they are;
//   - `cls_head_finetune.*` of another shape (another class count) is skipped and keeps its init;
//   - tensors the model does not have (num_batches_tracked, ...) are skipped; params the checkpoint
//     lacks (the LLM mappers, the head of a pretraining checkpoint) keep their init;
//   - any other shape mismatch is an error naming the tensor.
// BatchNorm running statistics are loaded too when they are among `params`.

import type { Node } from "../compiler/core/ir.ts";
import type { Executable } from "../compiler/runtime/executable.ts";
import { openPth } from "./pth.ts";
import { readImported } from "./weights.ts";

/** The keys a Point-BERT checkpoint keeps its state dict under. */
export const POINTBERT_MODEL_KEYS: readonly string[] = ["base_model", "model"];

/**
 * Our name of a checkpoint tensor (undefined: not part of the fine-tuning model), as the reference
 * renames it; `pretrain` says whether the checkpoint is a pretraining one (see the file comment).
 */
export function pointBertName(key: string, pretrain: boolean): string | undefined {
  const k = key.replaceAll("module.", "");
  if (!pretrain) return k;
  if (k.startsWith("transformer_q.") && !k.startsWith("transformer_q.cls_head")) {
    return k.slice("transformer_q.".length);
  }
  if (k.startsWith("base_model.")) return k.slice("base_model.".length);
  return undefined;
}

/**
 * Initialises `params` (trainable params and BatchNorm buffers of a models/pointbert.ts model) of
 * `exe` from a Point-BERT .pth checkpoint; returns the names loaded, the tensors skipped (with why)
 * and the params kept at their init.
 */
export async function initFromPointBert(
  file: string,
  exe: Executable,
  params: readonly Node[],
): Promise<{ loaded: string[]; skipped: string[]; kept: string[] }> {
  const src = await openPth(file, POINTBERT_MODEL_KEYS);
  let r: Awaited<ReturnType<typeof readImported>>;
  try {
    const pretrain = src.list().some((t) =>
      /^(transformer_q|base_model)\./.test(t.name.replaceAll("module.", ""))
    );
    r = await readImported(file, src, params, {
      name: (t) => pointBertName(t.name, pretrain),
      headPrefix: "cls_head_finetune.",
      shapeHint: "dim, encoder dim",
      noneMatch: "no tensor matches the model's names (Point-BERT names expected, e.g. " +
        "'module.transformer_q.blocks.blocks.0.attn.qkv.weight' or 'encoder.first_conv.0.weight')",
    });
  } finally {
    src.close();
  }
  for (const p of params) {
    const v = r.values.get(p.name!);
    if (v) exe.write(p, v);
  }
  return { loaded: [...r.values.keys()], skipped: r.skipped, kept: r.kept };
}
