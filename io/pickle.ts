// A restricted unpickler for torch.save's data.pkl. It interprets the opcodes that a state dict uses
// and knows a short allowlist of globals; it never imports, calls or evaluates anything. Any other
// global (os.system, builtins.eval, torch.nn.modules.linear.Linear, numpy...) is refused at the opcode
// that names it, with an error naming module.name and the file.
//
// Values: None → null, bool, int → number (bigint past 2^53), float → number, str → string,
// bytes → Uint8Array, list → array, tuple → frozen array, dict / OrderedDict → Map. A tensor
// (torch._utils._rebuild_tensor_v2 over a persistent-id storage) becomes a TensorRef.

import { CheckpointError, type StDtype } from "./weights.ts";

/** Element types of torch storages: safetensors' names, plus F64 (DoubleStorage) which readers refuse. */
export type StorageDtype = StDtype | "F64";

export const STORAGE_TYPES: Record<string, StorageDtype> = {
  "torch.FloatStorage": "F32",
  "torch.HalfStorage": "F16",
  "torch.BFloat16Storage": "BF16",
  "torch.DoubleStorage": "F64",
  "torch.LongStorage": "I64",
  "torch.IntStorage": "I32",
};

export const STORAGE_BYTES: Record<StorageDtype, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I64: 8,
  I32: 4,
};

/** A storage named by a persistent id ('storage', StorageType, key, location, numel). */
export interface StorageRef {
  readonly kind: "storage";
  key: string;
  dtype: StorageDtype;
  location: string;
  /** Elements in the storage. */
  numel: number;
}

/** A tensor view of a storage, as _rebuild_tensor_v2 describes it (offset, shape, stride in elements). */
export interface TensorRef {
  readonly kind: "tensor";
  storageKey: string;
  storageDtype: StorageDtype;
  storageNumel: number;
  location: string;
  offset: number;
  shape: number[];
  stride: number[];
}

/** A resolved allowlisted global (the only callables a pickle may name). */
class Global {
  constructor(readonly qualname: string) {}
}
class StorageType {
  constructor(readonly qualname: string, readonly dtype: StorageDtype) {}
}

const CALLABLES = new Set([
  "collections.OrderedDict",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_tensor",
  "torch._utils._rebuild_parameter",
]);

/** Every global the unpickler accepts. */
export const ALLOWED_GLOBALS: readonly string[] = [...CALLABLES, ...Object.keys(STORAGE_TYPES)];

export interface UnpickleOptions {
  /** File named in errors. */
  file: string;
  /** Entry of the file (e.g. "archive/data.pkl"), named in errors. */
  entry?: string;
}

// deno-fmt-ignore
const OP = {
  MARK: 0x28, STOP: 0x2e, POP: 0x30, POP_MARK: 0x31, DUP: 0x32, BINFLOAT: 0x47, BININT: 0x4a,
  BININT1: 0x4b, BININT2: 0x4d, NONE: 0x4e, BINPERSID: 0x51, REDUCE: 0x52, BINSTRING: 0x54,
  SHORT_BINSTRING: 0x55, BINUNICODE: 0x58, APPEND: 0x61, BUILD: 0x62, GLOBAL: 0x63, DICT: 0x64,
  APPENDS: 0x65, BINGET: 0x68, LONG_BINGET: 0x6a, LIST: 0x6c, BINPUT: 0x71, LONG_BINPUT: 0x72,
  SETITEM: 0x73, TUPLE: 0x74, SETITEMS: 0x75, EMPTY_DICT: 0x7d, EMPTY_LIST: 0x5d, EMPTY_TUPLE: 0x29,
  BINBYTES: 0x42, SHORT_BINBYTES: 0x43, PROTO: 0x80, TUPLE1: 0x85, TUPLE2: 0x86, TUPLE3: 0x87,
  NEWTRUE: 0x88, NEWFALSE: 0x89, LONG1: 0x8a, LONG4: 0x8b, SHORT_BINUNICODE: 0x8c, BINUNICODE8: 0x8d,
  BINBYTES8: 0x8e, STACK_GLOBAL: 0x93, MEMOIZE: 0x94, FRAME: 0x95,
} as const;

/** Longest LONG4 integer accepted, in bytes (LONG1 allows up to 255 anyway). */
const MAX_LONG_BYTES = 64;
const HEX_BYTE: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

const OP_NAMES: Record<number, string> = Object.fromEntries(Object.entries(OP).map(([k, v]) => [v, k]));

