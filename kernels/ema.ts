// Model EMA kernel (see compiler/ops/ema.ts): one thread per element of the ema arena, reading the
// source arena at the same index (both arenas share one layout: the same shapes in the same order).

import { f32lit, grid1d, type KernelOf, type KernelsFor, spanLayout } from "./kernel.ts";
import { bind, read, write } from "./bindings.ts";

const WG = 256;

const emaUpdateKernel: KernelOf<"ema_update"> = (n, ctx) => {
  const k = n.attrs.count;
  const emas = n.inputs.slice(0, k), sources = n.inputs.slice(k);
  const len = spanLayout(emas).bytes / 4;
  const grid = grid1d(len, WG, ctx);
  const io = bind({ e: write({ span: emas }, "f32"), s: read({ span: sources }, "f32") });
  const code = /* wgsl */ `
${io.wgsl}
const N: u32 = ${len}u;
const DECAY: f32 = ${f32lit(n.attrs.decay)};
// 1 − decay formed in f64 on the host (1 − f32(0.9999) would be off by 1e-4 relative)
const ONE_MINUS_DECAY: f32 = ${f32lit(1 - n.attrs.decay)};
${grid.stride}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_STRIDE;
  if (i >= N) { return; }
  e[i] = DECAY * e[i] + ONE_MINUS_DECAY * s[i];
}
`;
  return { dispatches: [{ label: "ema_update", code, bindings: io.bindings, workgroups: grid.workgroups }] };
};

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const emaKernels: KernelsFor<"ema_update"> = { ema_update: emaUpdateKernel };
