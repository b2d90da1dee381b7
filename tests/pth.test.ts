// torch.save zips (models/zip.ts, models/pth.ts): the Meta-layout fixture against its HF safetensors
// twin (names mapped, q/k rows permuted), real PyTorch 1.13 files (bf16/f16/i64, views with storage
// offsets, transposed views), Zip64 and deflated zips, and the error cases, each naming the file.

import {
  assert,
  assertDeepEquals,
  assertEquals,
  assertOk,
  assertRejectsMsg,
  assertThrowsMsg,
  test,
} from "./testing.ts";
import { metaToHfName, openMetaCheckpoint, openPth, permuteMetaQK } from "../io/pth.ts";
import { ZipReader } from "../io/zip.ts";
import { type StDtype, type TensorInfo, toFloat32, toU16 } from "../io/weights.ts";
import {
  f32Bytes,
  type FakeTensor,
  PickleWriter,
  stateDictPickle,
  torchZip,
  zip64,
} from "./fixtures/pth/build.ts";
import { zipSync } from "fflate";
import { fromF16, toF16 } from "../compiler/core/dtype.ts";

const FIX = new URL("./fixtures/", import.meta.url).pathname;
const META_DIR = FIX + "llama-tiny-meta";
const META = META_DIR + "/consolidated.00.pth";
const HF = FIX + "llama-tiny/model.safetensors";
const PTH = FIX + "pth/";
const HEADS = 4, HEAD_DIM = 16, HIDDEN = 64;

/** A minimal safetensors reader for the reference values (the real one lives in models/safetensors.ts). */
function readSafetensors(path: string): Map<string, { info: TensorInfo; raw: Uint8Array }> {
  const buf = Deno.readFileSync(path);
  const n = Number(new DataView(buf.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n)));
  const out = new Map<string, { info: TensorInfo; raw: Uint8Array }>();
  for (const [name, t] of Object.entries(header) as [string, any][]) {
    if (name === "__metadata__") continue;
    const raw = buf.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]);
    out.set(name, { info: { name, dtype: t.dtype as StDtype, shape: t.shape, bytes: raw.length }, raw });
  }
  return out;
}

const tmpDirs: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const d of tmpDirs) Deno.removeSync(d, { recursive: true });
});
async function tmpDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "pth-test-" });
  tmpDirs.push(dir);
  return dir;
}

async function tmpFile(bytes: Uint8Array, name = "t.pth"): Promise<string> {
  const dir = await tmpDir();
  const path = `${dir}/${name}`;
  await Deno.writeFile(path, bytes);
  return path;
}

function fake(over: Partial<FakeTensor> = {}): FakeTensor {
  return {
    name: "w",
    storage: "FloatStorage",
    key: "0",
    numel: 6,
    offset: 0,
    shape: [2, 3],
    stride: [3, 1],
    ...over,
  };
}

/** A one-tensor torch.save-like zip: data.pkl + data/0 holding f32 values 0..n-1. */
function onePth(t: FakeTensor, storageValues = 6, extra: Record<string, Uint8Array> = {}): Uint8Array {
  return torchZip("p", {
    "data.pkl": stateDictPickle([t]),
    "data/0": f32Bytes([...Array(storageValues).keys()]),
    ...extra,
  });
}

test("pth: the Meta fixture lists llama-tiny's tensors (mapped names, same shapes), fp16", async () => {
  const hf = readSafetensors(HF);
  const src = await openPth(META);
  try {
    assertEquals(src.path, META);
    const list = src.list();
    assertEquals(list.length, 31);
    const mapped = new Set<string>();
    for (const t of list) {
      assertEquals(t.dtype, "F16");
      const h = metaToHfName(t.name);
      if (t.name === "rope.freqs") {
        assertEquals(h, undefined);
        continue;
      }
      assertOk(h && hf.has(h), `${t.name} → ${h} is in the HF file`);
      assertDeepEquals(t.shape, hf.get(h!)!.info.shape, t.name);
      assertEquals(t.bytes, t.shape.reduce((a, b) => a * b, 1) * 2);
      mapped.add(h!);
    }
    assertEquals(mapped.size, hf.size, "every HF tensor has a Meta twin");
    assertOk(src.has("layers.2.ffn_norm.weight") && !src.has("model.norm.weight"));
    assertDeepEquals(src.info("layers.0.feed_forward.w2.weight").shape, [64, 172]);
    assertThrowsMsg(() => src.info("nope.weight"), META, "'nope.weight'");
    await assertRejectsMsg(() => src.read("nope.weight"), META, "'nope.weight'");
  } finally {
    src.close();
  }
});

