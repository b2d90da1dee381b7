// WGSL kernels of the patch family: im2col (im2col_fwd) and col2im (im2col_bwd). With stride ==
// kernel every image pixel lands in exactly one column slot, so both directions are a gather with one
// thread per output element and no atomics: each thread decodes its own index and reads the other side.

import type { OpNode, Shape } from "../compiler/core/ir.ts";
import { grid1d, type KernelOf, type KernelsFor, type LowerCtx, type Lowered } from "./kernel.ts";
import { bind, read, write } from "./bindings.ts";

const WG = 256;

/** WGSL consts for an image of `shape` cut into p×p patches. */
function consts(shape: Shape, p: number): string {
  const [, C, H, W] = shape;
  return /* wgsl */ `
const C: u32 = ${C}u;
const H: u32 = ${H}u;
const W: u32 = ${W}u;
const P: u32 = ${p}u;
const PW: u32 = ${W / p}u;
const L: u32 = ${(H / p) * (W / p)}u;
const D: u32 = ${C * p * p}u;`;
}

function gather(
  n: OpNode<{ patch: number }>,
  ctx: LowerCtx,
  label: string,
  img: Shape,
  body: string,
): Lowered {
  const x = n.inputs[0];
  const g = grid1d(n.size, WG, ctx);
  const io = bind({ x: read(x), out: write(n) });
  const code = /* wgsl */ `
${io.wgsl}
const TOTAL: u32 = ${n.size}u;
${consts(img, n.attrs.patch)}
${g.stride}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_STRIDE;
  if (i >= TOTAL) { return; }
${body}
}
`;
  return {
    dispatches: [{
      label,
      code,
      bindings: io.bindings,
      workgroups: g.workgroups,
    }],
  };
}

// out is [B, L, D] with D = (c, ky, kx); read the pixel it comes from
const im2colKernel: KernelOf<"im2col"> = (n, ctx) =>
  gather(
    n,
    ctx,
    "im2col_fwd",
    n.inputs[0].shape,
    /* wgsl */ `
  let col = i % D; let l = (i / D) % L; let b = i / (D * L);
  let c = col / (P * P); let ky = (col / P) % P; let kx = col % P;
  let y = (l / PW) * P + ky; let xx = (l % PW) * P + kx;
  out[i] = x[((b * C + c) * H + y) * W + xx];`,
  );

// out is the image [B, C, H, W]; read the column slot its pixel went to
const col2imKernel: KernelOf<"col2im"> = (n, ctx) =>
  gather(
    n,
    ctx,
    "im2col_bwd",
    n.shape,
    /* wgsl */ `
  let xx = i % W; let y = (i / W) % H; let c = (i / (W * H)) % C; let b = i / (W * H * C);
  let l = (y / P) * PW + xx / P;
  let col = (c * P + y % P) * P + xx % P;
  out[i] = x[(b * L + l) * D + col];`,
  );

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const patchKernels: KernelsFor<"im2col" | "col2im"> = {
  im2col: im2colKernel,
  col2im: col2imKernel,
};