/** Interprets a pickle (protocols 2–5, restricted as above) and returns its top value. */
export function unpickle(data: Uint8Array, opts: UnpickleOptions): unknown {
  try {
    return new Unpickler(data, opts).run();
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    // A safety net: the interpreter is iterative and bounds every length, so an engine limit (a
    // RangeError) here is a bug, but it is still this file's fault and must name it.
    const where = opts.entry ? `${opts.entry}: ` : "";
    throw new CheckpointError(opts.file, `${where}pickle cannot be read (${(e as Error).message})`);
  }
}

/**
 * Unpickles a torch.save state dict: a dict / OrderedDict of name → tensor. Any value that is not a
 * tensor is an error naming its key. With `stateKeys`, a top dict holding one of those keys (the first
 * present, e.g. VideoMAE's {"model": state_dict, "epoch": ...}) yields that entry instead.
 */
export function readStateDict(
  data: Uint8Array,
  opts: UnpickleOptions,
  stateKeys: readonly string[] = [],
): Map<string, TensorRef> {
  const where = opts.entry ? `${opts.entry}: ` : "";
  let top = unpickle(data, opts);
  if (top instanceof Map) {
    const dict = top;
    const key = stateKeys.find((k) => dict.has(k));
    if (key !== undefined) top = dict.get(key);
  }
  if (!(top instanceof Map)) {
    throw new CheckpointError(
      opts.file,
      `${where}pickle holds ${describe(top)}, not a state dict (a dict of tensors)`,
    );
  }
  const out = new Map<string, TensorRef>();
  for (const [k, v] of top) {
    if (typeof k !== "string") {
      throw new CheckpointError(opts.file, `${where}state dict key ${describe(k)} is not a string`);
    }
    if (!isTensorRef(v)) {
      throw new CheckpointError(opts.file, `${where}state dict entry '${k}' is ${describe(v)}, not a tensor`);
    }
    out.set(k, v);
  }
  return out;
}

export function isTensorRef(v: unknown): v is TensorRef {
  return typeof v === "object" && v !== null && (v as TensorRef).kind === "tensor";
}

function isStorageRef(v: unknown): v is StorageRef {
  return typeof v === "object" && v !== null && (v as StorageRef).kind === "storage";
}

function describe(v: unknown): string {
  if (v === null) return "None";
  if (v instanceof Map) return "a dict";
  if (Array.isArray(v)) return Object.isFrozen(v) ? `a tuple of ${v.length}` : `a list of ${v.length}`;
  if (v instanceof Uint8Array) return "bytes";
  if (v instanceof Global || v instanceof StorageType) return `global ${v.qualname}`;
  if (isTensorRef(v)) return "a tensor";
  if (isStorageRef(v)) return "a storage";
  if (typeof v === "string") return `the string '${v.length > 40 ? v.slice(0, 40) + "…" : v}'`;
  return `${typeof v} ${String(v)}`;
}

function isIntArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && x >= 0);
}

class Unpickler {
  private pos = 0;
  private stack: unknown[] = [];
  private readonly metastack: unknown[][] = [];
  private readonly memo = new Map<number, unknown>();
  private readonly dv: DataView;
  private opAt = 0;

