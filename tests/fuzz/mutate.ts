// Byte-level mutators for the parser fuzzer, driven by a seeded xorshift so a run is reproducible from
// (seed, target, case index).

export class Prng {
  private s: number;
  constructor(seed: number) {
    this.s = (seed >>> 0) || 0x9e3779b9;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (this.s = x >>> 0);
  }
  int(n: number): number {
    return n <= 0 ? 0 : this.u32() % n;
  }
}

/** Values that break length fields: 0, 1, boundaries, powers of two, the file size ± 1. */
function interesting(r: Prng, size: number): number {
  const vs = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0xffff,
    0x7fffffff,
    0x80000000,
    0xffffffff,
    size - 1,
    size + 1,
    1 << 20,
  ];
  return vs[r.int(vs.length)] >>> 0;
}

const MUTATORS = ["flip", "insert", "delete", "truncate", "length", "splice", "text"] as const;
export type Mutator = typeof MUTATORS[number];

/** One mutant of `seed`, and the mutator used. */
export function mutate(seed: Uint8Array, r: Prng): { bytes: Uint8Array; how: Mutator } {
  const how = MUTATORS[r.int(MUTATORS.length)];
  const b = seed.slice();
  const n = b.length;
  switch (how) {
    case "flip": {
      const k = 1 + r.int(8);
      for (let i = 0; i < k; i++) b[r.int(n)] ^= 1 << r.int(8);
      return { bytes: b, how };
    }
    case "insert": {
      const at = r.int(n + 1), k = 1 + r.int(16);
      const out = new Uint8Array(n + k);
      out.set(b.subarray(0, at));
      for (let i = 0; i < k; i++) out[at + i] = r.int(256);
      out.set(b.subarray(at), at + k);
      return { bytes: out, how };
    }
    case "delete": {
      const at = r.int(n), k = 1 + r.int(Math.min(64, n - at));
      const out = new Uint8Array(n - k);
      out.set(b.subarray(0, at));
      out.set(b.subarray(at + k), at);
      return { bytes: out, how };
    }
    case "truncate":
      return { bytes: b.slice(0, r.int(n)), how };
    case "length": {
      // a 16/32/64-bit little- or big-endian field set to an interesting value, biased to the start
      // and the end of the file where headers and directories live
      const region = r.int(3);
      const at = region === 0
        ? r.int(Math.min(n, 64))
        : region === 1
        ? n - 1 - r.int(Math.min(n, 256))
        : r.int(n);
      const dv = new DataView(b.buffer);
      const v = interesting(r, n), le = r.int(2) === 0;
      const w = [2, 4, 8][r.int(3)];
      if (at + w > n) return { bytes: b, how };
      if (w === 2) dv.setUint16(at, v & 0xffff, le);
      else if (w === 4) dv.setUint32(at, v, le);
      else dv.setBigUint64(at, BigInt(v) * (r.int(2) ? 1n : 0x100000000n), le);
      return { bytes: b, how };
    }
    case "splice": {
      const from = r.int(n), to = r.int(n), k = 1 + r.int(Math.min(256, n - Math.max(from, to)));
      b.copyWithin(to, from, from + k);
      return { bytes: b, how };
    }
    case "text": {
      // numbers in text (JSON, ModelNet) replaced by huge/negative/odd ones; otherwise a flip
      const s = new TextDecoder().decode(b);
      const nums = [...s.matchAll(/-?\d+(\.\d+)?(e-?\d+)?/g)];
      if (nums.length === 0 || s.includes("\uFFFD")) {
        b[r.int(n)] ^= 1 << r.int(8);
        return { bytes: b, how };
      }
      const m = nums[r.int(nums.length)];
      const reps = ["2147483648", "-1", "0", "1e39", "NaN", "1e999", "4294967296", '"gelu"', "0.5", "1e-45"];
      const t = s.slice(0, m.index) + reps[r.int(reps.length)] + s.slice(m.index! + m[0].length);
      return { bytes: new TextEncoder().encode(t), how };
    }
  }
}
