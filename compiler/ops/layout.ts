// Layout ops: reshape (shares storage, no kernel), transpose/permute, slice, concat.

import { fmtShape, type Node, normAxis, numel, type Shape, ShapeError, shapeFail } from "../core/ir.ts";
import { defineOp } from "./attrs.ts";

const reshapeOp = defineOp("reshape", {
  alias: true,
  infer: (inputs, attrs) => {
    const x = inputs[0];
    const shape = attrs.shape;
    if (inputs.length !== 1 || numel(shape) !== x.size) {
      shapeFail("reshape", inputs, `as many elements as ${fmtShape(shape)} (${numel(shape)})`);
    }
    return { shape, dtype: x.dtype };
  },
  grad: (n, dy) => [reshape(dy, n.inputs[0].shape)],
});

/** Same data, new shape (one dim may be -1). No copy: the output shares the input's buffer. */
export function reshape(x: Node, shape: Shape): Node {
  const s = [...shape];
  const k = s.indexOf(-1);
  if (k >= 0) {
    const rest = s.reduce((a, d, i) => (i === k ? a : a * d), 1);
    s[k] = rest === 0 ? 0 : x.size / rest;
    if (!Number.isInteger(s[k])) {
      shapeFail("reshape", [x], `a shape whose -1 divides evenly: ${fmtShape(shape)}`);
    }
  }
  if (s.join() === x.shape.join()) return x;
  return x.graph.apply(reshapeOp, [x], { shape: s });
}

// ---------------------------------------------------------------------------------------------------
// permute / transpose, slice, concat. All copy data (one kernel each, see kernels/layout.ts) and work
// on 32-bit dtypes (f32, i32, u32): 16-bit storage packs two values per word, so a thread-per-element
// copy of it would race on shared words — cast 16-bit weights to f32 first.

const WORD_DTYPES = ["f32", "i32", "u32"];

function checkWordDtype(op: string, inputs: readonly Node[]): void {
  if (inputs.some((x) => !WORD_DTYPES.includes(x.dtype))) {
    shapeFail(op, inputs, "32-bit inputs (f32/i32/u32; cast 16-bit storage to f32 first)");
  }
}

/** True when perm is a permutation of 0..rank-1. */
function isPerm(perm: unknown, rank: number): perm is number[] {
  if (!Array.isArray(perm) || perm.length !== rank) return false;
  const seen = new Set<number>();
  for (const p of perm) {
    if (!Number.isInteger(p) || p < 0 || p >= rank || seen.has(p)) return false;
    seen.add(p);
  }
  return true;
}

const permuteOp = defineOp("permute", {
  infer: (inputs, attrs) => {
    const x = inputs[0];
    if (inputs.length !== 1) shapeFail("permute", inputs, "one input");
    checkWordDtype("permute", inputs);
    const perm = attrs.perm;
    if (!isPerm(perm, x.rank)) {
      shapeFail("permute", inputs, `a permutation of 0..${x.rank - 1} (got perm ${JSON.stringify(perm)})`);
    }
    return { shape: perm.map((p) => x.shape[p]), dtype: x.dtype };
  },
  // out[i] = x[perm[i]] along axes, so dx = permute(dy, inverse(perm))
  grad: (n, dy) => {
    const perm = n.attrs.perm;
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    return [permute(dy, inv)];
  },
});

/** General N-d axis permutation: out.shape[i] = x.shape[perm[i]] (negative axes allowed). */
export function permute(x: Node, perm: readonly number[]): Node {
  const p = perm.map((a) => (Number.isInteger(a) && a < 0 ? a + x.rank : a));
  if (isPerm(p, x.rank) && p.every((a, i) => a === i)) return x; // identity: no copy
  return x.graph.apply(permuteOp, [x], { perm: p });
}

/** Swaps two axes (negative axes allowed); a permute. */
export function transpose(x: Node, a: number, b: number): Node {
  const i = normAxis("transpose", a, x.rank), j = normAxis("transpose", b, x.rank);
  const perm = x.shape.map((_, k) => k);
  [perm[i], perm[j]] = [perm[j], perm[i]];
  return permute(x, perm);
}

