// The restricted unpickler (models/pickle.ts): the fixture's torch.save data.pkl, a real PyTorch 1.13
// state_dict (OrderedDict + _metadata BUILD), value opcodes, and refusals: globals outside the
// allowlist (os.system, builtins.eval, torch.nn.modules.linear.Linear, numpy), bad opcodes, truncation.
// Malicious pickles are written byte by byte here; nothing is ever executed.

import { assertDeepEquals, assertEquals, assertOk, assertThrowsMsg, test } from "./testing.ts";
import { readStateDict, unpickle } from "../io/pickle.ts";
import { ZipReader } from "../io/zip.ts";
import { PickleWriter, stateDictPickle } from "./fixtures/pth/build.ts";

const META = new URL("./fixtures/llama-tiny-meta/consolidated.00.pth", import.meta.url).pathname;
const PTH = new URL("./fixtures/pth/", import.meta.url).pathname;
const FILE = { file: "evil.pth", entry: "evil/data.pkl" };

async function dataPkl(path: string): Promise<Uint8Array> {
  const z = await ZipReader.open(path);
  try {
    const e = z.entries.find((e) => e.name.endsWith("/data.pkl"))!;
    return await z.read(e.name);
  } finally {
    z.close();
  }
}

/** bytes of a pickle given as a latin-1 string (like Python's b"...") */
function b(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

test("pickle: the Meta fixture's data.pkl is a state dict of 31 f16 tensors", async () => {
  const sd = readStateDict(await dataPkl(META), { file: META });
  assertEquals(sd.size, 31);
  const names = [...sd.keys()];
  assertEquals(names[0], "tok_embeddings.weight");
  assertEquals(names[30], "rope.freqs");
  const emb = sd.get("tok_embeddings.weight")!;
  assertEquals(emb.storageKey, "0");
  assertEquals(emb.storageDtype, "F16");
  assertEquals(emb.storageNumel, 8192);
  assertEquals(emb.location, "cpu");
  assertEquals(emb.offset, 0);
  assertDeepEquals(emb.shape, [128, 64]);
  assertDeepEquals(emb.stride, [64, 1]);
  const w2 = sd.get("layers.1.feed_forward.w2.weight")!;
  assertEquals(w2.storageKey, "17");
  assertDeepEquals(w2.shape, [64, 172]);
  assertDeepEquals(w2.stride, [172, 1]);
  assertDeepEquals(sd.get("norm.weight")!.shape, [64]);
  for (const t of sd.values()) assertEquals(t.storageDtype, "F16");
});

test("pickle: a real torch 1.13 state_dict (OrderedDict, _metadata set by BUILD) and a view with offset", async () => {
  const lin = readStateDict(await dataPkl(PTH + "linear_f32.pt"), { file: "linear_f32.pt" });
  assertDeepEquals([...lin.keys()], ["weight", "bias"]);
  assertEquals(lin.get("weight")!.storageDtype, "F32");
  assertDeepEquals(lin.get("bias")!.shape, [3]);
  const mixed = readStateDict(await dataPkl(PTH + "mixed.pt"), { file: "mixed.pt" });
  assertDeepEquals([...mixed.keys()], ["bf16", "f16", "row2", "i64", "scalar"]);
  assertEquals(mixed.get("bf16")!.storageDtype, "BF16");
  assertEquals(mixed.get("i64")!.storageDtype, "I64");
  const row2 = mixed.get("row2")!;
  assertEquals(row2.storageKey, mixed.get("f16")!.storageKey); // a view shares its base's storage
  assertEquals(row2.offset, 8);
  assertDeepEquals(row2.shape, [4]);
  assertDeepEquals(mixed.get("scalar")!.shape, []);
});

test("pickle: value opcodes (ints, LONG1, floats, strings, containers, memo, FRAME, MEMOIZE)", () => {
  const v = unpickle(
    b(
      "\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00" + // PROTO 4, FRAME
        "]\x94(K\x07M\x00\x01J\xfe\xff\xff\xff\x8a\x01\xff\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01" + // list, ints
        "G?\xf8\x00\x00\x00\x00\x00\x00" + // BINFLOAT 1.5
        "\x8c\x02hi\x8d\x01\x00\x00\x00\x00\x00\x00\x00xN\x88\x89" + // strings, None, True, False
        ")K\x01\x85K\x01K\x02\x86K\x01K\x02K\x03\x87(K\x04t" + // tuples
        "h\x00e" + // BINGET 0 (the list itself, memoized by MEMOIZE), APPENDS
        "(K\x01K\x02d" + // DICT {1: 2}
        "a.",
    ),
    FILE,
  ) as unknown[];
  assertEquals(v.length, 18);
  assertDeepEquals(v.slice(0, 5), [7, 256, -2, -1, 2n ** 64n]);
  assertEquals(v[5], 1.5);
  assertDeepEquals(v.slice(6, 11), ["hi", "x", null, true, false]);
  assertDeepEquals(v.slice(11, 16), [[], [1], [1, 2], [1, 2, 3], [4]]);
  assertOk(Object.isFrozen(v[11]) && !Object.isFrozen(v), "tuples are frozen arrays, lists are not");
  assertEquals(v[16], v, "BINGET of the memoized list gives the same object");
  assertDeepEquals([...(v[17] as Map<unknown, unknown>)], [[1, 2]]);
});

test("pickle: refuses os.system, builtins.eval, numpy and torch.nn modules, naming module.name and the file", () => {
  // What an attacker writes: os.system('echo pwned') via GLOBAL + REDUCE
  const osSystem = b("\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwned\x85R.");
  assertThrowsMsg(
    () => unpickle(osSystem, FILE),
    "evil.pth",
    "evil/data.pkl",
    "'os.system'",
    "not allowed",
    "offset 2",
  );
  assertThrowsMsg(() => unpickle(b("\x80\x02cposix\nsystem\n)R."), FILE), "'posix.system'");
  const evalG = b("\x80\x02c__builtin__\neval\nX\x04\x00\x00\x001+1\x85R.");
  assertThrowsMsg(() => unpickle(evalG, FILE), "'__builtin__.eval'", "evil.pth");
  assertThrowsMsg(
    () => unpickle(b("\x80\x02cbuiltins\neval\nX\x03\x00\x00\x001+1\x85R."), FILE),
    "'builtins.eval'",
  );
  // protocol 4's STACK_GLOBAL spelling of builtins.eval
  const evalS = b("\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x031+1\x85R.");
  assertThrowsMsg(() => unpickle(evalS, FILE), "'builtins.eval'", "evil.pth");
  const linear = b("\x80\x02ctorch.nn.modules.linear\nLinear\nq\x00)\x81q\x01.");
  assertThrowsMsg(() => unpickle(linear, FILE), "'torch.nn.modules.linear.Linear'", "evil.pth");
  assertThrowsMsg(
    () => unpickle(b("\x80\x02cnumpy.core.multiarray\n_reconstruct\n."), FILE),
    "'numpy.core.multiarray._reconstruct'",
  );
  // a state dict whose tensor rebuild function is swapped for something else
  const w = new PickleWriter().proto().raw(0x7d).str("w").global(
    "torch._utils",
    "_rebuild_device_tensor_from_numpy",
  );
  assertThrowsMsg(() => unpickle(w.bytes(), FILE), "'torch._utils._rebuild_device_tensor_from_numpy'");
});

test("pickle: a torch.save of a whole nn.Module (real file) is refused, naming its class", async () => {
  const modulePkl = await dataPkl(PTH + "module.pt");
  assertThrowsMsg(
    () => readStateDict(modulePkl, { file: "module.pt", entry: "module/data.pkl" }),
    "module.pt",
    "module/data.pkl",
    "'torch.nn.modules.linear.Linear'",
  );
});

test("pickle: unknown opcodes, truncation, misuse of allowed globals", () => {
  assertThrowsMsg(() => unpickle(b("\x80\x02K\x01\xff."), FILE), "evil.pth", "opcode 0xff", "offset 4");
  // INST / OBJ / NEWOBJ / EXT are not implemented: they are refused as opcodes
  assertThrowsMsg(() => unpickle(b("\x80\x02ios\nsystem\n."), FILE), "opcode 0x69 ('i')", "offset 2");
  assertThrowsMsg(() => unpickle(b("\x80\x02)\x81."), FILE), "opcode 0x81", "offset 3");
  assertThrowsMsg(() => unpickle(b("\x80\x02K\x01"), FILE), "evil.pth", "truncated", "no STOP");
  assertThrowsMsg(
    () => unpickle(b("\x80\x02X\xff\x00\x00\x00abc."), FILE),
    "truncated",
    "BINUNICODE at offset 2",
  );
  assertThrowsMsg(() => unpickle(b("\x80\x02cos\nsys"), FILE), "truncated");
  assertThrowsMsg(() => unpickle(b("\x80\x02."), FILE), "stack underflow");
  assertThrowsMsg(() => unpickle(b("\x80\x02t."), FILE), "no MARK");
  assertThrowsMsg(() => unpickle(b("\x80\x02h\x05."), FILE), "memo 5");
  assertThrowsMsg(() => unpickle(b("\x80\x09."), FILE), "protocol 9");
  // a storage type is not callable; a bad persistent id; BUILD on a tensor-less object
  assertThrowsMsg(
    () => unpickle(b("\x80\x02ctorch\nFloatStorage\n)R."), FILE),
    "torch.FloatStorage",
    "not callable",
  );
  assertThrowsMsg(() => unpickle(b("\x80\x02X\x01\x00\x00\x00xQ."), FILE), "persistent id", "not ('storage'");
  assertThrowsMsg(() => unpickle(b("\x80\x02]K\x01b."), FILE), "BUILD");
});

test("pickle: readStateDict wants a dict of tensors", () => {
  const notDict = new PickleWriter().proto().raw(0x5d).stop().bytes();
  assertThrowsMsg(() => readStateDict(notDict, FILE), "evil.pth", "a list of 0", "not a state dict");
  const withInt = new PickleWriter().proto().raw(0x7d).str("epoch").int(3).raw(0x73).stop().bytes();
  assertThrowsMsg(() => readStateDict(withInt, FILE), "entry 'epoch'", "not a tensor");
  const ok = readStateDict(
    stateDictPickle([{
      name: "a",
      storage: "BFloat16Storage",
      key: "7",
      numel: 10,
      offset: 2,
      shape: [2, 3],
      stride: [3, 1],
    }]),
    FILE,
  );
  const a = ok.get("a")!;
  assertDeepEquals(
    {
      key: a.storageKey,
      dtype: a.storageDtype,
      numel: a.storageNumel,
      off: a.offset,
      shape: a.shape,
      stride: a.stride,
    },
    { key: "7", dtype: "BF16", numel: 10, off: 2, shape: [2, 3], stride: [3, 1] },
  );
});

/** A little-endian u32 as 4 latin-1 chars. */
function u32(n: number): string {
  return String.fromCharCode(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
}

test("pickle: LONG4 is linear and bounded; every length field is bounded by the bytes that remain", () => {
  // LONG4 of 200 kB took minutes (quadratic BigInt building); now refused at once, naming the file
  const big = 200_000;
  const long4 = new Uint8Array(1 + 4 + big + 1);
  long4.set(b("\x8b" + u32(big)));
  long4[long4.length - 1] = 0x2e;
  let t0 = performance.now();
  assertThrowsMsg(() => unpickle(long4, FILE), "evil.pth", "evil/data.pkl", "LONG4", "200000-byte integer");
  assertOk(performance.now() - t0 < 500);
  // LONG4 within the bound, and LONG1 at its 255-byte maximum, decode exactly (two's complement)
  assertEquals(unpickle(b("\x8b" + u32(9) + "\x01" + "\0".repeat(7) + "\x01."), FILE), 2n ** 64n + 1n);
  assertEquals(unpickle(b("\x8a\x02\xff\xff."), FILE), -1);
  const l1 = unpickle(b("\x8a\xff" + "\0".repeat(254) + "\x80."), FILE) as bigint;
  assertEquals(l1, -(2n ** (8n * 255n - 1n)));
  t0 = performance.now();
  for (let i = 0; i < 2000; i++) unpickle(b("\x8a\xff" + "\x7f".repeat(255) + "."), FILE);
  assertOk(performance.now() - t0 < 2000);
  // lengths that claim more than the rest of the data, refused before any proportional work
  for (
    const [name, p] of [
      ["BINUNICODE", "X" + u32(0xfffffff0) + "abc."],
      ["BINBYTES", "B" + u32(0x7ffffff0) + "abc."],
      ["BINSTRING", "T" + u32(0x7ffffff0) + "abc."],
      ["SHORT_BINSTRING", "U\xff" + "abc."],
      ["LONG1", "\x8a\xff" + "abc."],
      ["LONG4", "\x8b" + u32(60) + "abc."],
    ]
  ) {
    assertThrowsMsg(() => unpickle(b(p), FILE), "evil.pth", "evil/data.pkl", name, "truncated");
  }
  for (const op of ["\x95", "\x8d", "\x8e"]) { // FRAME, BINUNICODE8, BINBYTES8
    assertThrowsMsg(
      () => unpickle(b(op + "\x10\0\0\0\0\0\0\0" + "N."), FILE),
      "evil.pth",
      "length 16",
      "exceeds the 2 bytes that remain",
    );
  }
  assertThrowsMsg(() => unpickle(b("T\xfe\xff\xff\xffN."), FILE), "evil.pth", "truncated");
  assertThrowsMsg(() => unpickle(b("c" + "a".repeat(5000) + "\nb\n."), FILE), "evil.pth", "unterminated");
});

test("pickle: 200k APPENDS items and deep nesting are read iteratively (no stack overflow)", () => {
  const n = 200_000;
  const many = new Uint8Array(3 + 2 * n + 2);
  many.set(b("](")); // EMPTY_LIST, MARK
  for (let i = 0; i < n; i++) many.set([0x4b, i & 0xff], 2 + 2 * i); // BININT1
  many.set(b("e."), 2 + 2 * n); // APPENDS, STOP
  const l = unpickle(many.subarray(0, 2 + 2 * n + 2), FILE) as number[];
  assertEquals(l.length, n);
  assertEquals(l[n - 1], (n - 1) & 0xff);
  // 100k nested lists ([[[...]]]) via MARK ... LIST, and via EMPTY_LIST + APPEND
  const depth = 100_000;
  const nested = b("(".repeat(depth) + "l".repeat(depth) + ".");
  let v = unpickle(nested, FILE) as unknown[];
  let d = 1;
  while (v.length) (v = v[0] as unknown[]), d++;
  assertEquals(d, depth);
  const appends = b("]".repeat(depth) + "a".repeat(depth - 1) + ".");
  v = unpickle(appends, FILE) as unknown[];
  assertEquals(v.length, 1);
});