  constructor(private readonly data: Uint8Array, private readonly opts: UnpickleOptions) {
    this.dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  private fail(msg: string): never {
    const where = this.opts.entry ? `${this.opts.entry}: ` : "";
    throw new CheckpointError(this.opts.file, `${where}${msg}`);
  }

  private need(n: number): number {
    if (n < 0 || this.pos + n > this.data.length) {
      this.fail(
        `pickle truncated: ${
          OP_NAMES[this.data[this.opAt]] ?? "opcode"
        } at offset ${this.opAt} needs ${n} more bytes`,
      );
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }
  private u8(): number {
    return this.data[this.need(1)];
  }
  private u16(): number {
    return this.dv.getUint16(this.need(2), true);
  }
  private i32(): number {
    return this.dv.getInt32(this.need(4), true);
  }
  private u32(): number {
    return this.dv.getUint32(this.need(4), true);
  }
  /** A 64-bit length field, bounded by the bytes that remain (so no work is proportional to a lie). */
  private u64(): number {
    const v = this.dv.getBigUint64(this.need(8), true);
    if (v > BigInt(this.data.length - this.pos)) {
      this.fail(
        `pickle truncated: length ${v} at offset ${this.opAt} exceeds the ${
          this.data.length - this.pos
        } bytes that remain`,
      );
    }
    return Number(v);
  }
  private bytes(n: number): Uint8Array {
    const at = this.need(n);
    return this.data.subarray(at, at + n);
  }
  private utf8(n: number): string {
    return new TextDecoder("utf-8", { fatal: false }).decode(this.bytes(n));
  }
  private line(): string {
    // Search a bounded window, so that a GLOBAL without a newline costs O(1 KB), not O(file).
    const at = this.data.subarray(this.pos, this.pos + 1025).indexOf(0x0a);
    const end = at < 0 ? -1 : this.pos + at;
    if (end < 0) {
      this.fail(`pickle truncated: unterminated line at offset ${this.pos}`);
    }
    const s = new TextDecoder().decode(this.data.subarray(this.pos, end));
    this.pos = end + 1;
    return s;
  }

  private pop(): unknown {
    if (this.stack.length === 0) this.fail(`pickle stack underflow at offset ${this.opAt}`);
    return this.stack.pop();
  }
  private top(): unknown {
    if (this.stack.length === 0) this.fail(`pickle stack underflow at offset ${this.opAt}`);
    return this.stack[this.stack.length - 1];
  }
  /** Items pushed since the last MARK (and drops the mark). */
  private popMark(): unknown[] {
    const items = this.stack;
    const prev = this.metastack.pop();
    if (!prev) this.fail(`pickle has no MARK for the opcode at offset ${this.opAt}`);
    this.stack = prev;
    return items;
  }
  private tuple(items: unknown[]): unknown[] {
    return Object.freeze(items) as unknown[];
  }
  private put(idx: number): void {
    this.memo.set(idx, this.top());
  }
  private get(idx: number): unknown {
    if (!this.memo.has(idx)) this.fail(`pickle memo ${idx} is not set (offset ${this.opAt})`);
    return this.memo.get(idx);
  }
  private list(): unknown[] {
    const l = this.top();
    if (!Array.isArray(l) || Object.isFrozen(l)) {
      this.fail(`pickle appends to ${describe(l)} at offset ${this.opAt}`);
    }
    return l;
  }
  private dict(): Map<unknown, unknown> {
    const d = this.top();
    if (!(d instanceof Map)) this.fail(`pickle sets items on ${describe(d)} at offset ${this.opAt}`);
    return d;
  }
  /**
   * A little-endian two's-complement integer of n bytes (LONG1/LONG4). Built from one hex string, which
   * is linear in n (shifting a growing BigInt byte by byte was quadratic: 200 kB took minutes).
   */
  private long(n: number): number | bigint {
    const b = this.bytes(n);
    if (n === 0) return 0;
    let hex = "";
    for (let i = n - 1; i >= 0; i--) hex += HEX_BYTE[b[i]];
    let v = BigInt("0x" + hex);
    if (b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  private resolve(module: string, name: string): Global | StorageType {
    const q = `${module}.${name}`;
    const st = STORAGE_TYPES[q];
    if (st) return new StorageType(q, st);
    if (CALLABLES.has(q)) return new Global(q);
    this.fail(
      `pickle refers to global '${q}' (offset ${this.opAt}), which is not allowed: refusing to load it. ` +
        `Only plain tensor state dicts are read (allowed globals: ${ALLOWED_GLOBALS.join(", ")})`,
    );
  }

  private reduce(fn: unknown, args: unknown): unknown {
    if (!Array.isArray(args)) this.fail(`REDUCE at offset ${this.opAt} with arguments ${describe(args)}`);
    if (!(fn instanceof Global)) {
      this.fail(`REDUCE at offset ${this.opAt} calls ${describe(fn)}, which is not callable`);
    }
    switch (fn.qualname) {
      case "collections.OrderedDict": {
        const d = new Map<unknown, unknown>();
        if (args.length === 0) return d;
        const pairs = args[0];
        if (args.length === 1 && Array.isArray(pairs)) {
          for (const p of pairs) {
            if (!Array.isArray(p) || p.length !== 2) {
              this.fail(`OrderedDict(...) at offset ${this.opAt}: items must be pairs`);
            }
            d.set(p[0], p[1]);
          }
          return d;
        }
        return this.fail(`OrderedDict(...) at offset ${this.opAt} with unsupported arguments`);
      }
      case "torch._utils._rebuild_tensor":
      case "torch._utils._rebuild_tensor_v2":
        return this.tensor(fn.qualname, args);
      case "torch._utils._rebuild_parameter": {
        // (data, requires_grad, backward_hooks): a Parameter is its tensor here.
        if (!isTensorRef(args[0])) {
          this.fail(`_rebuild_parameter at offset ${this.opAt} of ${describe(args[0])}`);
        }
        return args[0];
      }
    }
    return this.fail(`REDUCE at offset ${this.opAt}: ${fn.qualname} is not callable`);
  }

  private tensor(fn: string, args: unknown[]): TensorRef {
    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    const [storage, offset, shape, stride] = args;
    const minArgs = fn.endsWith("_v2") ? 6 : 4;
    if (args.length < minArgs) {
      this.fail(`${fn} at offset ${this.opAt} has ${args.length} arguments, expected ${minArgs}`);
    }
    if (!isStorageRef(storage)) this.fail(`${fn} at offset ${this.opAt}: storage is ${describe(storage)}`);
    if (!Number.isSafeInteger(offset) || (offset as number) < 0) {
      this.fail(`${fn} at offset ${this.opAt}: bad storage offset ${describe(offset)}`);
    }
    if (!isIntArray(shape) || !isIntArray(stride) || shape.length !== stride.length) {
      this.fail(`${fn} at offset ${this.opAt}: bad size/stride ${describe(shape)} / ${describe(stride)}`);
    }
    return {
      kind: "tensor",
      storageKey: storage.key,
      storageDtype: storage.dtype,
      storageNumel: storage.numel,
      location: storage.location,
      offset: offset as number,
      shape: [...shape],
      stride: [...stride],
    };
  }

  private persistentLoad(pid: unknown): StorageRef {
    if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== "storage") {
      this.fail(
        `persistent id at offset ${this.opAt} is ${
          describe(pid)
        }, not ('storage', type, key, location, numel)`,
      );
    }
    const [, type, key, location, numel] = pid;
    if (!(type instanceof StorageType)) {
      this.fail(`persistent id at offset ${this.opAt}: storage type is ${describe(type)}`);
    }
    if (typeof key !== "string" && !Number.isSafeInteger(key)) {
      this.fail(`persistent id at offset ${this.opAt}: key is ${describe(key)}`);
    }
    if (typeof location !== "string") {
      this.fail(`persistent id at offset ${this.opAt}: location is ${describe(location)}`);
    }
    if (!Number.isSafeInteger(numel) || (numel as number) < 0) {
      this.fail(`persistent id at offset ${this.opAt}: numel is ${describe(numel)}`);
    }
    return { kind: "storage", key: String(key), dtype: type.dtype, location, numel: numel as number };
  }

  run(): unknown {
    const d = this.data;
    while (true) {
      if (this.pos >= d.length) this.fail(`pickle truncated: no STOP opcode (ended at offset ${this.pos})`);
      this.opAt = this.pos;
      const op = d[this.pos++];
      switch (op) {
        case OP.PROTO: {
          const v = this.u8();
          if (v > 5) this.fail(`unsupported pickle protocol ${v}`);
          break;
        }
        case OP.FRAME:
          this.u64(); // frames only group opcodes; the data is contiguous anyway
          break;
        case OP.STOP:
          return this.pop();
        case OP.MARK:
          this.metastack.push(this.stack);
          this.stack = [];
          break;
        case OP.POP:
          if (this.stack.length) this.stack.pop();
          else this.popMark();
          break;
        case OP.POP_MARK:
          this.popMark();
          break;
        case OP.DUP:
          this.stack.push(this.top());
          break;
        case OP.NONE:
          this.stack.push(null);
          break;
        case OP.NEWTRUE:
          this.stack.push(true);
          break;
        case OP.NEWFALSE:
          this.stack.push(false);
          break;
        case OP.BININT:
          this.stack.push(this.i32());
          break;
        case OP.BININT1:
          this.stack.push(this.u8());
          break;
        case OP.BININT2:
          this.stack.push(this.u16());
          break;
        case OP.LONG1:
          this.stack.push(this.long(this.u8()));
          break;
        case OP.LONG4: {
          const n = this.i32();
          if (n < 0) this.fail(`LONG4 with negative length at offset ${this.opAt}`);
          // A state dict's integers (sizes, offsets, numel) fit in 8 bytes; LONG4 is for > 255 bytes.
          if (n > MAX_LONG_BYTES) {
            this.fail(
              `LONG4 at offset ${this.opAt} holds a ${n}-byte integer (more than ${MAX_LONG_BYTES} bytes is not ` +
                `a tensor size or offset): refusing it`,
            );
          }
          this.stack.push(this.long(n));
          break;
        }
        case OP.BINFLOAT:
          this.stack.push(this.dv.getFloat64(this.need(8), false));
          break;
        case OP.SHORT_BINUNICODE:
          this.stack.push(this.utf8(this.u8()));
          break;
        case OP.BINUNICODE:
          this.stack.push(this.utf8(this.u32()));
          break;
        case OP.BINUNICODE8:
          this.stack.push(this.utf8(this.u64()));
          break;
        case OP.SHORT_BINSTRING: // Python 2 str, read as latin-1
          this.stack.push(String.fromCharCode(...this.bytes(this.u8())));
          break;
        case OP.BINSTRING: {
          const n = this.i32();
          this.stack.push(new TextDecoder("latin1").decode(this.bytes(n)));
          break;
        }
        case OP.SHORT_BINBYTES:
          this.stack.push(this.bytes(this.u8()).slice());
          break;
        case OP.BINBYTES:
          this.stack.push(this.bytes(this.u32()).slice());
          break;
        case OP.BINBYTES8:
          this.stack.push(this.bytes(this.u64()).slice());
          break;
        case OP.EMPTY_DICT:
          this.stack.push(new Map());
          break;
        case OP.EMPTY_LIST:
          this.stack.push([]);
          break;
        case OP.EMPTY_TUPLE:
          this.stack.push(this.tuple([]));
          break;
        case OP.TUPLE: {
          const items = this.popMark(); // (before naming this.stack: popMark replaces it)
          this.stack.push(this.tuple(items));
          break;
        }
        case OP.TUPLE1: {
          const a = this.pop();
          this.stack.push(this.tuple([a]));
          break;
        }
        case OP.TUPLE2: {
          const b = this.pop(), a = this.pop();
          this.stack.push(this.tuple([a, b]));
          break;
        }
        case OP.TUPLE3: {
          const c = this.pop(), b = this.pop(), a = this.pop();
          this.stack.push(this.tuple([a, b, c]));
          break;
        }
        case OP.LIST: {
          const items = this.popMark();
          this.stack.push(items);
          break;
        }
        case OP.APPEND: {
          const v = this.pop();
          this.list().push(v);
          break;
        }
        case OP.APPENDS: {
          const items = this.popMark();
          // one at a time: push(...items) overflows the call stack past ~100k items
          const l = this.list();
          for (const it of items) l.push(it);
          break;
        }
        case OP.DICT: {
          const items = this.popMark();
          if (items.length % 2) this.fail(`DICT at offset ${this.opAt} with an odd number of items`);
          const m = new Map<unknown, unknown>();
          for (let i = 0; i < items.length; i += 2) m.set(items[i], items[i + 1]);
          this.stack.push(m);
          break;
        }
        case OP.SETITEM: {
          const v = this.pop(), k = this.pop();
          this.dict().set(k, v);
          break;
        }
        case OP.SETITEMS: {
          const items = this.popMark();
          if (items.length % 2) this.fail(`SETITEMS at offset ${this.opAt} with an odd number of items`);
          const m = this.dict();
          for (let i = 0; i < items.length; i += 2) m.set(items[i], items[i + 1]);
          break;
        }
        case OP.BINPUT:
          this.put(this.u8());
          break;
        case OP.LONG_BINPUT:
          this.put(this.u32());
          break;
        case OP.MEMOIZE:
          this.put(this.memo.size);
          break;
        case OP.BINGET:
          this.stack.push(this.get(this.u8()));
          break;
        case OP.LONG_BINGET:
          this.stack.push(this.get(this.u32()));
          break;
        case OP.GLOBAL: {
          const module = this.line(), name = this.line();
          this.stack.push(this.resolve(module, name));
          break;
        }
        case OP.STACK_GLOBAL: {
          const name = this.pop(), module = this.pop();
          if (typeof name !== "string" || typeof module !== "string") {
            this.fail(`STACK_GLOBAL at offset ${this.opAt} with non-string names`);
          }
          this.stack.push(this.resolve(module, name));
          break;
        }
        case OP.REDUCE: {
          const args = this.pop(), fn = this.pop();
          this.stack.push(this.reduce(fn, args));
          break;
        }
        case OP.BUILD: {
          const state = this.pop(), obj = this.top();
          // OrderedDict state (a state dict's `_metadata` attribute) is dropped; nothing else takes state.
          if (!(obj instanceof Map) || !(state === null || state instanceof Map)) {
            this.fail(
              `BUILD at offset ${this.opAt} sets ${describe(state)} on ${describe(obj)} (not supported)`,
            );
          }
          break;
        }
        case OP.BINPERSID:
          this.stack.push(this.persistentLoad(this.pop()));
          break;
        default: {
          const ch = op >= 0x20 && op < 0x7f ? ` ('${String.fromCharCode(op)}')` : "";
          this.fail(
            `unsupported pickle opcode 0x${op.toString(16).padStart(2, "0")}${ch} at offset ${this.opAt}`,
          );
        }
      }
    }
  }
}