test("pth: every tensor decodes to the HF fp32 values (wq/wk after permuteMetaQK), concurrently read", async () => {
  const hf = readSafetensors(HF);
  const src = await openPth(META);
  try {
    const list = src.list().filter((t) => t.name !== "rope.freqs");
    const raws = await Promise.all(list.map((t) => src.read(t.name))); // reads are serialized inside
    let qk = 0, norms = 0;
    list.forEach((t, i) => {
      const h = hf.get(metaToHfName(t.name)!)!;
      assertEquals(raws[i].byteLength, t.bytes);
      let got = toFloat32(t, raws[i]);
      if (/attention\.w[qk]\.weight$/.test(t.name)) {
        const unpermuted = got;
        got = permuteMetaQK(got, HEADS, HEAD_DIM, HIDDEN);
        // the permutation is needed: Meta's rows differ from HF's
        assert.notDeepStrictEqual(unpermuted, toFloat32(h.info, h.raw), `${t.name} differs before permuting`);
        // and 16-bit words permute the same way without decoding
        const words = permuteMetaQK(toU16(raws[i]), HEADS, HEAD_DIM, HIDDEN);
        assertDeepEquals(toFloat32(t, new Uint8Array(words.buffer)), got);
        // and so do the raw bytes, given the dtype (what a WeightSource's read() returns)
        assertDeepEquals(toFloat32(t, permuteMetaQK(raws[i], t.dtype, HEADS, HEAD_DIM, HIDDEN)), got);
        qk++;
      }
      let want = toFloat32(h.info, h.raw);
      if (/norm\.weight$/.test(t.name)) {
        // The fixture's RMSNorm weights (≈1) are not fp16-exact in the HF fp32 file (SOURCE.md says all
        // weights are): the fp16 .pth holds them rounded to nearest fp16, at most half an ulp (2^-11) off.
        const rounded = want.map((v) => fromF16(toF16(v)));
        for (let j = 0; j < want.length; j++) assertOk(Math.abs(rounded[j] - want[j]) <= 2 ** -11, t.name);
        want = rounded;
        norms++;
      }
      assertDeepEquals(got, want, t.name);
    });
    assertEquals(qk, 6);
    assertEquals(norms, 7);
  } finally {
    src.close();
  }
});

