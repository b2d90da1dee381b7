// Drop path kernel (see compiler/ops/droppath.ts): one thread per element; the sample's keep bit is
// the hash of (seed, stream, element / per-sample size), recomputed by every thread of the sample
// (three integer hashes: cheaper than a second dispatch and a mask buffer).

import { STREAM_SALT } from "../compiler/ops/droppath.ts";
import type { KernelOf, KernelsFor } from "./kernel.ts";
import { dropLowering } from "./batchnorm.ts";

const dropPathKernel: KernelOf<"drop_path"> = (n, ctx) => {
  const x = n.inputs[0];
  const { p, stream } = n.attrs;
  return dropLowering("drop_path", n, p, {
    consts: `const PER_SAMPLE: u32 = ${x.size / x.shape[0]}u;`,
    key: (seedKey) => `pcg(${seedKey} ^ pcg(${(stream ^ STREAM_SALT) >>> 0}u))`,
    unit: "i / PER_SAMPLE",
  }, ctx);
};

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const dropPathKernels: KernelsFor<"drop_path"> = { drop_path: dropPathKernel };
