// CPU references (f64) of the optim family: sum of squares, clip coefficient, one AdamW step written
// as torch.optim.AdamW's single-tensor loop (weight decay, moments, bias-corrected update), and the
// fused forms: sumsq_span over several tensors, adamw_fused as that loop per param (decayed first).
import { ADAMW_HYPER, type AdamWAttrs } from "../../compiler/ops/optim.ts";
import { type RefOf, type RefsFor, type T, tensor } from "./f64.ts";

const sumsqRef: RefOf<"sumsq"> = ([x, acc]) => {
  let s = acc ? acc.data[0] : 0;
  for (const v of x.data) s += v * v;
  return tensor([1], [s]);
};

const sumsqSpanRef: RefOf<"sumsq_span"> = (xs, a) => {
  let s = xs[a.count] ? xs[a.count].data[0] : 0;
  for (const x of xs.slice(0, a.count)) for (const v of x.data) s += v * v;
  return tensor([1], [s]);
};

const clipCoefRef: RefOf<"clip_coef"> = ([total], a) =>
  tensor([1], [Math.min(1, a.maxNorm / (Math.sqrt(total.data[0]) + 1e-6))]);

/** One torch.optim.AdamW step of one param: the new [p, m, v]. */
function adamwStep(p: T, g: T, m: T, v: T, hyper: T, coef: T | undefined, a: AdamWAttrs): T[] {
  const lr = hyper.data[ADAMW_HYPER.lr];
  const bc1 = hyper.data[ADAMW_HYPER.bc1], bc2 = hyper.data[ADAMW_HYPER.bc2];
  const c = coef ? coef.data[0] : 1;
  const np = tensor(p.shape), nm = tensor(p.shape), nv = tensor(p.shape);
  for (let i = 0; i < p.data.length; i++) {
    const grad = g.data[i] * c;
    const decayed = p.data[i] * (1 - lr * a.weightDecay);
    nm.data[i] = a.beta1 * m.data[i] + (1 - a.beta1) * grad;
    nv.data[i] = a.beta2 * v.data[i] + (1 - a.beta2) * grad * grad;
    const stepSize = lr / bc1;
    const denom = Math.sqrt(nv.data[i]) / Math.sqrt(bc2) + a.eps;
    np.data[i] = decayed - stepSize * nm.data[i] / denom;
  }
  return [np, nm, nv];
}

// Returns the new [p, m, v] (adamw writes inputs 0, 2, 3).

// adamw_fused.<k> writes every p, then every m, then every v; the first `decayed` params decay.
const adamwFusedRef: RefOf<"adamw_fused"> = (x, a) => {
  const k = Math.floor(x.length / 4);
  const out: T[][] = [];
  for (let i = 0; i < k; i++) {
    const attrs = { ...a, weightDecay: i < a.decayed ? a.weightDecay : 0 };
    out.push(adamwStep(x[i], x[k + i], x[2 * k + i], x[3 * k + i], x[4 * k], x[4 * k + 1], attrs));
  }
  return [...out.map((r) => r[0]), ...out.map((r) => r[1]), ...out.map((r) => r[2])];
};

/** The CPU references of this family (entries of tests/ref/table.ts). */
export const optimRefs: RefsFor<"sumsq" | "sumsq_span" | "clip_coef" | "adamw" | "adamw_fused"> = {
  sumsq: sumsqRef,
  sumsq_span: sumsqSpanRef,
  clip_coef: clipCoefRef,
  adamw: ([p, g, m, v, hyper, coef], a) => adamwStep(p, g, m, v, hyper, coef, a),
  adamw_fused: adamwFusedRef,
};
