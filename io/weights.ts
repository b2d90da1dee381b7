// What checkpoint readers give the models: a list of named tensors whose bytes can be read one at a
// time, by offset, without loading the whole file. Both readers (HF safetensors in
// models/safetensors.ts, Meta's torch.save zip in models/pth.ts) implement WeightSource; model code
// (models/llm.ts) maps names and uploads bytes as they are stored (bf16/f16 stay 16-bit on the GPU).

import { fromBf16, fromF16 } from "../compiler/core/dtype.ts";

/** Storage dtypes as safetensors spells them. */
export type StDtype = "F32" | "F16" | "BF16" | "I64" | "I32";

/** A stored tensor's name, dtype, shape and byte length (read from a header; no data). */
export interface TensorInfo {
  /** Name as the source lists it. */
  name: string;
  /** Storage dtype. */
  dtype: StDtype;
  /** Shape, outermost first. */
  shape: number[];
  /** Exact byte length of the tensor's data (numel × element size). */
  bytes: number;
}

/** Named tensors of a checkpoint, each read on demand by offset (safetensors, sharded, or a .pth zip). */
export interface WeightSource {
  /** File or directory this source reads, for error messages. */
  readonly path: string;
  /** Every tensor, in file order. */
  list(): TensorInfo[];
  /** Whether a tensor of that name exists. */
  has(name: string): boolean;
  /** Throws an error naming the file and the tensor when it is absent. */
  info(name: string): TensorInfo;
  /** The tensor's little-endian bytes, read by offset (nothing else of the file is read). */
  read(name: string): Promise<Uint8Array>;
  /** Closes the underlying file(s). */
  close(): void;
}

/** Error for bad checkpoint files: always names the file, and the tensor when there is one. */
export class CheckpointError extends Error {
  /** Always "CheckpointError". */
  override name = "CheckpointError";
  /** `message` is prefixed with the file it concerns. */
  constructor(readonly file: string, message: string) {
    // One line, always: text quoted from a corrupt file (a JSON excerpt, a pickled string) may hold
    // newlines and control characters, which are shown escaped.
    // deno-lint-ignore no-control-regex
    super(`${file}: ${message}`.replace(/[\x00-\x1f\x7f]/g, (c) => JSON.stringify(c).slice(1, -1)));
  }
}

/** Bytes per element of each storage dtype. */
export const DTYPE_BYTES: Record<StDtype, number> = { F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4 };

/** Decodes a tensor's bytes to f32 (or exact integers for I64/I32, as f64-safe numbers). */
export function toFloat32(info: TensorInfo, raw: Uint8Array): Float32Array {
  const n = info.shape.reduce((a, b) => a * b, 1);
  // fast path: f32 data on this little-endian machine is already what we want (copied when unaligned)
  if (info.dtype === "F32" && LITTLE_ENDIAN) {
    return raw.byteOffset % 4 === 0
      ? new Float32Array(raw.buffer, raw.byteOffset, n).slice()
      : new Float32Array(raw.slice(0, 4 * n).buffer);
  }
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Float32Array(n);
  switch (info.dtype) {
    case "F32":
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      break;
    case "BF16":
      for (let i = 0; i < n; i++) out[i] = fromBf16(dv.getUint16(2 * i, true));
      break;
    case "F16":
      for (let i = 0; i < n; i++) out[i] = fromF16(dv.getUint16(2 * i, true));
      break;
    case "I64":
      for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(8 * i, true));
      break;
    case "I32":
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(4 * i, true);
      break;
  }
  return out;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** 16-bit payloads as u16 words (what Executable.write takes for f16/bf16 nodes). */
export function toU16(raw: Uint8Array): Uint16Array {
  if (LITTLE_ENDIAN) {
    return raw.byteOffset % 2 === 0
      ? new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2)
      : new Uint16Array(raw.slice().buffer);
  }
  const out = new Uint16Array(raw.byteLength / 2);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = dv.getUint16(2 * i, true);
  return out;
}

/**
 * Reads one float tensor of a checkpoint being imported into `values` under the model's `name`, refusing a
 * second tensor for the same name and non-float dtypes (the importers of VideoMAE and Point-BERT `.pth`).
 */
export async function takeFloatTensor(
  file: string,
  src: WeightSource,
  t: TensorInfo,
  name: string,
  values: Map<string, Float32Array>,
): Promise<void> {
  if (values.has(name)) {
    throw new CheckpointError(file, `two tensors map to '${name}' (one is '${t.name}')`);
  }
  if (t.dtype !== "F32" && t.dtype !== "F16" && t.dtype !== "BF16") {
    throw new CheckpointError(file, `tensor '${t.name}' has dtype ${t.dtype}; expected F32, F16 or BF16`);
  }
  values.set(name, toFloat32(t, await src.read(t.name)));
}

/** How an importer maps a foreign checkpoint (VideoMAE, Point-BERT `.pth`) onto a model's parameters. */
export interface ImportRules {
  /** The model's name of a checkpoint tensor (undefined: not one the model has). */
  name(t: TensorInfo): string | undefined;
  /** Why a tensor the model does have is skipped anyway, if it is (e.g. a recomputed table). */
  skip?(name: string): string | undefined;
  /** Names starting with this are the classifier head: another shape there is another class count. */
  headPrefix: string;
  /** What a shape mismatch elsewhere suggests, e.g. "dim, encoder dim". */
  shapeHint: string;
  /** The refusal when no tensor matches, naming the names expected. */
  noneMatch: string;
}

/**
 * Reads the tensors of `src` that `params` take, as `rules` map them: a head of another class count
 * and the tensors the model lacks are skipped (with why), another shape elsewhere is refused naming
 * both shapes; returns the values by the model's names and the params left at their init.
 */
export async function readImported(
  file: string,
  src: WeightSource,
  params: readonly { name?: string; shape: readonly number[] }[],
  rules: ImportRules,
): Promise<{ values: Map<string, Float32Array>; skipped: string[]; kept: string[] }> {
  const byName = new Map(params.map((p) => [p.name!, p]));
  const values = new Map<string, Float32Array>(), skipped: string[] = [];
  for (const t of src.list()) {
    const name = rules.name(t);
    const why = name === undefined ? undefined : rules.skip?.(name);
    if (why) {
      skipped.push(`${t.name}: ${why}`);
      continue;
    }
    const p = name === undefined ? undefined : byName.get(name);
    if (!p || name === undefined) {
      skipped.push(`${t.name}: not in the model`);
      continue;
    }
    if (t.shape.join() !== p.shape.join()) {
      if (name.startsWith(rules.headPrefix)) {
        skipped.push(`${t.name}: [${t.shape}] is another class count than the model's [${p.shape}]`);
        continue;
      }
      throw new CheckpointError(
        file,
        `tensor '${t.name}' has shape [${t.shape}] but the model's '${name}' is [${p.shape}]: ` +
          `a checkpoint of another model (${rules.shapeHint})?`,
      );
    }
    await takeFloatTensor(file, src, t, name, values);
  }
  if (!values.size) throw new CheckpointError(file, rules.noneMatch);
  const kept = params.map((p) => p.name!).filter((n) => !values.has(n));
  return { values, skipped, kept };
}
