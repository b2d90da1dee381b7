// Drop path kernel (see compiler/ops/droppath.ts): one thread per element; the sample's keep bit is
// the hash of (seed, stream, element / per-sample size), recomputed by every thread of the sample
// (three integer hashes: cheaper than a second dispatch and a mask buffer).

import { DROPOUT_HASH, dropThreshold } from "../compiler/ops/batchnorm.ts";
import { STREAM_SALT } from "../compiler/ops/droppath.ts";
import { f32lit, grid1d, type KernelOf, type KernelsFor } from "./kernel.ts";
import { bind, read, write } from "./bindings.ts";

const WG = 256;

const dropPathKernel: KernelOf<"drop_path"> = (n, ctx) => {
  const [x, seed] = n.inputs;
  const { p, stream } = n.attrs;
  const grid = grid1d(x.size, WG, ctx);
  const io = bind({ x: read(x), seed: read(seed), out: write(n) });
  const h = DROPOUT_HASH;
  const code = /* wgsl */ `
${io.wgsl}
const N: u32 = ${x.size}u;
const PER_SAMPLE: u32 = ${x.size / x.shape[0]}u;
const THRESHOLD: u32 = ${dropThreshold(p)}u;
const SCALE: f32 = ${f32lit(1 / (1 - p))};
${grid.stride}
fn pcg(v: u32) -> u32 {
  let state = v * ${h.lcgMul}u + ${h.lcgAdd}u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * ${h.rxsMul}u;
  return (word >> 22u) ^ word;
}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_STRIDE;
  if (i >= N) { return; }
  let key = pcg(pcg(bitcast<u32>(seed[0]) + ${h.seedOffset}u) ^ pcg(${(stream ^ STREAM_SALT) >>> 0}u));
  let hv = pcg(pcg(i / PER_SAMPLE) ^ key);
  out[i] = select(x[i] * SCALE, 0.0, hv < THRESHOLD);
}
`;
  return { dispatches: [{ label: "drop_path", code, bindings: io.bindings, workgroups: grid.workgroups }] };
};

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const dropPathKernels: KernelsFor<"drop_path"> = { drop_path: dropPathKernel };
