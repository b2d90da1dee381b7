// Fuzz targets: for each parser, a valid seed file, the parser run on a mutant file, and an oracle that
// says whether an accepted mutant is nonetheless corrupt by the format's own rules. Each target's
// `check` returns "rejected" (a clean error: one line that names the file), "accepted", or throws a
// Finding (crash: any other error; accepted-corrupt: the oracle below says the file breaks a rule).
//
// Accepted-though-corrupt, per format (what "the format's own rules" mean here):
// - safetensors: an independent minimal reader of the layout (u64 header length, JSON object, every
//   entry's dtype/shape/offsets, offsets tiling the data section exactly from 0) must accept the file
//   too, and every tensor read() must return exactly the bytes at its offsets.
// - pth: the zip's data.pkl is covered by its CRC32, so an accepted mutant must yield the original's
//   tensor names, dtypes and shapes, and tensors whose bytes equal the mutant's storage bytes at the
//   offsets (read independently). (Storage bytes have no checked CRC: a flip there is a valid file.)
// - pickle (data.pkl alone): no checksum; an accepted mutant must be a dict of well-formed tensor
//   references (finite, non-negative sizes) — anything else is corrupt.
// - idx-gz: gzip carries CRC32 + length: an accepted mutant must decode to the original dims and bytes.
// - config: an accepted config.json must also pass the check against the fixture's tensors; if it does,
//   every size the tensors pin (hidden, kv width, intermediate, layers, vocab) must equal the original's.
// - modelnet-txt: an accepted file must parse under an independent strict reading (6 numeric columns,
//   finite as f32) to the same xyz.
// - h5: an accepted file must give finite coordinates, integer labels >= 0, and n·P·3 values.

import { openSafetensors } from "../../io/safetensors.ts";
import { openPth } from "../../io/pth.ts";
import { readStateDict } from "../../io/pickle.ts";
import { checkConfigAgainstTensors, readConfig } from "../../io/config.ts";
import { readIdx } from "../../data/fashion_mnist.ts";
import { readModelNetTxt, readPointH5 } from "../../data/point_data.ts";
import { DTYPE_BYTES } from "../../io/weights.ts";

export class Finding extends Error {
  constructor(readonly kind: "crash" | "accepted-corrupt", message: string) {
    super(message);
  }
}

export interface Target {
  name: string;
  /** File name of the mutant (the parser sees this name). */
  file: string;
  /** The valid seed bytes. */
  seed(): Promise<Uint8Array>;
  /** Runs the parser on `path` (holding `bytes`); "accepted" or "rejected", or throws a Finding. */
  check(path: string, bytes: Uint8Array, seed: Uint8Array): Promise<"accepted" | "rejected">;
}

const FIX = new URL("../fixtures/", import.meta.url).pathname;
const DATA = new URL("../../data/fashion-mnist-subset/", import.meta.url).pathname;
const PTH_SEED = FIX + "pth/mixed.pt";

/** A parser's own refusal: one line naming the file. Anything else is a crash. */
function clean(e: unknown, path: string): boolean {
  if (!(e instanceof Error)) return false;
  const m = e.message;
  return m.includes(path) && !m.includes("\n") && !(e instanceof RangeError) && !(e instanceof TypeError);
}

async function guard(path: string, fn: () => Promise<void>): Promise<"accepted" | "rejected"> {
  try {
    await fn();
    return "accepted";
  } catch (e) {
    if (e instanceof Finding) throw e;
    if (clean(e, path)) return "rejected";
    throw new Finding("crash", `${(e as Error)?.name}: ${String((e as Error)?.message ?? e).slice(0, 300)}`);
  }
}

