// Seeded random numbers for reproducible init and data order (mulberry32 + Box-Muller).

/** A seeded generator (mulberry32): the same seed gives the same sequence on every machine. */
export class Rng {
  private s: number;
  private spare: number | undefined;
  /** A generator seeded with `seed` (0 is replaced by a fixed non-zero seed). */
  constructor(seed: number) {
    this.s = (seed >>> 0) || 0x9e3779b9;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Standard normal. */
  normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** State for checkpoints: restoring it continues the same sequence. */
  get state(): number {
    return this.s;
  }
  /** Restores a state read from `state`. */
  set state(s: number) {
    this.s = s >>> 0;
    this.spare = undefined;
  }
}

/** An init function drawing N(0, std²) values, truncated at ±2 std like timm's trunc_normal_. */
export function truncNormal(seed: number, std: number): (n: number) => Float32Array {
  return (n) => {
    const r = new Rng(seed);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let v = r.normal();
      while (v < -2 || v > 2) v = r.normal();
      out[i] = v * std;
    }
    return out;
  };
}

/** `n` values drawn from N(0, std²) with a generator seeded with `seed`. */
export function randn(seed: number, n: number, std = 1): Float32Array {
  const r = new Rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = r.normal() * std;
  return out;
}

/** An init function filling every element with `value`. */
export function constantInit(value: number): (n: number) => Float32Array {
  return (n) => new Float32Array(n).fill(value);
}

/** A Fisher-Yates permutation of 0..n-1 drawn from a generator seeded with `seed`. */
export function shuffledOrder(n: number, seed: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const r = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = r.int(i + 1);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}
