// Finiteness-check kernels (compiler/ops/finite.ts).
//   nonfinite_any:     one workgroup strides over the values (or over the partials) and ORs a bad bit;
//                      for long inputs up to 256 workgroups first write a partial bit each to scratch.
//                      Values are read as u32 bit patterns: NaN and ±Inf are the f32s whose exponent
//                      bits are all ones. Comparing floats (x != x) could be folded away by a shader
//                      compiler; the bit test cannot. An arena's zero padding is finite.
//   nonfinite_flag:    one thread: flag ← step when bad ≠ 0 and flag = 0.
// No atomics: the result does not depend on thread timing.

import {
  type BufRef,
  type KernelOf,
  type KernelsFor,
  type Lowered,
  spanLayout,
  wgslWorkgroupReduce,
} from "./kernel.ts";
import { bind, read, write } from "./bindings.ts";
import type { Node } from "../compiler/core/ir.ts";

const WG = 256;
/** Elements per thread above which the scan splits into partials. */
const PER_THREAD = 16;

/** OR over the workgroup's threads (every thread gets it). */
const WG_OR = wgslWorkgroupReduce("wg_or", "u32", WG, (a, b) => `${a} | ${b}`);

/** The bad bit of one f32 given as its u32 bit pattern. */
const BAD = (v: string) => `select(0u, 1u, (${v} & 0x7f800000u) == 0x7f800000u)`;

/** OR over src's `len` f32 values (a node or an arena span) of their bad bits (| acc) into n's output. */
function anyLowering(n: Node, src: BufRef, len: number, acc: Node | undefined): Lowered {
  const parts = Math.min(WG, Math.ceil(len / (WG * PER_THREAD)));
  const partsRef = { scratch: 0 };
  const finalDispatch = (from: "x" | "parts", count: number) => {
    const io = bind({
      src: read(from === "x" ? src : partsRef, "u32"),
      out: write(n),
      acc: acc && read(acc),
    });
    return {
      label: "nonfinite_any",
      code: /* wgsl */ `
${io.wgsl}
const LEN: u32 = ${count}u;
${WG_OR}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) t: u32) {
  var bad = 0u;
  for (var i = t; i < LEN; i += ${WG}u) { bad |= ${from === "x" ? BAD("src[i]") : "src[i]"}; }
  let any = wg_or(t, bad);
  if (t == 0u) { out[0] = any${acc ? " | acc[0]" : ""}; }
}
`,
      bindings: io.bindings,
      workgroups: [1, 1, 1] as const,
    };
  };
  if (parts <= 1) return { dispatches: [finalDispatch("x", len)] };
  const partialIo = bind({ x: read(src, "u32"), parts: write(partsRef, "u32") });
  const partial = {
    label: "nonfinite_partial",
    code: /* wgsl */ `
${partialIo.wgsl}
const LEN: u32 = ${len}u;
const STRIDE: u32 = ${parts * WG}u;
${WG_OR}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  var bad = 0u;
  for (var i = wid.x * ${WG}u + t; i < LEN; i += STRIDE) { bad |= ${BAD("x[i]")}; }
  let any = wg_or(t, bad);
  if (t == 0u) { parts[wid.x] = any; }
}
`,
    bindings: partialIo.bindings,
    workgroups: [parts, 1, 1] as const,
  };
  return { scratch: [4 * parts], dispatches: [partial, finalDispatch("parts", parts)] };
}

const nonfiniteAnyKernel: KernelOf<"nonfinite_any"> = (n) => {
  const { count, span } = n.attrs;
  const xs = n.inputs.slice(0, count);
  const src: BufRef = span ? { span: xs } : { node: xs[0] };
  const len = span ? spanLayout(xs).bytes / 4 : xs[0].size;
  return anyLowering(n, src, len, n.inputs[count]);
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
