// Checkpoints: trainable weights as safetensors (timm-style names), optimizer moments as safetensors,
// and a JSON state (step, optimizer step count, data-order state, RNG, config). Written into a fresh
// directory that replaces the previous checkpoint only once complete, so a crash never leaves a
// half-written checkpoint behind.

import type { Node } from "../compiler/core/ir.ts";
import type { Executable } from "../compiler/runtime/executable.ts";
import type { AdamW } from "../nn/optim.ts";
import { bytesOf, openSafetensors, writeSafetensors } from "./safetensors.ts";
import { CheckpointError, toFloat32 } from "./weights.ts";
import { exists } from "./fs.ts";

/** The JSON state saved next to the weights: the step, and whatever else the trainer needs to resume. */
export interface CheckpointState {
  /** Training steps taken when the checkpoint was written. */
  step: number;
  /** Whatever else the trainer stores to resume (hyper-parameters, data order, RNG state), as JSON. */
  [key: string]: unknown;
}

/** Where a checkpoint lives: its directory, and the run directory that holds it (metrics, chart). */
export interface CheckpointLocation {
  /** The directory with model.safetensors and state.json. */
  checkpoint: string;
  /** The run directory: the checkpoint's parent when it is a run's `checkpoint/`, else the same. */
  runDir: string;
}

/**
 * Finds the checkpoint a user pointed at: a run directory (`out/vit`, holding `checkpoint/`) or the
 * checkpoint directory itself (`out/vit/checkpoint`). Throws a CheckpointError naming the path when
 * neither holds a model.safetensors.
 */
export async function findCheckpoint(path: string): Promise<CheckpointLocation> {
  const p = path.replace(/\/+$/, "") || "/";
  if (await exists(`${p}/checkpoint/model.safetensors`)) return { checkpoint: `${p}/checkpoint`, runDir: p };
  if (await exists(`${p}/model.safetensors`)) {
    const parent = p.includes("/") ? p.slice(0, p.lastIndexOf("/")) || "/" : ".";
    return { checkpoint: p, runDir: p.endsWith("/checkpoint") || p === "checkpoint" ? parent : p };
  }
  throw new CheckpointError(
    p,
    (await exists(p))
      ? "no checkpoint here (neither checkpoint/model.safetensors nor model.safetensors)"
      : "not found",
  );
}

/** Reads a checkpoint directory's state.json. */
export async function readCheckpointState(dir: string): Promise<CheckpointState> {
  const file = `${dir}/state.json`;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new CheckpointError(file, `cannot read (${(e as Error).message})`);
  }
  try {
    const st = JSON.parse(text);
    if (typeof st?.step !== "number") throw new Error("no step");
    return st;
  } catch (e) {
    throw new CheckpointError(file, `not a checkpoint state (${(e as Error).message})`);
  }
}

