// Meta's LLaMA checkpoints (consolidated.00.pth) and other torch.save files: a zip holding
// `PREFIX/data.pkl` (the state dict, pickled with storages as persistent ids) and one entry
// `PREFIX/data/KEY` per storage, stored uncompressed. openPth reads the zip directory and the pickle
// (through the restricted unpickler in models/pickle.ts) and serves each tensor by reading only its byte
// range of its storage entry.
//
// Also here: Meta → HF LLaMA names, and the row permutation HF's conversion applies to wq/wk.

import { CheckpointError, DTYPE_BYTES, type StDtype, type TensorInfo, type WeightSource } from "./weights.ts";
import { readStateDict, STORAGE_BYTES, type TensorRef } from "./pickle.ts";
import { ZipReader } from "./zip.ts";

/**
 * Largest data.pkl read (the state dict's structure, not its data: a 70B LLaMA's is well under 1 MB), so
 * a directory entry that claims gigabytes is refused before anything is read or inflated.
 */
export const MAX_PICKLE_BYTES = 256 * 1024 * 1024;

interface PthTensor {
  info: TensorInfo;
  entry: string;
  /** Byte offset of the tensor in its storage entry. */
  start: number;
}

/** A WeightSource over a torch.save zip (Meta's consolidated.NN.pth, or a pytorch_model.bin). */
export class PthSource implements WeightSource {
  private constructor(
    readonly path: string,
    private readonly zip: ZipReader,
    private readonly tensors: Map<string, PthTensor>,
  ) {}

  static async open(path: string, stateKeys: readonly string[] = []): Promise<PthSource> {
    const zip = await ZipReader.open(path);
    try {
      return new PthSource(path, zip, await readTensors(zip, path, stateKeys));
    } catch (e) {
      zip.close();
      throw e;
    }
  }

  list(): TensorInfo[] {
    return [...this.tensors.values()].map((t) => t.info);
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    return this.get(name).info;
  }

  async read(name: string): Promise<Uint8Array> {
    const t = this.get(name);
    return await this.zip.read(t.entry, t.start, t.info.bytes);
  }

  close(): void {
    this.zip.close();
  }

  private get(name: string): PthTensor {
    const t = this.tensors.get(name);
    if (!t) throw new CheckpointError(this.path, `no tensor '${name}' in ${this.path}`);
    return t;
  }
}

/**
 * Opens a torch.save zip file as a WeightSource (names as stored, e.g. Meta's `layers.0.attention.wq.weight`).
 * With `stateKeys` (e.g. ["model", "module"]), a training checkpoint's state dict under the first of those
 * keys present is read instead of the top dict.
 */
export function openPth(path: string, stateKeys: readonly string[] = []): Promise<WeightSource> {
  return PthSource.open(path, stateKeys);
}

/**
 * Opens Meta's original LLaMA checkpoint directory: `consolidated.00.pth` (+ params.json, read by the
 * config code). Model-parallel shards (consolidated.01.pth …) would need merging and are refused.
 */
export async function openMetaCheckpoint(dir: string): Promise<WeightSource> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) names.push(e.name);
  } catch (e) {
    throw new CheckpointError(dir, `cannot read the checkpoint directory: ${(e as Error).message}`);
  }
  const shards = names.filter((n) => /^consolidated\.\d+\.pth$/.test(n)).sort();
  if (!shards.includes("consolidated.00.pth")) {
    throw new CheckpointError(
      dir,
      `no consolidated.00.pth in ${dir} (not a Meta LLaMA checkpoint directory)`,
    );
  }
  if (shards.length > 1) {
    throw new CheckpointError(
      dir,
      `${shards.length} model-parallel shards (${shards.join(", ")}): merging shards is not supported; ` +
        `use a single-shard checkpoint (7B) or convert it to HF safetensors`,
    );
  }
  return await openPth(`${dir.replace(/\/+$/, "")}/consolidated.00.pth`);
}

