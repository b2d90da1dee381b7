// The CPU reference interpreter (tests only): evaluates any graph in f64 with the reference of each
// op (tests/ref/<family>.ts, collected in the typed table tests/ref/table.ts). Because backward ops
// have references too, a whole training graph (forward + autodiff + optimizer) can be evaluated on
// the CPU in f64 and compared with the GPU, and differentiated numerically.

import { auxIndex, type Node, opDef, writesOf } from "../../compiler/core/ir.ts";
import { fromBf16, fromF16, toBf16, toF16 } from "../../compiler/core/dtype.ts";
import { type T, tensor } from "./f64.ts";
import { refOf } from "./table.ts";

export { strides, type T, tensor } from "./f64.ts";

/** Round to f32 / bf16 / f16 the way storage would (so refs see what the GPU sees). */
function storageRound(dtype: string, v: Float64Array): Float64Array {
  if (dtype === "f32") return Float64Array.from(Float32Array.from(v));
  if (dtype === "bf16") return v.map((x) => fromBf16(toBf16(x)));
  if (dtype === "f16") return v.map((x) => fromF16(toF16(x)));
  return v; // integers are exact
}

/** The values the interpreter computed, by node. */
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
    const def = opDef(n);
    if (def.alias) {
      env.set(n, { shape: [...n.shape], data: env.get(n.inputs[0])!.data });
      continue;
    }
    if (n.op === "aux") {
      env.set(n, auxes.get(n.inputs[0])![auxIndex(n)]);
      continue;
    }
    const fn = refOf(n);
    const r = fn(n.inputs.map((x) => env.get(x)!), n.attrs, n);
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
