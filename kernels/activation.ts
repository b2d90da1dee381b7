// Activation kernels: one thread per element, forward `<act>_fwd` and backward `<act>_bwd` from one
// generator. WGSL has no erf, so GELU uses a complementary error function with ~1.2e-7 *relative*
// accuracy everywhere (Numerical Recipes' erfcc, a Chebyshev fit): computing Φ(x) = erfc(-x/√2)/2
// from erfc rather than 1 + erf keeps GELU's negative tail accurate instead of cancelling to 0.

import type { Node } from "../compiler/core/ir.ts";
import type { Activation } from "../compiler/ops/activation.ts";
import { grid1d, type KernelLowering, type KernelsFor, type LowerCtx, type Lowered } from "./kernel.ts";
import { bind, read, write } from "./bindings.ts";

const WG = 256;

const WGSL_GELU = /* wgsl */ `
// erfc(z) with fractional error < 1.2e-7 for all z (Numerical Recipes, 2nd ed., erfcc).
fn erfc_(z: f32) -> f32 {
  let a = abs(z);
  let t = 1.0 / (1.0 + 0.5 * a);
  let p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  let r = t * exp(-a * a + p);
  return select(2.0 - r, r, z >= 0.0);
}
// standard normal CDF
fn phi_cdf(x: f32) -> f32 {
  return 0.5 * erfc_(-x * 0.70710678118654752);
}
// standard normal density
fn phi_pdf(x: f32) -> f32 {
  return 0.39894228040143268 * exp(-0.5 * x * x);
}
`;

const WGSL_SIGMOID = /* wgsl */ `
// 1/(1+e^-x): for very negative x, exp overflows to +inf and the result is the correct 0.
fn sigmoid_(x: f32) -> f32 {
  return 1.0 / (1.0 + exp(-x));
}
`;

/** Per activation: helper functions, forward expression of `v`, derivative expression of `v` (also used by fused matmul epilogues, kernels/epilogue.ts). */
export const ACTIVATION_WGSL: Record<string, { helpers: string; fwd: string; dfdx: string }> = {
  gelu: { helpers: WGSL_GELU, fwd: "v * phi_cdf(v)", dfdx: "phi_cdf(v) + v * phi_pdf(v)" },
  silu: {
    helpers: WGSL_SIGMOID,
    fwd: "v * sigmoid_(v)",
    dfdx: "sigmoid_(v) * (1.0 + v * (1.0 - sigmoid_(v)))",
  },
  relu: { helpers: "", fwd: "max(v, 0.0)", dfdx: "select(0.0, 1.0, v > 0.0)" },
};

/** inPlace: which input (0 = x, 1 = dy) already sits in `out` (see OpDef.inPlace); it is not bound. */
function activationKernel(n: Node, ctx: LowerCtx, act: string, backward: boolean, inPlace?: number): Lowered {
  const d = ACTIVATION_WGSL[act];
  const g = grid1d(n.size, WG, ctx);
  const src = (k: number, name: string) => k === inPlace ? "out" : name;
  const io = bind({
    x: inPlace !== 0 && read(n.inputs[0]),
    dy: backward && inPlace !== 1 && read(n.inputs[1]),
    out: write(n),
  });
  const code = /* wgsl */ `
${io.wgsl}
const N: u32 = ${n.size}u;
${g.stride}
${d.helpers}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_STRIDE;
  if (i >= N) { return; }
  let v = ${src(0, "x")}[i];
  out[i] = ${backward ? `${src(1, "dy")}[i] * (${d.dfdx})` : d.fwd};
}
`;
  return {
    dispatches: [{
      label: `${act}_${backward ? "bwd" : "fwd"}`,
      code,
      bindings: io.bindings,
      workgroups: g.workgroups,
    }],
  };
}

/** The lowering of activation `act`'s forward op, or of its backward op. */
const lowering = (act: Activation, backward: boolean): KernelLowering => (n, ctx, _e, inPlace) =>
  activationKernel(n, ctx, act, backward, inPlace);

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const activationKernels: KernelsFor<Activation | `${Activation}_bwd`> = {
  gelu: lowering("gelu", false),
  gelu_bwd: lowering("gelu", true),
  silu: lowering("silu", false),
  silu_bwd: lowering("silu", true),
  relu: lowering("relu", false),
  relu_bwd: lowering("relu", true),
};