async function readTensors(
  zip: ZipReader,
  path: string,
  stateKeys: readonly string[],
): Promise<Map<string, PthTensor>> {
  // torch.save names every entry PREFIX/...; the prefix is the file's stem (or "archive").
  const pkls = zip.entries.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (pkls.length !== 1) {
    throw new CheckpointError(
      path,
      pkls.length
        ? `several data.pkl entries (${pkls.map((e) => e.name).join(", ")})`
        : `no entry 'PREFIX/data.pkl' in ${path}: not a torch.save zip`,
    );
  }
  const pklName = pkls[0].name;
  const prefix = pklName.slice(0, -"data.pkl".length);
  if (zip.has(`${prefix}byteorder`)) {
    const order = new TextDecoder().decode(await zip.readWhole(`${prefix}byteorder`, 64)).trim();
    if (order !== "little") {
      throw new CheckpointError(
        path,
        `${prefix}byteorder says '${order}': only little-endian checkpoints are supported`,
      );
    }
  }
  const state = readStateDict(
    await zip.readWhole(pklName, MAX_PICKLE_BYTES),
    { file: path, entry: pklName },
    stateKeys,
  );
  const out = new Map<string, PthTensor>();
  for (const [name, t] of state) out.set(name, checkTensor(zip, path, prefix, name, t));
  return out;
}

function checkTensor(zip: ZipReader, path: string, prefix: string, name: string, t: TensorRef): PthTensor {
  const bad = (msg: string): never => {
    throw new CheckpointError(path, `tensor '${name}': ${msg}`);
  };
  if (t.storageDtype === "F64") bad("float64 (torch.DoubleStorage) tensors are not supported");
  const dtype = t.storageDtype as StDtype;
  const size = DTYPE_BYTES[dtype];
  if (size !== STORAGE_BYTES[t.storageDtype]) bad(`element size mismatch for ${dtype}`);
  const numel = t.shape.reduce((a, b) => a * b, 1);
  // Row-major contiguity; a dimension of size 1 may carry any stride (torch treats it as contiguous).
  let expect = 1;
  for (let i = t.shape.length - 1; i >= 0; i--) {
    if (t.shape[i] !== 1 && t.stride[i] !== expect) {
      bad(
        `strides [${t.stride}] for shape [${t.shape}] are not contiguous row-major ` +
          `(a transposed or sliced view was saved; save tensor.contiguous() instead)`,
      );
    }
    expect *= t.shape[i];
  }
  const entry = `${prefix}data/${t.storageKey}`;
  if (!zip.has(entry)) bad(`its storage '${t.storageKey}' has no entry '${entry}' in ${path}`);
  const e = zip.entry(entry);
  const end = t.offset + numel;
  if (numel > 0 && end > t.storageNumel) {
    bad(
      `elements [${t.offset}, ${end}) run past its storage '${t.storageKey}' of ${t.storageNumel} elements`,
    );
  }
  if (numel > 0 && end * size > e.size) {
    bad(`bytes [${t.offset * size}, ${end * size}) run past its storage entry '${entry}' of ${e.size} bytes`);
  }
  // torch.save writes each storage whole: its entry is exactly numel × element size (more would be
  // bytes no tensor can name, and a deflated entry would be inflated up to that claim).
  if (e.size !== t.storageNumel * size) {
    bad(
      `its storage entry '${entry}' is ${e.size} bytes but the pickle says storage '${t.storageKey}' holds ` +
        `${t.storageNumel} ${dtype} elements (${t.storageNumel * size} bytes)`,
    );
  }
  return {
    info: { name, dtype, shape: [...t.shape], bytes: numel * size },
    entry,
    start: numel > 0 ? t.offset * size : 0,
  };
}

/** Meta LLaMA name → HF LlamaForCausalLM name; undefined for tensors HF does not keep (rope.freqs). */
export function metaToHfName(name: string): string | undefined {
  switch (name) {
    case "tok_embeddings.weight":
      return "model.embed_tokens.weight";
    case "norm.weight":
      return "model.norm.weight";
    case "output.weight":
      return "lm_head.weight";
    case "rope.freqs":
      return undefined;
  }
  const m = /^layers\.(\d+)\.(.+)$/.exec(name);
  if (!m) return undefined;
  const sub = LAYER_NAMES[m[2]];
  return sub ? `model.layers.${m[1]}.${sub}` : undefined;
}