test("pth: metaToHfName and permuteMetaQK", () => {
  const table: [string, string | undefined][] = [
    ["tok_embeddings.weight", "model.embed_tokens.weight"],
    ["norm.weight", "model.norm.weight"],
    ["output.weight", "lm_head.weight"],
    ["layers.0.attention.wq.weight", "model.layers.0.self_attn.q_proj.weight"],
    ["layers.12.attention.wk.weight", "model.layers.12.self_attn.k_proj.weight"],
    ["layers.3.attention.wv.weight", "model.layers.3.self_attn.v_proj.weight"],
    ["layers.3.attention.wo.weight", "model.layers.3.self_attn.o_proj.weight"],
    ["layers.31.feed_forward.w1.weight", "model.layers.31.mlp.gate_proj.weight"],
    ["layers.31.feed_forward.w2.weight", "model.layers.31.mlp.down_proj.weight"],
    ["layers.31.feed_forward.w3.weight", "model.layers.31.mlp.up_proj.weight"],
    ["layers.1.attention_norm.weight", "model.layers.1.input_layernorm.weight"],
    ["layers.1.ffn_norm.weight", "model.layers.1.post_attention_layernorm.weight"],
    ["rope.freqs", undefined],
    ["layers.1.attention.inner_attention.rope.freqs", undefined],
    ["something.else", undefined],
  ];
  for (const [meta, hf] of table) assertEquals(metaToHfName(meta), hf, meta);
  // 1 head, headDim 4, hidden 1: Meta rows (pairs) 0 1 2 3 = (i0 j0)(i0 j1)(i1 j0)(i1 j1) → HF 0 2 1 3
  assertDeepEquals([...permuteMetaQK(new Float32Array([0, 1, 2, 3]), 1, 4, 1)], [0, 2, 1, 3]);
  // 2 heads, headDim 2, hidden 2: a 2-row head is its own permutation
  assertDeepEquals([...permuteMetaQK(new Uint16Array([1, 2, 3, 4, 5, 6, 7, 8]), 2, 2, 2)], [
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
  ]);
  assertOk(permuteMetaQK(new Uint16Array(8), 1, 4, 2) instanceof Uint16Array);
  assertThrowsMsg(() => permuteMetaQK(new Float32Array(10), 1, 4, 2), "10 elements");
  assertThrowsMsg(() => permuteMetaQK(new Float32Array(6), 1, 3, 2), "even");
  // bytes form: f32 rows of 1 element = 4 bytes each
  const bytes = permuteMetaQK(f32Bytes([0, 1, 2, 3]), "F32", 1, 4, 1);
  assertDeepEquals([...new Float32Array(bytes.buffer)], [0, 2, 1, 3]);
  assertThrowsMsg(() => permuteMetaQK(new Uint8Array(6), "F16", 1, 4, 1), "6 elements", "× 2 bytes");
});

test("pth: openMetaCheckpoint finds consolidated.00.pth; refuses missing and sharded checkpoints", async () => {
  const src = await openMetaCheckpoint(META_DIR);
  assertEquals(src.list().length, 31);
  src.close();
  const empty = await tmpDir();
  await assertRejectsMsg(() => openMetaCheckpoint(empty), empty, "no consolidated.00.pth");
  await assertRejectsMsg(() => openMetaCheckpoint(empty + "/absent"), "cannot read");
  await Deno.copyFile(META, `${empty}/consolidated.00.pth`);
  await Deno.copyFile(META, `${empty}/consolidated.01.pth`);
  await assertRejectsMsg(
    () => openMetaCheckpoint(empty),
    empty,
    "2 model-parallel shards",
    "consolidated.01.pth",
  );
});

test("pth: real torch 1.13 files: f32 state_dict, bf16/f16/i64/0-d, a view with a storage offset", async () => {
  const expected = JSON.parse(await Deno.readTextFile(PTH + "expected.json"));
  const lin = await openPth(PTH + "linear_f32.pt");
  for (const [name, key] of [["weight", "linear.weight"], ["bias", "linear.bias"]]) {
    const info = lin.info(name);
    assertEquals(info.dtype, "F32");
    assertDeepEquals(info.shape, expected[key].shape);
    assertDeepEquals([...toFloat32(info, await lin.read(name))], expected[key].values);
  }
  lin.close();
  const mixed = await openPth(PTH + "mixed.pt");
  assertDeepEquals(mixed.list().map((t) => [t.name, t.dtype, t.bytes]), [
    ["bf16", "BF16", 48],
    ["f16", "F16", 48],
    ["row2", "F16", 8],
    ["i64", "I64", 24],
    ["scalar", "F32", 4],
  ]);
  for (const t of mixed.list()) {
    assertDeepEquals(t.shape, expected[t.name].shape, t.name);
    assertDeepEquals([...toFloat32(t, await mixed.read(t.name))], expected[t.name].values, t.name);
  }
  mixed.close();
  await assertRejectsMsg(() => mixed.read("f16"), "after close");
});

