// Hugging Face safetensors: a reader that implements WeightSource (one file, or a checkpoint directory
// with one file or shards + model.safetensors.index.json) and an atomic writer.
//
// File layout (https://github.com/huggingface/safetensors):
//   u64 little-endian N | N bytes of JSON header | data section
// The header maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the
// data section) plus an optional "__metadata__" string→string map. Opening reads the 8-byte length and
// the header only; read(name) seeks to the tensor and reads exactly its bytes.

import { CheckpointError, DTYPE_BYTES, type StDtype, type TensorInfo, type WeightSource } from "./weights.ts";

/** Headers larger than this are refused as corrupt (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

/** A single safetensors file. */
export interface SafetensorsSource extends WeightSource {
  /** The header's "__metadata__" (string → string), empty when absent. */
  readonly metadata: Record<string, string>;
}

/** Options of openSafetensors. */
export interface OpenOptions {
  /** Test hook: called with (file position, byte count) for every read of the file. */
  onRead?: (position: number, length: number) => void;
}

interface Entry extends TensorInfo {
  /** Absolute file offset of the first byte. */
  start: number;
}

function isDtype(s: unknown): s is StDtype {
  return typeof s === "string" && Object.hasOwn(DTYPE_BYTES, s);
}

function fmtShape(shape: unknown): string {
  return JSON.stringify(shape);
}

/** Reads exactly `buf.length` bytes at `position`, or throws naming the file. */
async function readAt(
  file: Deno.FsFile,
  path: string,
  position: number,
  buf: Uint8Array,
  what: string,
  opts?: OpenOptions,
): Promise<void> {
  opts?.onRead?.(position, buf.length);
  await file.seek(position, Deno.SeekMode.Start);
  let got = 0;
  while (got < buf.length) {
    const n = await file.read(buf.subarray(got));
    if (n === null || n === 0) {
      throw new CheckpointError(
        path,
        `file ends early while reading ${what}: needed ${buf.length} bytes at offset ${position}, got ${got}`,
      );
    }
    got += n;
  }
}

/** Parses and validates a header; returns the tensors sorted by data offset. */
function parseHeader(
  path: string,
  headerBytes: Uint8Array,
  dataStart: number,
  fileSize: number,
): { entries: Entry[]; metadata: Record<string, string> } {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    throw new CheckpointError(path, "safetensors header is not valid UTF-8 (not a safetensors file?)");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(
      path,
      `safetensors header is not valid JSON (${(e as Error).message}; not a safetensors file?)`,
    );
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new CheckpointError(path, "safetensors header is not a JSON object");
  }
  const dataLen = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        throw new CheckpointError(path, "__metadata__ is not a JSON object");
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        metadata[k] = typeof v === "string" ? v : JSON.stringify(v);
      }
      continue;
    }
    const where = `tensor '${name}'`;
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new CheckpointError(path, `${where}: header entry is not an object`);
    }
    const { dtype, shape, data_offsets: offs } = raw as Record<string, unknown>;
    if (!isDtype(dtype)) {
      throw new CheckpointError(
        path,
        `${where}: unsupported dtype ${JSON.stringify(dtype)} (supported: ${
          Object.keys(DTYPE_BYTES).join(", ")
        })`,
      );
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new CheckpointError(
        path,
        `${where}: shape ${fmtShape(shape)} is not a list of non-negative integers`,
      );
    }
    if (
      !Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offs[1] < offs[0]
    ) {
      throw new CheckpointError(
        path,
        `${where}: data_offsets ${JSON.stringify(offs)} is not [begin, end] with 0 <= begin <= end integers`,
      );
    }
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    const bytes = numel * DTYPE_BYTES[dtype];
    if (!Number.isSafeInteger(bytes)) {
      throw new CheckpointError(path, `${where}: ${dtype} shape ${fmtShape(shape)} is absurdly large`);
    }
    const [begin, end] = offs as number[];
    if (end - begin !== bytes) {
      throw new CheckpointError(
        path,
        `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes but ${dtype} shape ${
          fmtShape(shape)
        } needs ${bytes}`,
      );
    }
    if (end > dataLen) {
      throw new CheckpointError(
        path,
        `${where}: data_offsets [${begin}, ${end}] lie outside the data section (${dataLen} bytes; ` +
          `the file is ${fileSize} bytes, truncated?)`,
      );
    }
    entries.push({ name, dtype, shape: shape as number[], bytes, start: dataStart + begin });
  }
  // The format's own rule (as the reference reader checks it): in offset order the tensors tile the data
  // section exactly, from 0 with no gap, overlap or trailing byte. A gap or extra bytes would otherwise
  // shift nothing visibly and load wrong values (bytes inserted into a file move every later tensor).
  entries.sort((a, b) => a.start - b.start || a.bytes - b.bytes);
  const r = (x: Entry) => `[${x.start - dataStart}, ${x.start - dataStart + x.bytes}]`;
  let cursor = 0;
  let prev: Entry | undefined;
  for (const e of entries) {
    const begin = e.start - dataStart;
    if (begin < cursor && prev) {
      throw new CheckpointError(
        path,
        `tensors '${prev.name}' ${r(prev)} and '${e.name}' ${r(e)} have overlapping data_offsets`,
      );
    }
    if (begin > cursor) {
      throw new CheckpointError(
        path,
        `tensor '${e.name}': data_offsets ${r(e)} leave a gap of ${begin - cursor} bytes after ${
          prev ? `'${prev.name}' ${r(prev)}` : "the start of the data section"
        } (tensors must be contiguous from offset 0)`,
      );
    }
    cursor = begin + e.bytes;
    prev = e;
  }
  if (cursor !== dataLen) {
    throw new CheckpointError(
      path,
      `data section is ${dataLen} bytes but its tensors cover ${cursor}: ${
        dataLen - cursor
      } extra bytes after the last tensor${prev ? ` '${prev.name}'` : ""} (corrupt or appended data)`,
    );
  }
  return { entries, metadata };
}

