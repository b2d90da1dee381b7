// Tests of the patch family: im2col / col2im forward and backward against their CPU references, and
// patchEmbed (forward and the gradients of img, w and bias) against an independent direct strided
// convolution written here (not via im2col); shape errors.

import { assertClose, checkOp, randParam } from "./harness.ts";
import { assertThrowsMsg, test } from "./testing.ts";
import { Graph } from "../compiler/core/ir.ts";
import { grad } from "../compiler/grad.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { mul } from "../compiler/ops/elementwise.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { col2im, im2col, patchEmbed } from "../compiler/ops/patch.ts";
import { Rng } from "../compiler/core/random.ts";

test("im2col / col2im: fwd + grads vs CPU reference", async (t) => {
  const cases: [number[], number][] = [[[2, 3, 8, 8], 4], [[1, 2, 6, 9], 3], [[2, 1, 5, 5], 1], [
    [1, 2, 4, 6],
    2,
  ]];
  for (const [shape, p] of cases) {
    await t.step(`im2col [${shape}] p=${p}`, async () => {
      await checkOp({ build: (g) => im2col(randParam(g, "img", shape), p) });
    });
    await t.step(`col2im [${shape}] p=${p}`, async () => {
      const [B, C, H, W] = shape;
      const cols = [B, (H / p) * (W / p), C * p * p];
      await checkOp({ build: (g) => col2im(randParam(g, "cols", cols), shape, p) });
    });
  }
});

/** Direct stride-p convolution + flatten/transpose: y[b, l, d] with l = py·(W/p) + px. */
function convRef(img: Float32Array, w: Float32Array, bias: Float32Array, s: number[], D: number, p: number) {
  const [B, C, H, W] = s;
  const PH = H / p, PW = W / p, L = PH * PW;
  const y = new Float64Array(B * L * D);
  for (let b = 0; b < B; b++) {
    for (let py = 0; py < PH; py++) {
      for (let px = 0; px < PW; px++) {
        for (let d = 0; d < D; d++) {
          let acc = bias[d];
          for (let c = 0; c < C; c++) {
            for (let ky = 0; ky < p; ky++) {
              for (let kx = 0; kx < p; kx++) {
                acc += w[((d * C + c) * p + ky) * p + kx] *
                  img[((b * C + c) * H + py * p + ky) * W + px * p + kx];
              }
            }
          }
          y[(b * L + py * PW + px) * D + d] = acc;
        }
      }
    }
  }
  return y;
}

/** Gradients of sum(y · cot) for the direct convolution, by the chain rule on its loops. */
function convGradRef(
  img: Float32Array,
  w: Float32Array,
  cot: Float32Array,
  s: number[],
  D: number,
  p: number,
) {
  const [B, C, H, W] = s;
  const PW = W / p, L = (H / p) * PW;
  const dimg = new Float64Array(img.length), dw = new Float64Array(w.length), db = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const l = Math.floor(y / p) * PW + Math.floor(x / p);
          const pi = ((b * C + c) * H + y) * W + x;
          for (let d = 0; d < D; d++) {
            const gy = cot[(b * L + l) * D + d];
            const wi = ((d * C + c) * p + (y % p)) * p + (x % p);
            dimg[pi] += gy * w[wi];
            dw[wi] += gy * img[pi];
          }
        }
      }
    }
  }
  for (let i = 0; i < B * L; i++) for (let d = 0; d < D; d++) db[d] += cot[i * D + d];
  return { dimg, dw, db };
}

const randArr = (r: Rng, n: number) => Float32Array.from({ length: n }, () => r.normal());

test("patchEmbed: fwd + grads of img, w, bias vs a direct strided convolution", async (t) => {
  const cases: [number[], number, number][] = [[[2, 3, 8, 8], 4, 5], [[2, 1, 28, 28], 7, 6], [
    [1, 2, 6, 9],
    3,
    4,
  ]];
  for (const [s, p, D] of cases) {
    await t.step(`[${s}] p=${p} D=${D}`, async () => {
      const r = new Rng(s.reduce((a, b) => a * 31 + b, p));
      const C = s[1];
      const img = randArr(r, s.reduce((a, b) => a * b)), w = randArr(r, D * C * p * p), bias = randArr(r, D);
      const g = new Graph();
      const ni = g.param("img", s, { init: img });
      const nw = g.param("w", [D, C, p, p], { init: w });
      const nb = g.param("bias", [D], { init: bias });
      const y = patchEmbed(ni, nw, nb, p);
      const cotNode = g.input("cot", y.shape);
      const grads = grad(sumAll(mul(y, cotNode)));
      const cot = randArr(r, y.size);
      const outs = [y, grads.get(ni)!, grads.get(nw)!, grads.get(nb)!];
      const exe = await compile(outs);
      exe.write(cotNode, cot);
      const [gy, gimg, gw, gb] = await exe.run(outs);
      exe.destroy();
      const want = convGradRef(img, w, cot, s, D, p);
      assertClose("patchEmbed forward vs direct conv", gy, convRef(img, w, bias, s, D, p), 1e-4);
      assertClose("patchEmbed d img vs direct conv", gimg, want.dimg, 1e-4);
      assertClose("patchEmbed d w vs direct conv", gw, want.dw, 1e-4);
      assertClose("patchEmbed d bias vs direct conv", gb, want.db, 1e-4);
    });
  }
  await t.step("rule vs finite differences and GPU vs CPU graph, with and without bias", async () => {
    await checkOp({
      build: (g) =>
        patchEmbed(
          randParam(g, "img", [2, 3, 8, 8]),
          randParam(g, "w", [5, 3, 4, 4]),
          randParam(g, "b", [5]),
          4,
        ),
    });
    await checkOp({
      build: (g) =>
        patchEmbed(randParam(g, "img", [1, 2, 6, 6]), randParam(g, "w", [3, 2, 3, 3]), undefined, 3),
    });
  });
});

test("patch: shape errors name the op and the shapes", () => {
  const g = new Graph();
  const img = g.input("img", [2, 3, 10, 8]);
  const w = g.input("w", [5, 3, 4, 4]);
  assertThrowsMsg(
    () => patchEmbed(img, w, g.input("b", [5]), 4),
    "patchEmbed",
    "[2,3,10,8]",
    "divisible",
    "10x8",
  );
  assertThrowsMsg(() => im2col(img, 4), "im2col", "[2,3,10,8]", "divisible");
  assertThrowsMsg(() => im2col(g.input("x3", [3, 8, 8]), 4), "im2col", "[3,8,8]", "[B, C, H, W]");
  const ok = g.input("ok", [2, 3, 8, 8]);
  assertThrowsMsg(() => patchEmbed(ok, g.input("w2", [5, 2, 4, 4]), undefined, 4), "patchEmbed", "[5,2,4,4]");
  assertThrowsMsg(() => patchEmbed(ok, w, g.input("b2", [4]), 4), "patchEmbed", "[4]", "bias of shape [5]");
  assertThrowsMsg(() => col2im(g.input("c", [2, 4, 40]), [2, 3, 8, 8], 4), "col2im", "[2,4,40]", "[2,4,48]");
});
