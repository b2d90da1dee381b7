// The CPU reference machinery (tests only): f64 tensors, a table of reference implementations (one
// per op, in tests/ref/<family>.ts), and an interpreter that evaluates any graph with them. Because
// backward ops have references too, a whole training graph (forward + autodiff + optimizer) can be
// evaluated on the CPU in f64 and compared with the GPU, and differentiated numerically.

import { type Node, numel, type Shape, strides } from "../../compiler/core/ir.ts";
import { getOp, writesOf } from "../../compiler/ops/registry.ts";
import { fromBf16, fromF16, toBf16, toF16 } from "../../compiler/core/dtype.ts";

export interface T {
  shape: number[];
  data: Float64Array;
}

/** A reference returns the output, or [output, ...aux]; ops that write in place return the new
 * values of the written inputs, in the op's `writes` order. */
export type RefFn = (inputs: T[], attrs: Record<string, any>, node: Node) => T | T[];

const refs = new Map<string, RefFn>();

export function defineRef(op: string, fn: RefFn): void {
  if (refs.has(op)) throw new Error(`ref: '${op}' defined twice`);
  refs.set(op, fn);
}

export function tensor(shape: Shape, data?: ArrayLike<number>): T {
  const n = numel(shape);
  const d = new Float64Array(n);
  if (data) {
    if (data.length !== n) throw new Error(`tensor: ${data.length} values for shape [${shape}]`);
    d.set(data as ArrayLike<number>);
  }
  return { shape: [...shape], data: d };
}

export { strides };

/** Round to f32 / bf16 / f16 the way storage would (so refs see what the GPU sees). */
function storageRound(dtype: string, v: Float64Array): Float64Array {
  if (dtype === "f32") return Float64Array.from(Float32Array.from(v));
  if (dtype === "bf16") return v.map((x) => fromBf16(toBf16(x)));
  if (dtype === "f16") return v.map((x) => fromF16(toF16(x)));
  return v; // integers are exact
}

export type Env = Map<Node, T>;

/**
 * Evaluates `outputs` (and `effects`) in f64. `feeds` gives values for inputs and overrides param
 * inits. Returns every computed value; for effects, `env` holds the updated persistent tensors.
 */
export function interpret(
  outputs: readonly Node[],
  feeds: Map<Node, ArrayLike<number>> = new Map(),
  effects: readonly Node[] = [],
): Env {
  const need = new Set<Node>();
  const stack = [...outputs, ...effects];
  while (stack.length) {
    const n = stack.pop()!;
    if (need.has(n)) continue;
    need.add(n);
    stack.push(...n.inputs);
  }
  const order = [...need].sort((a, b) => a.id - b.id);
  const env: Env = new Map();
  const auxes = new Map<Node, T[]>();
  for (const n of order) {
    if (n.kind !== "op") {
      const f = feeds.get(n);
      let data: ArrayLike<number>;
      if (f) data = f;
      else if (n.init instanceof Uint16Array) {
        // raw 16-bit words, as checkpoints hold them
        const words = n.init;
        data = Float64Array.from(words, (w) => (n.dtype === "bf16" ? fromBf16(w) : fromF16(w)));
      } else if (n.init !== undefined) data = typeof n.init === "function" ? n.init(n.size) : n.init;
      else if (n.kind === "input") throw new Error(`interpret: no feed for input ${n}`);
      else data = new Float64Array(n.size);
      const t = tensor(n.shape, data);
      if (!f) t.data = storageRound(n.dtype, t.data);
      env.set(n, t);
      continue;
    }
    const def = getOp(n.op);
    if (def.alias) {
      env.set(n, { shape: [...n.shape], data: env.get(n.inputs[0])!.data });
      continue;
    }
    if (n.op === "aux") {
      env.set(n, auxes.get(n.inputs[0])![n.attrs.index as number]);
      continue;
    }
    const fn = refs.get(n.op);
    if (!fn) throw new Error(`interpret: op '${n.op}' has no CPU reference`);
    const r = fn(n.inputs.map((x) => env.get(x)!), n.attrs as Record<string, any>, n);
    const writes = writesOf(n);
    if (writes) {
      const arr = Array.isArray(r) ? r : [r];
      writes.forEach((w, k) => env.set(n.inputs[w], arr[k]));
      continue;
    }
    const [main, ...aux] = Array.isArray(r) ? r : [r];
    if (main.shape.join() !== n.shape.join()) {
      throw new Error(`interpret: ref of '${n.op}' returned [${main.shape}] for ${n}`);
    }
    env.set(n, main);
    auxes.set(n, aux);
  }
  return env;
}

/** Elementwise map over a broadcast pair. */
export function broadcast2(a: T, b: T, outShape: number[], f: (x: number, y: number) => number): T {
  const out = tensor(outShape);
  const r = outShape.length;
  const os = strides(outShape);
  const sa = bstr(a.shape, outShape), sb = bstr(b.shape, outShape);
  for (let i = 0; i < out.data.length; i++) {
    let rem = i, ia = 0, ib = 0;
    for (let d = 0; d < r; d++) {
      const c = Math.floor(rem / os[d]);
      rem -= c * os[d];
      ia += c * sa[d];
      ib += c * sb[d];
    }
    out.data[i] = f(a.data[ia], b.data[ib]);
  }
  return out;
}

function bstr(inShape: number[], outShape: number[]): number[] {
  const st = strides(inShape);
  const r = outShape.length;
  return outShape.map((_, d) => {
    const k = d - (r - inShape.length);
    return k < 0 || inShape[k] === 1 ? 0 : st[k];
  });
}