test("pth: refuses non-contiguous strides (a real transposed tensor, and a hand-made one)", async () => {
  await assertRejectsMsg(
    () => openPth(PTH + "transposed.pt"),
    "transposed.pt",
    "tensor 't'",
    "[1,4]",
    "not contiguous",
  );
  const p = await tmpFile(onePth(fake({ stride: [1, 2] })));
  await assertRejectsMsg(() => openPth(p), p, "tensor 'w'", "not contiguous");
  // size-1 dimensions may carry any stride
  const ok = await openPth(await tmpFile(onePth(fake({ shape: [1, 6], stride: [99, 1] }))));
  assertDeepEquals([...toFloat32(ok.info("w"), await ok.read("w"))], [0, 1, 2, 3, 4, 5]);
  ok.close();
});

test("pth: hand-built zips: offsets into a shared storage read only their range", async () => {
  const pkl = stateDictPickle([
    fake({ name: "a", numel: 10, offset: 2, shape: [2, 2], stride: [2, 1] }),
    fake({ name: "b", numel: 10, offset: 7, shape: [3], stride: [1] }),
  ]);
  const p = await tmpFile(
    torchZip("p", {
      "data.pkl": pkl,
      "data/0": f32Bytes([...Array(10).keys()]),
      "byteorder": new TextEncoder().encode("little"),
    }),
  );
  const src = await openPth(p);
  assertDeepEquals([...toFloat32(src.info("a"), await src.read("a"))], [2, 3, 4, 5]);
  assertDeepEquals([...toFloat32(src.info("b"), await src.read("b"))], [7, 8, 9]);
  src.close();
});

test("pth: missing storage entry, tensor past its storage, bad opcode, big-endian, no data.pkl", async () => {
  const missing = await tmpFile(onePth(fake({ key: "99" })));
  await assertRejectsMsg(() => openPth(missing), missing, "tensor 'w'", "no entry 'p/data/99'");
  const past = await tmpFile(onePth(fake({ numel: 6, offset: 2 })));
  await assertRejectsMsg(() => openPth(past), past, "tensor 'w'", "[2, 8)", "past its storage");
  // the pickle claims a bigger storage than the entry holds
  const short = await tmpFile(onePth(fake({ numel: 12, shape: [4, 3] })));
  await assertRejectsMsg(
    () => openPth(short),
    short,
    "tensor 'w'",
    "past its storage entry 'p/data/0' of 24 bytes",
  );
  const badOp = await tmpFile(
    torchZip("p", { "data.pkl": new PickleWriter().proto().raw(0x7d, 0xf0, 0x2e).bytes() }),
  );
  await assertRejectsMsg(() => openPth(badOp), badOp, "p/data.pkl", "opcode 0xf0", "offset 3");
  const evil = await tmpFile(
    torchZip("p", { "data.pkl": new PickleWriter().proto().global("os", "system").stop().bytes() }),
  );
  await assertRejectsMsg(() => openPth(evil), evil, "'os.system'");
  const big = await tmpFile(onePth(fake(), 6, { byteorder: new TextEncoder().encode("big") }));
  await assertRejectsMsg(() => openPth(big), big, "byteorder says 'big'");
  const noPkl = await tmpFile(torchZip("p", { "data/0": f32Bytes([1]) }));
  await assertRejectsMsg(() => openPth(noPkl), noPkl, "no entry 'PREFIX/data.pkl'");
  const f64 = await tmpFile(onePth(fake({ storage: "DoubleStorage", numel: 3, shape: [3], stride: [1] })));
  await assertRejectsMsg(() => openPth(f64), f64, "float64");
});

