// RoPE kernel: one thread per rotated pair (b, t, h, i), i < Dh/2, reading x[i] and x[i + Dh/2] of
// its head and writing both outputs. Label `rope_fwd`, or `rope_bwd` for the inverse rotation (which
// is what the gradient uses).
//
// inv_freq is baked in as a const array of the f32 values ropeInvFreq gives, and the angle is the f32
// product f32(t)·inv_freq, as in HF. WGSL's cos/sin are only specified to be accurate on [-π, π],
// and GPUs' fast versions lose accuracy far outside it (angles reach t radians at i = 0), so the
// angle is first reduced modulo 2π (Cody–Waite: 2π split into parts short enough that k·part is
// exact for k < 2^16, i.e. angles up to ~4·10^5 rad, degrading gently beyond).

import type { OpNode } from "../compiler/core/ir.ts";
import { type RopeAttrs, ropeDims, ropeInvFreq } from "../compiler/ops/rope.ts";
import { f32lit, grid1d, type KernelsFor, type LowerCtx, type Lowered } from "./kernel.ts";
import { bind, read, write } from "./bindings.ts";

const WG = 256;

/** 2π as a sum of f32 parts; the first three have 8 significant bits each, the last the rest. */
function twoPiParts(): number[] {
  const parts: number[] = [];
  let rest = 2 * Math.PI;
  for (let k = 0; k < 3; k++) {
    const e = Math.floor(Math.log2(Math.abs(rest)));
    const q = 2 ** (e - 7); // 8 bits: the leading one and 7 more
    const p = Math.trunc(rest / q) * q;
    parts.push(p);
    rest -= p;
  }
  parts.push(Math.fround(rest));
  return parts;
}
const TWO_PI = twoPiParts();

function ropeKernel(n: OpNode<RopeAttrs>, ctx: LowerCtx): Lowered {
  const x = n.inputs[0];
  const { B, T, H, Dh } = ropeDims(x, n.attrs);
  const half = Dh / 2;
  const invFreq = ropeInvFreq(Dh, n.attrs.theta, n.attrs.invFreqDtype);
  const inverse = n.attrs.inverse;
  const pairs = B * T * H * half;
  const g = grid1d(pairs, WG, ctx);
  const io = bind({ x: read(x), out: write(n) });
  const code = /* wgsl */ `
${io.wgsl}
const PAIRS: u32 = ${pairs}u;
const T: u32 = ${T}u;
const H: u32 = ${H}u;
const DH: u32 = ${Dh}u;
const HALF: u32 = ${half}u;
const OFFSET: u32 = ${n.attrs.positionOffset}u;
const INV_FREQ = array<f32, ${half}>(${[...invFreq].map(f32lit).join(", ")});
const INV_2PI: f32 = ${f32lit(1 / (2 * Math.PI))};
${TWO_PI.map((p, k) => `const P${k}: f32 = ${f32lit(p)};`).join("\n")}
${g.stride}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let p = gid.x + gid.y * GRID_STRIDE;
  if (p >= PAIRS) { return; }
  let i = p % HALF;
  let row = p / HALF;              // (b, t, h) flattened
  let bt = row / H;                // (b, t) flattened
  let pos = f32(bt % T + OFFSET);
  let angle = pos * INV_FREQ[i];   // f32 product, as HF
  // reduce to about [-π, π]: k·P0..k·P2 are exact and each subtraction nearly so
  let k = round(angle * INV_2PI);
  let r = (((angle - k * P0) - k * P1) - k * P2) - k * P3;
  let c = cos(r);
  let s = ${inverse ? "-sin(r)" : "sin(r)"};
  let lo = bt * (H * DH) + (row % H) * DH + i;
  let x1 = x[lo];
  let x2 = x[lo + HALF];
  out[lo] = x1 * c - x2 * s;
  out[lo + HALF] = x2 * c + x1 * s;
}
`;
  return {
    dispatches: [{
      label: inverse ? "rope_bwd" : "rope_fwd",
      code,
      bindings: io.bindings,
      workgroups: g.workgroups,
    }],
  };
}

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const ropeKernels: KernelsFor<"rope"> = {
  rope: ropeKernel,
};