class SafetensorsFile implements SafetensorsSource {
  private file: Deno.FsFile | null;
  private byName = new Map<string, Entry>();
  /** Reads on one handle are serialized (seek + read is not atomic). */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly path: string,
    file: Deno.FsFile,
    private entries: Entry[],
    readonly metadata: Record<string, string>,
    private opts?: OpenOptions,
  ) {
    this.file = file;
    for (const e of entries) this.byName.set(e.name, e);
  }

  list(): TensorInfo[] {
    return this.entries.map(({ name, dtype, shape, bytes }) => ({ name, dtype, shape: [...shape], bytes }));
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  private entry(name: string): Entry {
    const e = this.byName.get(name);
    if (!e) throw new CheckpointError(this.path, `no tensor '${name}' in this checkpoint`);
    return e;
  }

  info(name: string): TensorInfo {
    const { dtype, shape, bytes } = this.entry(name);
    return { name, dtype, shape: [...shape], bytes };
  }

  read(name: string): Promise<Uint8Array> {
    let e: Entry;
    try {
      e = this.entry(name);
    } catch (err) {
      return Promise.reject(err);
    }
    const run = async () => {
      const file = this.file;
      if (!file) throw new CheckpointError(this.path, `read of '${name}' after close()`);
      const buf = new Uint8Array(e.bytes);
      if (e.bytes > 0) await readAt(file, this.path, e.start, buf, `tensor '${name}'`, this.opts);
      return buf;
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => {});
    return p;
  }

  close(): void {
    if (this.file) {
      try {
        this.file.close();
      } catch { /* already closed */ }
      this.file = null;
    }
  }
}

/** Opens one .safetensors file: reads the header now, tensor bytes on read(name). */
export async function openSafetensors(path: string, opts?: OpenOptions): Promise<SafetensorsSource> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new CheckpointError(path, "file not found");
    throw new CheckpointError(path, `cannot open: ${(e as Error).message}`);
  }
  try {
    const size = (await file.stat()).size;
    if (size < 8) {
      throw new CheckpointError(
        path,
        `file is ${size} bytes, shorter than the 8-byte safetensors header length`,
      );
    }
    const lenBuf = new Uint8Array(8);
    await readAt(file, path, 0, lenBuf, "the header length", opts);
    const n = new DataView(lenBuf.buffer).getBigUint64(0, true);
    if (n > BigInt(MAX_HEADER_BYTES)) {
      throw new CheckpointError(
        path,
        `header length ${n} is absurd (> ${MAX_HEADER_BYTES} bytes): not a safetensors file or corrupt`,
      );
    }
    const headerLen = Number(n);
    if (8 + headerLen > size) {
      throw new CheckpointError(
        path,
        `header length ${headerLen} runs past the end of the file (${size} bytes): truncated or not a safetensors file`,
      );
    }
    if (headerLen < 2) {
      throw new CheckpointError(path, `header length ${headerLen} is too short for a JSON object`);
    }
    const header = new Uint8Array(headerLen);
    await readAt(file, path, 8, header, "the header", opts);
    const { entries, metadata } = parseHeader(path, header, 8 + headerLen, size);
    return new SafetensorsFile(path, file, entries, metadata, opts);
  } catch (e) {
    file.close();
    throw e;
  }
}