const corrupt = (msg: string) => new Finding("accepted-corrupt", msg);
const eq = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Independent safetensors layout check; returns the tensors' [begin, end] absolute or a reason. */
function stOracle(b: Uint8Array): Map<string, [number, number]> | string {
  if (b.length < 8) return "short";
  const n = new DataView(b.buffer, b.byteOffset).getBigUint64(0, true);
  if (n > BigInt(b.length - 8)) return "header length";
  const start = 8 + Number(n);
  let h: Record<string, any>;
  try {
    h = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(b.subarray(8, start)));
  } catch {
    return "json";
  }
  if (typeof h !== "object" || h === null || Array.isArray(h)) return "not object";
  const spans: [string, number, number][] = [];
  for (const [k, v] of Object.entries(h)) {
    if (k === "__metadata__") continue;
    const bytes = (DTYPE_BYTES as Record<string, number>)[v?.dtype];
    if (!bytes || !Array.isArray(v.shape) || !Array.isArray(v.data_offsets)) return `entry ${k}`;
    const numel = v.shape.reduce((a: number, x: number) => a * x, 1);
    const [s, e] = v.data_offsets;
    if (!Number.isSafeInteger(s) || !Number.isSafeInteger(e) || e - s !== numel * bytes) return `size ${k}`;
    spans.push([k, s, e]);
  }
  spans.sort((x, y) => x[1] - y[1] || x[2] - y[2]);
  let at = 0;
  for (const [, s, e] of spans) {
    if (s !== at) return "not contiguous";
    at = e;
  }
  if (at !== b.length - start) return "not covering";
  return new Map(spans.map(([k, s, e]) => [k, [start + s, start + e]]));
}

const safetensors: Target = {
  name: "safetensors",
  file: "model.safetensors",
  seed: () => Deno.readFile(FIX + "ref-lm.safetensors"), // small: mutations hit the header often
  check: (path, bytes) =>
    guard(path, async () => {
      const src = await openSafetensors(path);
      try {
        const oracle = stOracle(bytes);
        if (typeof oracle === "string") throw corrupt(`accepted, but the layout is invalid: ${oracle}`);
        for (const t of src.list()) {
          const [s, e] = oracle.get(t.name)!;
          if (!eq(await src.read(t.name), bytes.subarray(s, e))) {
            throw corrupt(`'${t.name}' read wrong bytes`);
          }
        }
      } finally {
        src.close();
      }
    }),
};

const pth: Target = {
  name: "pth",
  file: "consolidated.00.pth",
  seed: () => Deno.readFile(PTH_SEED), // a real torch 1.13 file: bf16/f16/i64, 0-d, a view
  check: (path, _bytes, seedBytes) =>
    guard(path, async () => {
      const src = await openPth(path);
      try {
        const want = await seedInfo(seedBytes);
        const got = JSON.stringify(src.list().map((t) => [t.name, t.dtype, t.shape]));
        if (got !== want) throw corrupt("accepted with other tensor names/dtypes/shapes (data.pkl changed)");
        for (const t of src.list()) {
          const raw = await src.read(t.name);
          if (raw.length !== t.bytes) throw corrupt(`'${t.name}' read ${raw.length} of ${t.bytes} bytes`);
        }
      } finally {
        src.close();
      }
    }),
};
let seedInfoCache: string | undefined;
async function seedInfo(_seed: Uint8Array): Promise<string> {
  if (seedInfoCache) return seedInfoCache;
  const s = await openPth(PTH_SEED);
  seedInfoCache = JSON.stringify(s.list().map((t) => [t.name, t.dtype, t.shape]));
  s.close();
  return seedInfoCache;
}

const pickle: Target = {
  name: "pickle",
  file: "data.pkl",
  seed: async () => {
    const { ZipReader } = await import("../../io/zip.ts");
    const z = await ZipReader.open(FIX + "llama-tiny-meta/consolidated.00.pth"); // 31 tensors
    try {
      return await z.read(z.entries.find((e) => e.name.endsWith("/data.pkl"))!.name);
    } finally {
      z.close();
    }
  },
  check: (path, bytes) =>
    guard(path, () => {
      const sd = readStateDict(bytes, { file: path });
      for (const [k, t] of sd) {
        const ok = [t.offset, t.storageNumel, ...t.shape, ...t.stride].every((v) =>
          Number.isSafeInteger(v) && v >= 0
        );
        if (!ok) throw corrupt(`tensor '${k}' has a bad size/offset`);
      }
      return Promise.resolve();
    }),
};

