// VideoMAE checkpoints (a torch.save zip: {"model": state_dict, ...} or {"module": ...}, as VideoMAE's
// and the paper's run_class_finetuning.py read them with --model_key model|module) as initial weights
// of models/video.ts, with the reference's rules:
//   - names: a `backbone.` or `encoder.` prefix is dropped (a pretraining checkpoint's encoder);
//   - `head.*` of another shape (another class count) is dropped and keeps its init;
//   - `pos_embed`: the model's position table is VideoMAE's fixed sinusoid, not a parameter (the
//     reference's load_state_dict does not load it either): it is recomputed for the model's frame
//     count and size, so a stored table — resampled or not — is skipped;
//   - tensors the model does not have (the pretraining decoder, mask_token, the encoder's `norm`,
//     which mean pooling replaces with `fc_norm`) are skipped; params the checkpoint lacks (the LLM
//     mappers, fc_norm of a pretraining checkpoint) keep their init;
//   - any other shape mismatch is an error naming the tensor (a checkpoint of another model).
// Tensors are read by the restricted unpickler (io/pickle.ts): a checkpoint that also pickles objects
// (e.g. the training `args` as argparse.Namespace) is refused with a hint to re-save the state dict.

import type { Node } from "../compiler/core/ir.ts";
import type { Executable } from "../compiler/runtime/executable.ts";
import { openPth } from "./pth.ts";
import { CheckpointError, readImported, type WeightSource } from "./weights.ts";

/** The keys a VideoMAE training checkpoint keeps its state dict under (run_class_finetuning's default). */
export const VIDEOMAE_MODEL_KEYS: readonly string[] = ["model", "module"];

/** A param to initialise: its name and shape (a graph param, or just its description). */
export interface ParamSpec {
  /** Our (= the reference's) parameter name. */
  readonly name?: string;
  /** Its shape. */
  readonly shape: readonly number[];
}

/** What reading a VideoMAE checkpoint for a model gives. */
export interface VideoMaeWeights {
  /** f32 values by our param name. */
  values: Map<string, Float32Array>;
  /** Checkpoint tensors not used, each with the reason (as `name: why`). */
  skipped: string[];
  /** Model params the checkpoint does not provide (they keep their init). */
  kept: string[];
}

/** The reference's renaming of checkpoint keys: `backbone.X` and `encoder.X` become `X`. */
export function videoMaeName(key: string): string {
  if (key.startsWith("backbone.")) return key.slice("backbone.".length);
  if (key.startsWith("encoder.")) return key.slice("encoder.".length);
  return key;
}

/** Opens a VideoMAE .pth (its state dict under "model" or "module", or a plain state dict). */
export async function openVideoMae(file: string): Promise<WeightSource> {
  try {
    return await openPth(file, VIDEOMAE_MODEL_KEYS);
  } catch (e) {
    if (e instanceof CheckpointError && /is not allowed/.test(e.message)) {
      throw new CheckpointError(
        file,
        `${e.message.slice(file.length + 2)}. To import it, re-save only the weights: ` +
          `torch.save({"model": torch.load(FILE)["model"]}, OUT)`,
      );
    }
    throw e;
  }
}

/** Reads the values of `params` from a VideoMAE checkpoint, by the rules at the top of this file. */
export async function readVideoMae(file: string, params: readonly ParamSpec[]): Promise<VideoMaeWeights> {
  const src = await openVideoMae(file);
  try {
    return await readImported(file, src, params, {
      name: (t) => videoMaeName(t.name),
      skip: (name) =>
        name === "pos_embed"
          ? "the position table is a fixed sinusoid, recomputed for the model's size"
          : undefined,
      headPrefix: "head.",
      shapeHint: "size, patch, tubelet or channels",
      noneMatch:
        "no tensor matches the model's parameter names (VideoMAE names expected, e.g. 'blocks.0.attn.qkv.weight')",
    });
  } finally {
    src.close();
  }
}

/**
 * Initialises `params` (the trainable params of a models/video.ts model) of `exe` from a VideoMAE
 * checkpoint; returns the names loaded, the tensors skipped (with why) and the params kept at init.
 */
export async function initFromVideoMae(
  file: string,
  exe: Executable,
  params: readonly Node[],
): Promise<{ loaded: string[]; skipped: string[]; kept: string[] }> {
  const r = await readVideoMae(file, params);
  for (const p of params) {
    const v = r.values.get(p.name!);
    if (v) exe.write(p, v);
  }
  return { loaded: [...r.values.keys()], skipped: r.skipped, kept: r.kept };
}