const LAYER_NAMES: Record<string, string> = {
  "attention.wq.weight": "self_attn.q_proj.weight",
  "attention.wk.weight": "self_attn.k_proj.weight",
  "attention.wv.weight": "self_attn.v_proj.weight",
  "attention.wo.weight": "self_attn.o_proj.weight",
  "feed_forward.w1.weight": "mlp.gate_proj.weight",
  "feed_forward.w2.weight": "mlp.down_proj.weight",
  "feed_forward.w3.weight": "mlp.up_proj.weight",
  "attention_norm.weight": "input_layernorm.weight",
  "ffn_norm.weight": "post_attention_layernorm.weight",
};

/**
 * The row permutation HF's convert_llama_weights_to_hf applies to Meta's wq / wk ([heads·headDim,
 * hidden], rows in Meta's interleaved rotary-pair order) to get HF's half-split order:
 * `w.view(heads, headDim/2, 2, hidden).transpose(1, 2).reshape(heads·headDim, hidden)`, i.e. HF row
 * (h, j, i) = Meta row (h, i, j) with j ∈ {0, 1}, i < headDim/2. Rows move whole, so 16-bit words (or
 * the raw little-endian bytes of any dtype, in the 5-argument form) are permuted without decoding.
 * For wk of a grouped-query model pass the kv head count.
 */
export function permuteMetaQK(
  raw: Float32Array,
  heads: number,
  headDim: number,
  hidden: number,
): Float32Array;
export function permuteMetaQK(raw: Uint16Array, heads: number, headDim: number, hidden: number): Uint16Array;
export function permuteMetaQK(
  raw: Float32Array | Uint16Array,
  heads: number,
  headDim: number,
  hidden: number,
): Float32Array | Uint16Array;
/** Raw tensor bytes as read() returns them, in the tensor's dtype. */
export function permuteMetaQK(
  raw: Uint8Array,
  dtype: StDtype,
  heads: number,
  headDim: number,
  hidden: number,
): Uint8Array;
export function permuteMetaQK(
  raw: Float32Array | Uint16Array | Uint8Array,
  a: number | StDtype,
  b: number,
  c: number,
  d?: number,
): Float32Array | Uint16Array | Uint8Array {
  if (typeof a === "string") {
    if (!(raw instanceof Uint8Array)) {
      throw new Error("permuteMetaQK: the dtype form takes raw bytes (Uint8Array)");
    }
    const size = DTYPE_BYTES[a];
    if (!size) throw new Error(`permuteMetaQK: unknown dtype ${a}`);
    return permuteRows(raw, b, c, d!, size, new Uint8Array(raw.length));
  }
  if (raw instanceof Uint8Array) {
    throw new Error("permuteMetaQK: raw bytes need the dtype: permuteMetaQK(raw, dtype, ...)");
  }
  const out = raw instanceof Float32Array ? new Float32Array(raw.length) : new Uint16Array(raw.length);
  return permuteRows(raw, a, b, c, 1, out);
}

function permuteRows<T extends Float32Array | Uint16Array | Uint8Array>(
  raw: T,
  heads: number,
  headDim: number,
  hidden: number,
  unit: number,
  out: T,
): T {
  if (headDim % 2 !== 0) throw new Error(`permuteMetaQK: headDim ${headDim} must be even`);
  const row = hidden * unit;
  if (raw.length !== heads * headDim * row) {
    throw new Error(
      `permuteMetaQK: ${raw.length} elements, expected heads ${heads} × headDim ${headDim} × hidden ${hidden}` +
        (unit > 1 ? ` × ${unit} bytes` : ""),
    );
  }
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < 2; j++) {
      for (let i = 0; i < half; i++) {
        const src = (h * headDim + 2 * i + j) * row;
        const dst = (h * headDim + j * half + i) * row;
        out.set(raw.subarray(src, src + row), dst);
      }
    }
  }
  return out;
}
