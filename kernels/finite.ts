// Finiteness-check kernels (compiler/ops/finite.ts).
//   nonfinite_any:     ORs a bad bit over the values (kernels/reduce_all.ts: one workgroup, or for
//                      long inputs up to 256 workgroups writing partial bits first, nonfinite_partial).
//                      Values are read as u32 bit patterns: NaN and ±Inf are the f32s whose exponent
//                      bits are all ones. Comparing floats (x != x) could be folded away by a shader
//                      compiler; the bit test cannot. An arena's zero padding is finite.
//   nonfinite_flag:    one thread: flag ← step when bad ≠ 0 and flag = 0.
// No atomics: the result does not depend on thread timing.

import { type BufRef, type KernelOf, type KernelsFor, spanLayout } from "./kernel.ts";
import { bind, read, write } from "./bindings.ts";
import { type ReduceAll, reduceAllLowering } from "./reduce_all.ts";

/** OR of the bad bits of u32 bit patterns: 1 where the f32 is NaN or ±Inf (all exponent bits set). */
const ANY_NONFINITE: ReduceAll = {
  label: "nonfinite_any",
  partialLabel: "nonfinite_partial",
  type: "u32",
  identity: "0u",
  map: (v) => `select(0u, 1u, (${v} & 0x7f800000u) == 0x7f800000u)`,
  combine: (a, b) => `${a} | ${b}`,
};

const nonfiniteAnyKernel: KernelOf<"nonfinite_any"> = (n) => {
  const { count, span } = n.attrs;
  const xs = n.inputs.slice(0, count);
  const src: BufRef = span ? { span: xs } : { node: xs[0] };
  const len = span ? spanLayout(xs).bytes / 4 : xs[0].size;
  return reduceAllLowering(n, src, len, n.inputs[count], ANY_NONFINITE);
};

const nonfiniteFlagKernel: KernelOf<"nonfinite_flag"> = (n) => {
  const [bad, step, flag] = n.inputs;
  const io = bind({ bad: read(bad), step: read(step), flag: write(flag) });
  return {
    dispatches: [{
      label: "nonfinite_flag",
      code: /* wgsl */ `
${io.wgsl}
@compute @workgroup_size(1)
fn main() {
  if (bad[0] != 0u && flag[0] == 0u) { flag[0] = step[0]; }
}
`,
      bindings: io.bindings,
      workgroups: [1, 1, 1],
    }],
  };
};

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const finiteKernels: KernelsFor<"nonfinite_any" | "nonfinite_flag"> = {
  nonfinite_any: nonfiniteAnyKernel,
  nonfinite_flag: nonfiniteFlagKernel,
};
