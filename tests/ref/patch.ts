// CPU references (f64) of the patch family: im2col and its inverse col2im, by explicit pixel indices.
import { type RefOf, type RefsFor, tensor } from "./f64.ts";

/** Visits every (b, l, col) of the column matrix with the pixel index it comes from. */
function eachPixel(shape: number[], p: number, f: (colIdx: number, pixIdx: number) => void) {
  const [B, C, H, W] = shape;
  const pw = W / p, L = (H / p) * pw, D = C * p * p;
  for (let b = 0; b < B; b++) {
    for (let l = 0; l < L; l++) {
      const py = Math.floor(l / pw), px = l % pw;
      for (let c = 0; c < C; c++) {
        for (let ky = 0; ky < p; ky++) {
          for (let kx = 0; kx < p; kx++) {
            const col = (c * p + ky) * p + kx;
            const y = py * p + ky, x = px * p + kx;
            f((b * L + l) * D + col, ((b * C + c) * H + y) * W + x);
          }
        }
      }
    }
  }
}

const im2colRef: RefOf<"im2col"> = ([img], attrs, node) => {
  const out = tensor(node.shape);
  eachPixel(img.shape, attrs.patch, (ci, pi) => (out.data[ci] = img.data[pi]));
  return out;
};

const col2imRef: RefOf<"col2im"> = ([cols], attrs, node) => {
  const out = tensor(node.shape);
  eachPixel([...node.shape], attrs.patch, (ci, pi) => (out.data[pi] += cols.data[ci]));
  return out;
};

/** The CPU references of this family (entries of tests/ref/table.ts). */
export const patchRefs: RefsFor<"im2col" | "col2im"> = {
  im2col: im2colRef,
  col2im: col2imRef,
};
