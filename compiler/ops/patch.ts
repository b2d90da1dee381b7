// Patch embedding (ViT's Conv2d with stride = kernel = p, flattened to tokens): `patchEmbed`, built
// from `im2col` (each p×p patch of every channel → one row, columns ordered (c, ky, kx) like a
// flattened Conv2d weight) and `linear` (one matmul with the [D, C·p·p] weight). With stride == kernel
// patches do not overlap, so im2col is a permutation and its gradient `col2im` a plain scatter back.

import { fmtShape, type Node, type Shape, shapeFail } from "../core/ir.ts";
import { defineOp } from "./attrs.ts";
import { reshape } from "./layout.ts";
import { linear } from "./matmul.ts";

function checkPatch(op: string, inputs: readonly Node[], img: Shape, p: unknown): number {
  if (typeof p !== "number" || !Number.isInteger(p) || p < 1) {
    shapeFail(op, inputs, `a positive integer patch size (got ${p})`);
  }
  const [, , H, W] = img;
  if (H % p !== 0 || W % p !== 0) {
    shapeFail(op, inputs, `image height and width divisible by the patch size ${p} (got ${H}x${W})`);
  }
  return p;
}

const im2colOp = defineOp("im2col", {
  infer: (inputs, attrs) => {
    const x = inputs[0];
    if (inputs.length !== 1 || x.dtype !== "f32" || x.rank !== 4) {
      shapeFail("im2col", inputs, "one f32 image [B, C, H, W]");
    }
    const p = checkPatch("im2col", inputs, x.shape, attrs.patch);
    const [B, C, H, W] = x.shape;
    return { shape: [B, (H / p) * (W / p), C * p * p], dtype: "f32" };
  },
  grad: (n, dy) => [col2im(dy, n.inputs[0].shape, n.attrs.patch)],
});

const col2imOp = defineOp("col2im", {
  infer: (inputs, attrs) => {
    const x = inputs[0];
    const shape = attrs.shape;
    if (inputs.length !== 1 || x.dtype !== "f32" || !Array.isArray(shape) || shape.length !== 4) {
      shapeFail("col2im", inputs, "one f32 input and an image shape [B, C, H, W]");
    }
    const p = checkPatch("col2im", inputs, shape, attrs.patch);
    const [B, C, H, W] = shape;
    const want = [B, (H / p) * (W / p), C * p * p];
    if (x.shape.join() !== want.join()) {
      shapeFail("col2im", inputs, `columns ${fmtShape(want)} for image ${fmtShape(shape)}, patch ${p}`);
    }
    return { shape, dtype: "f32" };
  },
  // col2im is the transpose of a permutation, so its own gradient is im2col
  grad: (n, dy) => [im2col(dy, n.attrs.patch)],
});

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const patchOps = { im2col: im2colOp, col2im: col2imOp };

/** [B, C, H, W] → [B, L, C·p·p]: non-overlapping p×p patches in row-major order, columns (c, ky, kx). */
export function im2col(img: Node, patch: number): Node {
  return img.graph.apply(im2colOp, [img], { patch });
}

/** The inverse of im2col: [B, L, C·p·p] columns back to an image of `shape` [B, C, H, W]. */
export function col2im(cols: Node, shape: Shape, patch: number): Node {
  return cols.graph.apply(col2imOp, [cols], { patch, shape: [...shape] });
}

/**
 * Conv2d(C → D, kernel = stride = patch) then flatten(2).transpose(1, 2), as in timm's PatchEmbed:
 * img [B, C, H, W] f32, w [D, C, p, p] (PyTorch layout; f16/bf16 if frozen), bias [D] →
 * [B, (H/p)·(W/p), D].
 */
export function patchEmbed(img: Node, w: Node, bias: Node | undefined, patch: number): Node {
  const inputs = bias ? [img, w, bias] : [img, w];
  const fail = (what: string): never => shapeFail("patchEmbed", inputs, what);
  if (img.rank !== 4) fail("an image [B, C, H, W]");
  const C = img.shape[1];
  if (w.rank !== 4 || w.shape[1] !== C || w.shape[2] !== patch || w.shape[3] !== patch) {
    fail(`a weight [D, ${C}, ${patch}, ${patch}] (Conv2d layout)`);
  }
  const D = w.shape[0];
  if (bias && bias.shape.join() !== String(D)) fail(`a bias of shape [${D}]`);
  checkPatch("patchEmbed", inputs, img.shape, patch);
  return linear(im2col(img, patch), reshape(w, [D, C * patch * patch]), bias);
}