test("pth: truncated files and non-zips are refused, naming the file", async () => {
  const full = await Deno.readFile(META);
  for (const keep of [full.length - 1, full.length - 30, 200_000, 4000, 100, 10, 0]) {
    const p = await tmpFile(full.subarray(0, keep), "consolidated.00.pth");
    const err = await assertRejectsMsg(() => openPth(p), p);
    assertOk(/truncated/.test(err.message), `${keep} bytes: ${err.message}`);
  }
  const text = await tmpFile(new TextEncoder().encode('{"not": "a zip"}'.repeat(10)));
  await assertRejectsMsg(() => openPth(text), text, "not a zip file");
  await assertRejectsMsg(() => openPth(FIX + "absent.pth"), "absent.pth", "cannot open");
  // the central directory says an entry is longer than the file has left
  const zip = onePth(fake());
  const dv = new DataView(zip.buffer);
  const cd = dv.getUint32(zip.length - 6, true);
  let p = cd, found = false;
  while (dv.getUint32(p, true) === 0x02014b50) {
    const name = new TextDecoder().decode(zip.subarray(p + 46, p + 46 + dv.getUint16(p + 28, true)));
    if (name === "p/data/0") {
      dv.setUint32(p + 20, 1 << 20, true), dv.setUint32(p + 24, 1 << 20, true);
      found = true;
    }
    p += 46 + dv.getUint16(p + 28, true) + dv.getUint16(p + 30, true) + dv.getUint16(p + 32, true);
  }
  assertOk(found);
  const long = await tmpFile(zip);
  await assertRejectsMsg(() => openPth(long), long, "'p/data/0'", "past the end of the file");
});

/** Rewrites one central-directory field (u16 at `field`) of entry `entry` in a zip. */
function patchCentral(zip: Uint8Array, entry: string, field: number, value: number): Uint8Array {
  const out = zip.slice();
  const dv = new DataView(out.buffer);
  let p = dv.getUint32(out.length - 6, true);
  while (dv.getUint32(p, true) === 0x02014b50) {
    const n = dv.getUint16(p + 28, true);
    if (new TextDecoder().decode(out.subarray(p + 46, p + 46 + n)) === entry) {
      dv.setUint16(p + field, value, true);
    }
    p += 46 + n + dv.getUint16(p + 30, true) + dv.getUint16(p + 32, true);
  }
  return out;
}

test("zip: Zip64 layout, deflated entries, encrypted and unknown-method entries", async () => {
  // Zip64 with aligned data (as torch.save writes past 4 GiB)
  const pkl = stateDictPickle([fake()]);
  const z64 = await tmpFile(zip64({ "arc/data.pkl": pkl, "arc/data/0": f32Bytes([5, 4, 3, 2, 1, 0]) }, 37));
  const zr = await ZipReader.open(z64);
  assertDeepEquals(zr.entries.map((e) => [e.name, e.size]), [["arc/data.pkl", pkl.length], [
    "arc/data/0",
    24,
  ]]);
  zr.close();
  const src = await openPth(z64);
  assertDeepEquals([...toFloat32(src.info("w"), await src.read("w"))], [5, 4, 3, 2, 1, 0]);
  src.close();
  // deflated entries are inflated (torch never compresses, other writers may)
  const deflated = zipSync({
    "d/data.pkl": [pkl, { level: 9 }],
    "d/data/0": [f32Bytes([0, 0, 0, 0, 0, 7]), { level: 9 }],
  });
  const dz = await tmpFile(deflated);
  const zd = await ZipReader.open(dz);
  assertEquals(zd.entry("d/data/0").method, 8);
  assertDeepEquals(await zd.read("d/data.pkl"), pkl);
  await assertRejectsMsg(() => zd.read("d/nope"), dz, "no entry 'd/nope' in " + dz);
  await assertRejectsMsg(() => zd.read("d/data/0", 20, 8), "outside its 24 bytes");
  zd.close();
  const ds = await openPth(dz);
  assertDeepEquals([...toFloat32(ds.info("w"), await ds.read("w"))], [0, 0, 0, 0, 0, 7]);
  ds.close();
  const stored = onePth(fake());
  const enc = await tmpFile(patchCentral(stored, "p/data/0", 8, 1)); // flags bit 0
  const encSrc = await openPth(enc); // the directory is fine; reading the entry is not
  await assertRejectsMsg(() => encSrc.read("w"), enc, "'p/data/0' is encrypted");
  encSrc.close();
  const bz = await tmpFile(patchCentral(stored, "p/data.pkl", 10, 12)); // bzip2
  await assertRejectsMsg(() => openPth(bz), bz, "'p/data.pkl' uses compression method 12");
});