/** Validates normalised slice attrs against x; returns the output shape. */
function sliceShape(
  op: string,
  inputs: readonly Node[],
  x: Shape,
  { axis, start, end }: { axis: number; start: number; end: number },
): number[] {
  if (!Number.isInteger(axis) || axis < 0 || axis >= x.length) {
    shapeFail(op, inputs, `an axis in 0..${x.length - 1} (got ${axis})`);
  }
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > x[axis] || start >= end) {
    shapeFail(
      op,
      inputs,
      `a non-empty range 0 <= start < end <= ${x[axis]} on axis ${axis} (got ${start}:${end})`,
    );
  }
  return x.map((d, i) => (i === axis ? end - start : d));
}

const sliceOp = defineOp("slice", {
  infer: (inputs, attrs) => {
    if (inputs.length !== 1) shapeFail("slice", inputs, "one input");
    checkWordDtype("slice", inputs);
    return { shape: sliceShape("slice", inputs, inputs[0].shape, attrs), dtype: inputs[0].dtype };
  },
  grad: (n, dy) => [n.graph.apply(sliceBwdOp, [dy], { ...n.attrs, shape: n.inputs[0].shape })],
});

// dx of a slice: dy placed at [start, end) along axis, zeros elsewhere. attrs: axis, start, end, shape.
const sliceBwdOp = defineOp("slice_bwd", {
  infer: (inputs, attrs) => {
    const shape = attrs.shape;
    const dy = inputs[0];
    if (inputs.length !== 1 || dy.dtype !== "f32") shapeFail("slice_bwd", inputs, "one f32 input");
    const want = sliceShape("slice_bwd", inputs, shape, attrs);
    if (want.join() !== dy.shape.join()) {
      shapeFail("slice_bwd", inputs, `dy of shape ${fmtShape(want)} (a slice of ${fmtShape(shape)})`);
    }
    return { shape: [...shape], dtype: "f32" };
  },
  grad: "none",
});

/**
 * x[start:end] along `axis` (end exclusive; default: the end of the axis). Negative axis/start/end
 * count from the end like Python, but unlike Python an out-of-range or empty range is an error rather
 * than silently clamped.
 */
export function slice(x: Node, axis: number, start: number, end?: number): Node {
  const a = normAxis("slice", axis, x.rank);
  const len = x.shape[a];
  const s = start < 0 ? start + len : start;
  // the default is taken after normAxis: x.shape[-1] would be undefined
  const e = end === undefined ? len : end < 0 ? end + len : end;
  if (s === 0 && e === len) return x;
  return x.graph.apply(sliceOp, [x], { axis: a, start: s, end: e });
}

const concatOp = defineOp("concat", {
  infer: (inputs, attrs) => {
    if (inputs.length < 1) shapeFail("concat", inputs, "at least one input");
    checkWordDtype("concat", inputs);
    const x = inputs[0];
    const axis = attrs.axis;
    if (!Number.isInteger(axis) || axis < 0 || axis >= x.rank) {
      shapeFail("concat", inputs, `an axis in 0..${x.rank - 1} (got ${axis})`);
    }
    let total = 0;
    for (const y of inputs) {
      const same = y.rank === x.rank && y.shape.every((d, i) => i === axis || d === x.shape[i]);
      if (!same || y.dtype !== x.dtype) {
        shapeFail(
          "concat",
          inputs,
          `inputs of one dtype and rank ${x.rank} that agree on every dim but axis ${axis}`,
        );
      }
      total += y.shape[axis];
    }
    return { shape: x.shape.map((d, i) => (i === axis ? total : d)), dtype: x.dtype };
  },
  // each input's gradient is its region of dy
  grad: (n, dy, needs) => {
    const axis = n.attrs.axis;
    let off = 0;
    return n.inputs.map((x, k) => {
      const len = x.shape[axis];
      off += len;
      return needs[k] ? slice(dy, axis, off - len, off) : undefined;
    });
  },
});

/** Joins tensors along `axis` (negative allowed); any number of inputs. */
export function concat(xs: readonly Node[], axis: number): Node {
  if (xs.length === 0) throw new ShapeError("concat: needs at least one input");
  const a = normAxis("concat", axis, xs[0].rank);
  if (xs.length === 1) return xs[0];
  return xs[0].graph.apply(concatOp, xs, { axis: a });
}

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const layoutOps = {
  reshape: reshapeOp,
  permute: permuteOp,
  slice: sliceOp,
  slice_bwd: sliceBwdOp,
  concat: concatOp,
};
