// Training checkpoints: trainable weights as safetensors (timm-style names), optimizer moments as
// safetensors, a JSON state (step, optimizer step count, data-order state, RNG, run settings) and a
// manifest (every file's size and SHA-256), written last.
//
// What a kill -9 at any instant leaves: a new checkpoint is written whole into `<dir>.tmp-<id>`, each
// file flushed to the disk, the manifest last; only then does it replace `<dir>`:
//   remove a stale <dir>.old → rename <dir> to <dir>.old → rename the new one to <dir> → remove <dir>.old
// (a directory cannot be renamed over a non-empty one, hence the .old step). At every instant at least
// one complete checkpoint exists among <dir>, <dir>.old and the finished <dir>.tmp-<id>, and
// findCheckpoint takes the newest one that validates (manifest, sizes, hashes, state.json), so
// `--resume RUN_DIR` resumes whatever the kill left. Non-finite weights are never written.

import type { Node } from "../compiler/core/ir.ts";
import type { Executable } from "../compiler/runtime/executable.ts";
import type { AdamW } from "../nn/optim.ts";
import { bytesOf, openSafetensors, writeSafetensors } from "./safetensors.ts";
import { CheckpointError, toFloat32 } from "./weights.ts";
import { exists, syncDir, writeFileSynced } from "./fs.ts";

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
  /** The checkpoint's step (from its state.json). */
  step: number;
  /** Its state.json, as validated (readCheckpointState). */
  state: CheckpointState;
  /** Other candidates that were passed over, each with the reason (an interrupted save leaves some). */
  skipped: string[];
}

/** The manifest's name; written last, so a directory without it is not a finished checkpoint. */
const MANIFEST = "manifest.json";
/** The manifest's format tag. */
const MANIFEST_FORMAT = "vit-llm checkpoint 1";

/** What manifest.json holds: the step and every other file's size and SHA-256 (hex). */
interface Manifest {
  format: string;
  step: number;
  files: Record<string, { bytes: number; sha256: string }>;
}

/**
 * The instants of saveCheckpoint at which a crash can be injected, in order: after each file of the
 * new checkpoint is written, then at each step of the swap.
 */
export const CHECKPOINT_CRASH_POINTS = [
  "model.safetensors",
  "optimizer.safetensors",
  "state.json",
  "manifest.json",
  "old-removed",
  "renamed-to-old",
  "renamed-new",
  "old-invalidated",
  "done",
] as const;

/** One of CHECKPOINT_CRASH_POINTS. */
export type CheckpointCrashPoint = typeof CHECKPOINT_CRASH_POINTS[number];

/**
 * The environment variable that makes saveCheckpoint exit the process at a crash point, as a kill
 * would leave the files: `POINT` (the first save) or `POINT@N` (the N-th save of the process). For the
 * crash tests; read only when the process may read it (no permission prompt).
 */
export const CHECKPOINT_CRASH_ENV = "VITLLM_CHECKPOINT_CRASH";

/** Thrown by an in-process crash hook: saveCheckpoint then leaves its files as a kill would. */
export class InjectedCrash extends Error {
  /** "InjectedCrash". */
  override name = "InjectedCrash";
}

/**
 * Test hook: called at every crash point with the point and the save's number in this process (from
 * 1). Throw an InjectedCrash to stop there without cleanup. Unset: the environment variable decides.
 */
export const checkpointCrashHook: { at?: (point: CheckpointCrashPoint, save: number) => void } = {};

let saves = 0;

function envCrashPoint(): string | undefined {
  try {
    const q = Deno.permissions.querySync({ name: "env", variable: CHECKPOINT_CRASH_ENV });
    return q.state === "granted" ? Deno.env.get(CHECKPOINT_CRASH_ENV) : undefined;
  } catch {
    return undefined;
  }
}

function crashPoint(point: CheckpointCrashPoint, save: number): void {
  if (checkpointCrashHook.at) return checkpointCrashHook.at(point, save);
  const want = envCrashPoint();
  if (!want) return;
  const [p, n] = want.split("@");
  if (p === point && save === Number(n ?? 1)) Deno.exit(137);
}

/** A tensor to be checkpointed holds NaN or ±Inf: the checkpoint is refused (nothing is written). */
export class NonFiniteError extends Error {
  /** "NonFiniteError". */
  override name = "NonFiniteError";
  /** The tensor's name, the first bad element's index and value. */
  constructor(readonly tensor: string, readonly index: number, readonly value: number) {
    super(`refusing to checkpoint non-finite weights: '${tensor}' holds ${value} at element ${index}`);
  }
}

/** The index of the first NaN/±Inf of `a`, or -1. */
function firstNonFinite(a: ArrayLike<number>): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return i;
  return -1;
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