/** Saves params (+ AdamW moments and step count) and `state` to `dir` (created or replaced whole). */
export async function saveCheckpoint(
  dir: string,
  exe: Executable,
  params: readonly Node[],
  opt: AdamW | undefined,
  state: CheckpointState,
): Promise<void> {
  const tmp = `${dir}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(tmp, { recursive: true });
  try {
    const weights = [];
    for (const p of params) {
      weights.push({
        name: p.name!,
        dtype: "F32" as const,
        shape: [...p.shape],
        data: bytesOf(await exe.read(p) as Float32Array),
      });
    }
    await writeSafetensors(`${tmp}/model.safetensors`, weights, { format: "pt" });
    if (opt) {
      const moments = [];
      for (const p of params) {
        const mv = opt.moments.get(p);
        if (!mv) continue;
        moments.push({
          name: `${p.name}.exp_avg`,
          dtype: "F32" as const,
          shape: [...p.shape],
          data: bytesOf(await exe.read(mv.m) as Float32Array),
        });
        moments.push({
          name: `${p.name}.exp_avg_sq`,
          dtype: "F32" as const,
          shape: [...p.shape],
          data: bytesOf(await exe.read(mv.v) as Float32Array),
        });
      }
      await writeSafetensors(`${tmp}/optimizer.safetensors`, moments);
    }
    await Deno.writeTextFile(
      `${tmp}/state.json`,
      JSON.stringify({ ...state, optimizerStep: opt?.t ?? 0 }, null, 1),
    );
    // swap in: old → .old, new → dir, drop .old
    const old = `${dir}.old`;
    if (await exists(old)) await Deno.remove(old, { recursive: true });
    if (await exists(dir)) await Deno.rename(dir, old);
    await Deno.rename(tmp, dir);
    if (await exists(old)) await Deno.remove(old, { recursive: true });
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}

/**
 * Loads a checkpoint into the executable. Every param must be present with the same shape (else a
 * CheckpointError naming the file, the tensor and both shapes), and nothing extra may be there.
 * Returns the saved state.
 */
export async function loadCheckpoint(
  dir: string,
  exe: Executable,
  params: readonly Node[],
  opt: AdamW | undefined,
): Promise<CheckpointState> {
  const file = `${dir}/model.safetensors`;
  if (!(await exists(file))) {
    throw new CheckpointError(dir, "no model.safetensors: not a checkpoint directory");
  }
  const st = await readCheckpointState(dir) as CheckpointState & { optimizerStep?: number };
  const src = await openSafetensors(file);
  try {
    const names = new Set(src.list().map((t) => t.name));
    for (const p of params) {
      if (!src.has(p.name!)) {
        throw new CheckpointError(file, `no tensor '${p.name}' (the model has it, shape [${p.shape}])`);
      }
      const info = src.info(p.name!);
      if (info.shape.join() !== p.shape.join()) {
        throw new CheckpointError(
          file,
          `tensor '${p.name}' has shape [${info.shape}] but the model's is [${p.shape}]: a checkpoint of another model?`,
        );
      }
      exe.write(p, toFloat32(info, await src.read(p.name!)));
      names.delete(p.name!);
    }
    if (names.size) {
      throw new CheckpointError(
        file,
        `tensors the model does not have: ${[...names].slice(0, 5).join(", ")}`,
      );
    }
  } finally {
    src.close();
  }
  if (opt) {
    const ofile = `${dir}/optimizer.safetensors`;
    const os = await openSafetensors(ofile);
    try {
      for (const p of params) {
        const mv = opt.moments.get(p);
        if (!mv) continue;
        for (const [node, key] of [[mv.m, "exp_avg"], [mv.v, "exp_avg_sq"]] as const) {
          const name = `${p.name}.${key}`;
          exe.write(node, toFloat32(os.info(name), await os.read(name)));
        }
      }
    } finally {
      os.close();
    }
    opt.t = st.optimizerStep ?? 0;
  }
  return st;
}

/**
 * Initialises params from a safetensors file with timm names (a timm/DeiT ViT exported with
 * safetensors, or our own model.safetensors): every tensor whose name the model has is loaded and
 * must have the same shape; `head.*` of another class count is skipped (a fine-tuning start); model
 * params the file lacks (e.g. the LLM mappers) keep their init. Returns what was loaded and skipped.
 */
export async function initFromSafetensors(
  file: string,
  exe: Executable,
  params: readonly Node[],
): Promise<{ loaded: string[]; skipped: string[]; kept: string[] }> {
  const src = await openSafetensors(file);
  const byName = new Map(params.map((p) => [p.name!, p]));
  const loaded: string[] = [], skipped: string[] = [];
  try {
    for (const t of src.list()) {
      const p = byName.get(t.name);
      if (!p) {
        skipped.push(t.name);
        continue;
      }
      if (t.shape.join() !== p.shape.join()) {
        if (t.name.startsWith("head.")) {
          skipped.push(t.name);
          continue;
        }
        throw new CheckpointError(
          file,
          `tensor '${t.name}' has shape [${t.shape}] but the model's is [${p.shape}]`,
        );
      }
      exe.write(p, toFloat32(t, await src.read(t.name)));
      loaded.push(t.name);
    }
  } finally {
    src.close();
  }
  if (!loaded.length) {
    throw new CheckpointError(file, "no tensor matches the model's parameter names (timm names expected)");
  }
  const kept = params.map((p) => p.name!).filter((n) => !loaded.includes(n));
  return { loaded, skipped, kept };
}
