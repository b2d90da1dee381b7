// CPU references (f64) of the layout family (reshape needs none: it is an alias). Written with
// explicit coordinates (multi-index loops), independent of the kernels' index arithmetic.
import { type RefOf, type RefsFor, strides, type T, tensor } from "./f64.ts";

/** Row-major coordinates of flat index i. */
function coords(i: number, shape: number[]): number[] {
  const st = strides(shape);
  return shape.map((_, d) => Math.floor(i / st[d]) % shape[d]);
}
function flat(c: number[], shape: number[]): number {
  const st = strides(shape);
  return c.reduce((a, v, d) => a + v * st[d], 0);
}

const permuteRef: RefOf<"permute"> = ([x], a, n) => {
  const out = tensor(n.shape);
  const perm = a.perm;
  for (let i = 0; i < out.data.length; i++) {
    const c = coords(i, out.shape);
    const xc = new Array<number>(perm.length);
    perm.forEach((p, k) => (xc[p] = c[k]));
    out.data[i] = x.data[flat(xc, x.shape)];
  }
  return out;
};

const sliceRef: RefOf<"slice"> = ([x], a, n) => {
  const out = tensor(n.shape);
  for (let i = 0; i < out.data.length; i++) {
    const c = coords(i, out.shape);
    c[a.axis] += a.start;
    out.data[i] = x.data[flat(c, x.shape)];
  }
  return out;
};

const sliceBwdRef: RefOf<"slice_bwd"> = ([dy], a, n) => {
  const dx = tensor(n.shape);
  for (let i = 0; i < dy.data.length; i++) {
    const c = coords(i, dy.shape);
    c[a.axis] += a.start;
    dx.data[flat(c, dx.shape)] = dy.data[i];
  }
  return dx;
};

const concatRef: RefOf<"concat"> = (xs: T[], a, n) => {
  const out = tensor(n.shape);
  let off = 0;
  for (const x of xs) {
    for (let i = 0; i < x.data.length; i++) {
      const c = coords(i, x.shape);
      c[a.axis] += off;
      out.data[flat(c, out.shape)] = x.data[i];
    }
    off += x.shape[a.axis];
  }
  return out;
};

/** The CPU references of this family (entries of tests/ref/table.ts). */
export const layoutRefs: RefsFor<"permute" | "slice" | "slice_bwd" | "concat"> = {
  permute: permuteRef,
  slice: sliceRef,
  slice_bwd: sliceBwdRef,
  concat: concatRef,
};