function intField(file: string, st: Record<string, unknown>, key: string, max = 2 ** 31): number {
  const v = st[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) {
    throw new CheckpointError(
      file,
      `field '${key}' must be an integer in 0..${max}, got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

/**
 * Reads and checks a checkpoint directory's state.json: valid JSON, an object, `step` (and
 * `optimizerStep`, when present) an integer ≥ 0, `run` an object when present. Errors name the file
 * and the field.
 */
export async function readCheckpointState(dir: string): Promise<CheckpointState> {
  const file = `${dir}/state.json`;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new CheckpointError(file, `cannot read (${(e as Error).message})`);
  }
  let st: unknown;
  try {
    st = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(file, `not valid JSON, a truncated or corrupt file? (${(e as Error).message})`);
  }
  if (typeof st !== "object" || st === null || Array.isArray(st)) {
    throw new CheckpointError(file, `not a checkpoint state (a JSON object with 'step' expected)`);
  }
  const o = st as Record<string, unknown>;
  if (!("step" in o)) throw new CheckpointError(file, `no field 'step': not a checkpoint state`);
  intField(file, o, "step");
  if ("optimizerStep" in o) intField(file, o, "optimizerStep");
  if ("dropoutRng" in o) intField(file, o, "dropoutRng", 0xffffffff);
  if ("run" in o && (typeof o.run !== "object" || o.run === null || Array.isArray(o.run))) {
    throw new CheckpointError(file, `field 'run' must be an object of run settings`);
  }
  return o as CheckpointState;
}

/**
 * Checks a checkpoint directory before it is trusted: its manifest (every file present with the
 * recorded size and SHA-256, the same step as state.json), state.json, and the safetensors headers.
 * A directory without a manifest (one written before manifests existed) is checked without it unless
 * `requireManifest` (an interrupted save's directories are complete only with theirs). Returns its
 * state; throws a CheckpointError naming the file and what is wrong.
 */
export async function validateCheckpoint(dir: string, requireManifest = false): Promise<CheckpointState> {
  const mfile = `${dir}/${MANIFEST}`;
  if (await exists(mfile)) {
    let m: Manifest;
    try {
      m = JSON.parse(await Deno.readTextFile(mfile));
    } catch (e) {
      throw new CheckpointError(mfile, `unreadable (${(e as Error).message})`);
    }
    if (m?.format !== MANIFEST_FORMAT || typeof m.files !== "object" || m.files === null) {
      throw new CheckpointError(mfile, `not a checkpoint manifest ('${MANIFEST_FORMAT}' expected)`);
    }
    for (const [name, want] of Object.entries(m.files)) {
      if (name.includes("/") || name.startsWith(".")) {
        throw new CheckpointError(mfile, `bad file name '${name}'`);
      }
      const file = `${dir}/${name}`;
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(file);
      } catch (e) {
        throw new CheckpointError(file, `listed in ${MANIFEST} but unreadable (${(e as Error).message})`);
      }
      if (bytes.length !== want?.bytes) {
        throw new CheckpointError(file, `${bytes.length} bytes, ${MANIFEST} says ${want?.bytes}: incomplete`);
      }
      if (await sha256(bytes) !== want.sha256) {
        throw new CheckpointError(file, `content differs from its SHA-256 in ${MANIFEST}: corrupt`);
      }
    }
    for (const need of ["model.safetensors", "state.json"]) {
      if (!m.files[need]) throw new CheckpointError(mfile, `does not list ${need}`);
    }
    const st = await readCheckpointState(dir);
    if (m.step !== st.step) {
      throw new CheckpointError(mfile, `step ${m.step}, but state.json says ${st.step}`);
    }
    await checkSafetensors(`${dir}/model.safetensors`);
    if (m.files["optimizer.safetensors"]) await checkSafetensors(`${dir}/optimizer.safetensors`);
    return st;
  }
  if (!(await exists(`${dir}/model.safetensors`))) {
    throw new CheckpointError(dir, "no model.safetensors: not a checkpoint directory");
  }
  if (requireManifest) throw new CheckpointError(dir, `no ${MANIFEST}: an unfinished (or half-removed) save`);
  const st = await readCheckpointState(dir);
  await checkSafetensors(`${dir}/model.safetensors`);
  return st;
}

async function checkSafetensors(file: string): Promise<void> {
  (await openSafetensors(file)).close(); // the parser checks the header and the data section's extent
}

/** The sibling directories where a save into `base` may have left a checkpoint, newest role first. */
async function candidatesOf(base: string): Promise<string[]> {
  const slash = base.lastIndexOf("/");
  const parent = slash < 0 ? "." : base.slice(0, slash) || "/";
  const name = base.slice(slash + 1);
  const found = [base, `${base}.old`];
  try {
    for await (const e of Deno.readDir(parent)) {
      if (e.isDirectory && e.name.startsWith(`${name}.tmp-`)) found.push(`${parent}/${e.name}`);
    }
  } catch {
    // no parent: nothing to find
  }
  const out = [];
  for (const c of found) if (await exists(c)) out.push(c);
  return out;
}

/**
 * Finds the checkpoint a user pointed at: a run directory (`out/vit`, holding `checkpoint/`) or a
 * checkpoint directory (`out/vit/checkpoint`). Besides `checkpoint/` it considers what an interrupted
 * save leaves (`checkpoint.old`, a finished `checkpoint.tmp-*`), validates each (validateCheckpoint)
 * and returns the one with the highest step. Throws a CheckpointError naming the path (and why every
 * candidate was refused) when none is usable.
 */
export async function findCheckpoint(path: string): Promise<CheckpointLocation> {
  const p = path.replace(/\/+$/, "") || "/";
  const parentOf = (x: string) => x.includes("/") ? x.slice(0, x.lastIndexOf("/")) || "/" : ".";
  const baseName = p.slice(p.lastIndexOf("/") + 1);
  let base: string, runDir: string;
  if (/^checkpoint(\.old|\.tmp-.*)?$/.test(baseName)) {
    runDir = parentOf(p);
    base = `${runDir}/checkpoint`;
  } else if ((await candidatesOf(`${p}/checkpoint`)).length) {
    runDir = p;
    base = `${p}/checkpoint`;
  } else {
    runDir = p;
    base = p;
  }
  const candidates = [];
  for (const c of await candidatesOf(base)) {
    // a plain directory (a run directory before its first save) is no candidate
    const isDir = c === base && base === p;
    if (!isDir || await exists(`${c}/model.safetensors`) || await exists(`${c}/${MANIFEST}`)) {
      candidates.push(c);
    }
  }
  if (!candidates.length) {
    throw new CheckpointError(
      p,
      (await exists(p))
        ? "no checkpoint here (neither checkpoint/model.safetensors nor model.safetensors)"
        : "not found",
    );
  }
  let best: { dir: string; step: number; state: CheckpointState } | undefined;
  const refused: string[] = [], valid: { dir: string; step: number }[] = [];
  for (const dir of candidates) {
    try {
      const st = await validateCheckpoint(dir, dir !== base);
      valid.push({ dir, step: st.step });
      if (!best || st.step > best.step) best = { dir, step: st.step, state: st };
    } catch (e) {
      refused.push((e as Error).message);
    }
  }
  if (!best) {
    // only what a killed first save leaves: nothing to resume yet
    const first = !candidates.includes(base) && !candidates.includes(`${base}.old`);
    throw new CheckpointError(
      p,
      first
        ? `no finished checkpoint yet (the first save was interrupted: ${refused.join("; ")}); ` +
          `start the run again without --resume`
        : `no usable checkpoint: ${refused.join("; ")}`,
    );
  }
  const older = valid.filter((v) => v !== best).map((v) => `${v.dir}: step ${v.step}, older`);
  const skipped = [...refused, ...older];
  return { checkpoint: best.dir, runDir, step: best.step, state: best.state, skipped };
}

/** Reads every tensor to save: params, then (with opt) their moments; all reads in flight at once. */
async function readTensors(exe: Executable, params: readonly Node[], opt: AdamW | undefined) {
  const named: [string, Node, Node][] = params.map((p) => [p.name!, p, p]);
  const moments: [string, Node, Node][] = [];
  for (const p of opt ? params : []) {
    const mv = opt!.moments.get(p);
    if (!mv) continue;
    moments.push([`${p.name}.exp_avg`, p, mv.m], [`${p.name}.exp_avg_sq`, p, mv.v]);
  }
  const read = (list: [string, Node, Node][]) =>
    Promise.all(list.map(async ([name, p, n]) => {
      const data = await exe.read(n) as Float32Array;
      const bad = firstNonFinite(data);
      if (bad >= 0) throw new NonFiniteError(name, bad, data[bad]);
      return { name, dtype: "F32" as const, shape: [...p.shape], data: bytesOf(data) };
    }));
  return { weights: await read(named), moments: await read(moments) };
}

async function writeTensors(
  file: string,
  tensors: Parameters<typeof writeSafetensors>[1],
  meta?: Record<string, string>,
) {
  try {
    await writeSafetensors(file, tensors, meta);
  } catch (e) {
    throw new CheckpointError(file, `cannot write (${(e as Error).message})`);
  }
}

/**
 * Saves params (+ AdamW moments and step count) and `state` as the checkpoint `dir`, replacing the
 * previous one only once the new one is complete (see the file's header: a kill at any instant leaves
 * a usable checkpoint). Refuses (NonFiniteError, nothing written) when any value is NaN or ±Inf.
 * A failed write throws an error naming the file.
 */
export async function saveCheckpoint(
  dir: string,
  exe: Executable,
  params: readonly Node[],
  opt: AdamW | undefined,
  state: CheckpointState,
): Promise<void> {
  const save = ++saves;
  const { weights, moments } = await readTensors(exe, params, opt);
  const tmp = `${dir}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(tmp, { recursive: true });
  try {
    const files: Manifest["files"] = {};
    const record = async (name: string) => {
      const bytes = await Deno.readFile(`${tmp}/${name}`);
      files[name] = { bytes: bytes.length, sha256: await sha256(bytes) };
    };
    await writeTensors(`${tmp}/model.safetensors`, weights, { format: "pt" });
    await record("model.safetensors");
    crashPoint("model.safetensors", save);
    if (opt) {
      await writeTensors(`${tmp}/optimizer.safetensors`, moments);
      await record("optimizer.safetensors");
    }
    crashPoint("optimizer.safetensors", save);
    await writeFileSynced(
      `${tmp}/state.json`,
      JSON.stringify({ ...state, optimizerStep: opt?.t ?? 0 }, null, 1),
    );
    await record("state.json");
    crashPoint("state.json", save);
    const manifest: Manifest = { format: MANIFEST_FORMAT, step: state.step, files };
    await writeFileSynced(`${tmp}/${MANIFEST}`, JSON.stringify(manifest, null, 1));
    await syncDir(tmp);
    crashPoint("manifest.json", save);
    // swap in; the new checkpoint is complete, so a stale .old can go first
    const old = `${dir}.old`;
    if (await exists(old)) await Deno.remove(old, { recursive: true });
    crashPoint("old-removed", save);
    if (await exists(dir)) await Deno.rename(dir, old);
    crashPoint("renamed-to-old", save);
    await Deno.rename(tmp, dir);
    await syncDir(dir.includes("/") ? dir.slice(0, dir.lastIndexOf("/")) || "/" : ".");
    crashPoint("renamed-new", save);
    if (await exists(old)) {
      // the manifest first: a half-removed .old is then plainly not a checkpoint
      await Deno.remove(`${old}/${MANIFEST}`).catch(() => {});
      crashPoint("old-invalidated", save);
      await Deno.remove(old, { recursive: true });
    }
    await removeStaleTemps(dir);
    crashPoint("done", save);
  } catch (e) {
    if (e instanceof InjectedCrash) throw e; // leave the files as a kill would
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}

/** Removes `<dir>.tmp-*` left by saves that were killed (the current one has been renamed already). */
async function removeStaleTemps(dir: string): Promise<void> {
  for (const c of await candidatesOf(dir)) {
    if (c !== dir && c !== `${dir}.old`) await Deno.remove(c, { recursive: true }).catch(() => {});
  }
}

/** Converts a stored tensor to f32 and refuses NaN/±Inf, naming the file and the tensor. */
function finiteF32(file: string, name: string, info: Parameters<typeof toFloat32>[0], raw: Uint8Array) {
  const a = toFloat32(info, raw);
  const bad = firstNonFinite(a);
  if (bad >= 0) {
    throw new CheckpointError(
      file,
      `tensor '${name}' holds ${a[bad]} at element ${bad}: weights of a diverged run?`,
    );
  }
  return a;
}

/**
 * Loads a checkpoint into the executable. Every param must be present with the same shape (else a
 * CheckpointError naming the file, the tensor and both shapes), finite, and nothing extra may be
 * there. Returns the saved state.
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
      exe.write(p, finiteF32(file, p.name!, info, await src.read(p.name!)));
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
          if (!os.has(name)) throw new CheckpointError(ofile, `no tensor '${name}'`);
          const info = os.info(name);
          if (info.shape.join() !== p.shape.join()) {
            throw new CheckpointError(ofile, `tensor '${name}' has shape [${info.shape}], not [${p.shape}]`);
          }
          exe.write(node, finiteF32(ofile, name, info, await os.read(name)));
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
 * Converts a tensor whose shape differs from the model's (e.g. a ViT's pos_embed for another grid):
 * the model's values, or undefined when it cannot (the shape mismatch is then an error).
 */
export type InitAdapter = (
  name: string,
  data: Float32Array,
  from: readonly number[],
  to: readonly number[],
) => Float32Array | undefined;

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
  adapt?: InitAdapter,
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
        const adapted = adapt?.(t.name, toFloat32(t, await src.read(t.name)), t.shape, p.shape);
        if (adapted) {
          exe.write(p, adapted);
          loaded.push(t.name);
          continue;
        }
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