function join(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

class ShardedSource implements WeightSource {
  private byName = new Map<string, { shard: SafetensorsSource; info: TensorInfo }>();
  private order: TensorInfo[] = [];

  constructor(readonly path: string, private shards: SafetensorsSource[], weightMap: Map<string, number>) {
    // List order: shard by shard (in the index's order of first appearance), file order within a shard.
    for (let i = 0; i < shards.length; i++) {
      for (const t of shards[i].list()) {
        if (weightMap.get(t.name) !== i) continue;
        this.byName.set(t.name, { shard: shards[i], info: t });
        this.order.push(t);
      }
    }
  }

  list(): TensorInfo[] {
    return this.order.map((t) => ({ ...t, shape: [...t.shape] }));
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const e = this.byName.get(name);
    if (!e) throw new CheckpointError(this.path, `no tensor '${name}' in this checkpoint`);
    return { ...e.info, shape: [...e.info.shape] };
  }

  read(name: string): Promise<Uint8Array> {
    const e = this.byName.get(name);
    if (!e) return Promise.reject(new CheckpointError(this.path, `no tensor '${name}' in this checkpoint`));
    return e.shard.read(name);
  }

  close(): void {
    for (const s of this.shards) s.close();
  }
}

/**
 * Opens a checkpoint directory: `model.safetensors`, or shards listed by
 * `model.safetensors.index.json` (all opened up front so that a missing shard or a tensor absent from
 * its shard is reported now). A path to a .safetensors file is opened as that file.
 */
export async function openCheckpointDir(dir: string): Promise<WeightSource> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(dir);
  } catch {
    throw new CheckpointError(dir, "checkpoint directory not found");
  }
  if (st.isFile) return await openSafetensors(dir);
  const single = join(dir, "model.safetensors");
  if (await isFile(single)) return await openSafetensors(single);
  const indexPath = join(dir, "model.safetensors.index.json");
  if (!(await isFile(indexPath))) {
    throw new CheckpointError(dir, "no model.safetensors or model.safetensors.index.json in this directory");
  }
  let index: unknown;
  try {
    index = JSON.parse(await Deno.readTextFile(indexPath));
  } catch (e) {
    throw new CheckpointError(indexPath, `not valid JSON (${(e as Error).message})`);
  }
  const wm = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof wm !== "object" || wm === null || Array.isArray(wm)) {
    throw new CheckpointError(indexPath, 'no "weight_map" object');
  }
  const shardNames: string[] = [];
  const weightMap = new Map<string, number>();
  for (const [tensor, shard] of Object.entries(wm as Record<string, unknown>)) {
    if (
      typeof shard !== "string" || shard === "" || shard.startsWith("/") ||
      shard.split(/[/\\]/).includes("..")
    ) {
      throw new CheckpointError(
        indexPath,
        `tensor '${tensor}' maps to a bad shard name ${JSON.stringify(shard)}`,
      );
    }
    let i = shardNames.indexOf(shard);
    if (i < 0) i = shardNames.push(shard) - 1;
    weightMap.set(tensor, i);
  }
  if (shardNames.length === 0) throw new CheckpointError(indexPath, "weight_map is empty");
  const shards: SafetensorsSource[] = [];
  try {
    for (const name of shardNames) {
      const p = join(dir, name);
      if (!(await isFile(p))) {
        throw new CheckpointError(indexPath, `names shard '${name}', which does not exist (${p})`);
      }
      shards.push(await openSafetensors(p));
    }
    for (const [tensor, i] of weightMap) {
      if (!shards[i].has(tensor)) {
        throw new CheckpointError(
          indexPath,
          `maps tensor '${tensor}' to shard '${shardNames[i]}', which lacks it`,
        );
      }
    }
  } catch (e) {
    for (const s of shards) s.close();
    throw e;
  }
  return new ShardedSource(dir, shards, weightMap);
}

/** A tensor to write: raw little-endian bytes of `dtype` with `shape`. */
export interface TensorToWrite {
  /** Name in the file's header (unique, not "__metadata__"). */
  name: string;
  /** Storage dtype of `data`. */
  dtype: StDtype;
  /** Shape, outermost first. */
  shape: number[];
  /** Little-endian element bytes (see bytesOf). */
  data: Uint8Array;
}

/** The header + data section bytes a file would hold, without the data itself. */
function buildHeader(path: string, tensors: TensorToWrite[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === "__metadata__" || seen.has(t.name)) {
      throw new CheckpointError(path, `cannot write tensor name '${t.name}' (reserved or duplicate)`);
    }
    seen.add(t.name);
    if (!isDtype(t.dtype)) {
      throw new CheckpointError(path, `tensor '${t.name}': unsupported dtype ${t.dtype}`);
    }
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new CheckpointError(path, `tensor '${t.name}': bad shape ${fmtShape(t.shape)}`);
    }
    const bytes = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== bytes) {
      throw new CheckpointError(
        path,
        `tensor '${t.name}': ${t.data.byteLength} data bytes but ${t.dtype} ${
          fmtShape(t.shape)
        } needs ${bytes}`,
      );
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  // Pad with spaces so that the data section starts 8-byte aligned (as the reference writer does).
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await file.write(data.subarray(off));
}

/**
 * Writes a safetensors file atomically (to `path.tmp-<random>`, then renamed over `path`), tensors in
 * the given order.
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorToWrite[],
  metadata?: Record<string, string>,
): Promise<void> {
  const head = buildHeader(path, tensors, metadata);
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  const file = await Deno.open(tmp, { write: true, createNew: true });
  try {
    await writeAll(file, head);
    for (const t of tensors) await writeAll(file, t.data);
    await file.syncData();
  } catch (e) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  file.close();
  try {
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Little-endian bytes of a typed array (copy), for writeSafetensors. */
export function bytesOf(a: Float32Array | Int32Array | BigInt64Array | Uint16Array): Uint8Array {
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
}
