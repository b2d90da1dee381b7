// CPU references (f64) of the activation family. JavaScript has no erf, so erfc is computed here to
// near double precision: the Maclaurin series of erf for |z| < 2.5 and the Laplace continued
// fraction of erfc beyond (independent of the kernel's Chebyshev fit).
import type { Activation } from "../../compiler/ops/activation.ts";
import type { NoAttrs } from "../../compiler/ops/attrs.ts";
import { type RefFn, type RefsFor, tensor } from "./f64.ts";

/** erfc(z) in f64 (relative error ~1e-15). */
export function erfc(z: number): number {
  if (z < -2.5) return 2 - erfc(-z);
  if (z < 2.5) {
    // erf(z) = 2/√π Σ (-1)^k z^(2k+1) / (k! (2k+1))
    let term = z, sum = z;
    for (let k = 1; k < 200 && Math.abs(term) > 1e-17 * Math.abs(sum); k++) {
      term *= -z * z / k;
      sum += term / (2 * k + 1);
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(z) = e^{-z²}/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + ...)))), evaluated from the tail
  let f = z;
  for (let k = 120; k >= 1; k--) f = z + (k / 2) / f;
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
}

const Phi = (x: number) => 0.5 * erfc(-x / Math.SQRT2);
const pdf = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

const ACTS: Record<Activation, { f: (x: number) => number; df: (x: number) => number }> = {
  gelu: { f: (x) => x * Phi(x), df: (x) => Phi(x) + x * pdf(x) },
  silu: { f: (x) => x * sigmoid(x), df: (x) => sigmoid(x) + x * sigmoid(x) * (1 - sigmoid(x)) },
  relu: { f: (x) => (x > 0 ? x : 0), df: (x) => (x > 0 ? 1 : 0) },
};

const forward = (act: Activation): RefFn<NoAttrs> => ([x]) => tensor(x.shape, x.data.map(ACTS[act].f));
const backward = (act: Activation): RefFn<NoAttrs> => ([x, dy]) =>
  tensor(x.shape, x.data.map((v, i) => dy.data[i] * ACTS[act].df(v)));

/** The CPU references of this family (entries of tests/ref/table.ts). */
export const activationRefs: RefsFor<Activation | `${Activation}_bwd`> = {
  gelu: forward("gelu"),
  gelu_bwd: backward("gelu"),
  silu: forward("silu"),
  silu_bwd: backward("silu"),
  relu: forward("relu"),
  relu_bwd: backward("relu"),
};