/** Rewrites one central-directory u32 field (at `field`) of entry `entry` in a zip. */
function patchCentral32(zip: Uint8Array, entry: string, field: number, value: number): Uint8Array {
  const out = zip.slice();
  const dv = new DataView(out.buffer);
  let p = dv.getUint32(out.length - 6, true);
  while (dv.getUint32(p, true) === 0x02014b50) {
    const n = dv.getUint16(p + 28, true);
    if (new TextDecoder().decode(out.subarray(p + 46, p + 46 + n)) === entry) {
      dv.setUint32(p + field, value, true);
    }
    p += 46 + n + dv.getUint16(p + 30, true) + dv.getUint16(p + 32, true);
  }
  return out;
}

test("zip/pth: decompression bombs stop at the directory's size; data.pkl CRC; storage sizes", async () => {
  const pkl = stateDictPickle([fake()]);
  // a 20 MB data.pkl deflated to ~20 kB whose directory claims the real pickle's size: inflation stops
  // within one slice past the claim instead of inflating it all
  const bombPkl = new Uint8Array(pkl.length + 20_000_000);
  bombPkl.set(pkl);
  const bombZip = zipSync({
    "b/data.pkl": [bombPkl, { level: 9 }],
    "b/data/0": [f32Bytes([1, 2, 3, 4, 5, 6]), { level: 0 }],
  });
  const bomb = await tmpFile(patchCentral32(bombZip, "b/data.pkl", 24, pkl.length));
  let t0 = performance.now();
  await assertRejectsMsg(
    () => openPth(bomb),
    bomb,
    "'b/data.pkl'",
    `inflates to more than ${pkl.length} bytes`,
  );
  assertOk(performance.now() - t0 < 1500, `bomb took ${performance.now() - t0} ms`);
  // a directory size beyond deflate's 1032:1 ratio is refused before reading the data
  const ratio = await tmpFile(patchCentral32(bombZip, "b/data.pkl", 24, 2 ** 31));
  t0 = performance.now();
  await assertRejectsMsg(() => openPth(ratio), ratio, "'b/data.pkl'", "is 2147483648 bytes, more than the");
  const zr = await ZipReader.open(ratio);
  await assertRejectsMsg(() => zr.read("b/data.pkl"), ratio, "cannot inflate to the 2147483648");
  zr.close();
  assertOk(performance.now() - t0 < 500);
  // a stored data.pkl whose bytes changed (a tensor name) but still parse: the CRC32 catches it
  const good = onePth(fake({ name: "wq" }));
  const at = good.indexOf(0x71, good.findIndex((_, i) => good[i] === 0x77 && good[i + 1] === 0x71));
  assertOk(at > 0);
  const flipped = good.slice();
  flipped[at] = 0x6b; // "wq" -> "wk"
  const crc = await tmpFile(flipped);
  await assertRejectsMsg(() => openPth(crc), crc, "'p/data.pkl'", "CRC32", "does not match");
  // a storage entry bigger than the pickle's storage (bytes no tensor names), and a byteorder bomb
  const bigger = await tmpFile(onePth(fake(), 8));
  await assertRejectsMsg(
    () => openPth(bigger),
    bigger,
    "tensor 'w'",
    "'p/data/0' is 32 bytes but the pickle says storage '0' holds 6 F32 elements (24 bytes)",
  );
  const order = await tmpFile(onePth(fake(), 6, { byteorder: new Uint8Array(1000).fill(0x20) }));
  await assertRejectsMsg(() => openPth(order), order, "'p/byteorder' is 1000 bytes");
});