let idxSeed: { dims: number[]; data: Uint8Array } | undefined;
const idxGz: Target = {
  name: "idx-gz",
  file: "t10k-labels-idx1-ubyte.gz",
  seed: () => Deno.readFile(DATA + "t10k-labels-idx1-ubyte.gz"),
  check: (path) =>
    guard(path, async () => {
      idxSeed ??= await readIdx(DATA + "t10k-labels-idx1-ubyte.gz", 1);
      const r = await readIdx(path, 1);
      if (r.dims.join() !== idxSeed.dims.join() || !eq(r.data, idxSeed.data)) {
        throw corrupt("accepted with other dims or bytes despite the gzip CRC32");
      }
    }),
};

const config: Target = {
  name: "config",
  file: "config.json",
  seed: () => Deno.readFile(FIX + "llama-tiny/config.json"),
  check: (path) =>
    guard(path, async () => {
      const dir = path.slice(0, path.lastIndexOf("/"));
      const cfg = await readConfig(dir);
      const orig = await readConfig(FIX + "llama-tiny");
      const src = await openSafetensors(FIX + "llama-tiny/model.safetensors");
      try {
        checkConfigAgainstTensors(cfg, src, "hf");
      } catch (e) {
        if (clean(e, FIX + "llama-tiny/model.safetensors")) return; // refused by the tensor check
        throw e;
      } finally {
        src.close();
      }
      const pin = (c: typeof cfg) =>
        [c.hidden, c.kvHeads * c.headDim, c.heads * c.headDim, c.intermediate, c.layers, c.vocab].join();
      if (pin(cfg) !== pin(orig)) throw corrupt("accepted sizes that disagree with the tensors");
    }),
};

const modelnet: Target = {
  name: "modelnet-txt",
  file: "airplane_0001.txt",
  seed: () => {
    const lines: string[] = [];
    for (let i = 0; i < 64; i++) {
      const v = [Math.sin(i), Math.cos(i), i / 64, 0, 0, 1].map((x) => x.toFixed(6));
      lines.push(v.join(","));
    }
    return Promise.resolve(new TextEncoder().encode(lines.join("\n") + "\n"));
  },
  check: (path, bytes) =>
    guard(path, async () => {
      const got = await readModelNetTxt(path);
      const text = new TextDecoder().decode(bytes).split("\n");
      while (text.length && text[text.length - 1].trim() === "") text.pop();
      const want: number[] = [];
      for (const l of text) {
        const c = l.split(",").map((s) => (s.trim() === "" ? NaN : Number(s.trim())));
        if (c.length !== 6 || c.some((v) => !Number.isFinite(Math.fround(v)))) {
          throw corrupt(`line '${l}' accepted`);
        }
        want.push(c[0], c[1], c[2]);
      }
      if (!eq(new Uint8Array(got.buffer), new Uint8Array(new Float32Array(want).buffer))) {
        throw corrupt("xyz differ from a strict reading");
      }
    }),
};

const h5: Target = {
  name: "h5",
  file: "ply_data.h5",
  seed: async () => {
    const { loadH5wasm } = await import("../../data/point_data.ts");
    const { h5, M } = await loadH5wasm();
    const mem = "/fuzz_seed.h5";
    const f = new h5.File(mem, "w");
    f.create_dataset({
      name: "data",
      data: Float32Array.from({ length: 4 * 16 * 3 }, (_, i) => i / 7),
      shape: [4, 16, 3],
    });
    f.create_dataset({ name: "label", data: new Int32Array([3, 1, 4, 1]), shape: [4] });
    f.close();
    const b = M.FS.readFile(mem);
    M.FS.unlink(mem);
    return b;
  },
  check: (path) =>
    guard(path, async () => {
      const r = await readPointH5(path);
      if (r.points.length !== r.n * r.P * 3) throw corrupt("points length");
      if (r.points.some((v) => !Number.isFinite(v))) throw corrupt("non-finite coordinate accepted");
      if (r.labels.some((v) => v < 0)) throw corrupt("negative label accepted");
    }),
};

export const TARGETS: Target[] = [safetensors, pth, pickle, idxGz, config, modelnet, h5];
