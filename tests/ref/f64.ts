// f64 tensors for the CPU references (tests only), and the types that make the reference table
// (tests/ref/table.ts) a mapped type over the op names: one reference per op, attributes typed.

import { numel, type OpNode, type Shape, strides } from "../../compiler/core/ir.ts";
import type { OpAttrs, OpName } from "../../compiler/ops/attrs.ts";

/** A dense f64 tensor. */
export interface T {
  shape: number[];
  data: Float64Array;
}

/**
 * A CPU reference of an op with attributes A: returns the output, or [output, ...aux]; ops that
 * write in place return the new values of the written inputs, in the op's `writes` order.
 */
export type RefFn<A> = (inputs: T[], attrs: A, node: OpNode<A>) => T | T[];

/** The references of the ops K (a family's table entries). */
export type RefsFor<K extends OpName> = { readonly [P in K]: RefFn<OpAttrs[P]> };

/** The reference of op P. */
export type RefOf<P extends OpName> = RefFn<OpAttrs[P]>;

/** A tensor of `shape`, zeros or a copy of `data`. */
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

/** Elementwise map over a broadcast pair. */
export function broadcast2(a: T, b: T, outShape: Shape, f: (x: number, y: number) => number): T {
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

function bstr(inShape: Shape, outShape: Shape): number[] {
  const st = strides(inShape);
  const r = outShape.length;
  return outShape.map((_, d) => {
    const k = d - (r - inShape.length);
    return k < 0 || inShape[k] === 1 ? 0 : st[k];
  });
}
