// The kernel table: every op of the library (compiler/ops/attrs.ts) mapped to its WGSL lowering. It
// is a mapped type over OpName, so an op without a kernel — or a family whose kernels are not spread
// in here — is a type error, and each lowering gets its node's attributes typed.
//
// Custom ops (tests, experiments) are OpDefs made outside the op table that carry their own lowering
// (CustomOp); Graph.apply takes them like any op, and kernelOf finds their lowering on the node.

import { type Attrs, type Node, type OpDef, opDef } from "../compiler/core/ir.ts";
import { type AliasOp, isOpName, type OpAttrs, type OpName, OPS } from "../compiler/ops/table.ts";
import type { KernelLowering } from "./kernel.ts";
import { activationKernels } from "./activation.ts";
import { attentionKernels } from "./attention.ts";
import { batchnormKernels } from "./batchnorm.ts";
import { elementwiseKernels } from "./elementwise.ts";
import { gatherKernels } from "./gather.ts";
import { layoutKernels } from "./layout.ts";
import { lossKernels } from "./loss.ts";
import { dropPathKernels } from "./droppath.ts";
import { emaKernels } from "./ema.ts";
import { finiteKernels } from "./finite.ts";
import { matmulKernels } from "./matmul.ts";
import { normKernels } from "./norm.ts";
import { optimKernels } from "./optim.ts";
import { patchKernels } from "./patch.ts";
import { pointsKernels } from "./points.ts";
import { reduceKernels } from "./reduce.ts";
import { ropeKernels } from "./rope.ts";
import { softmaxKernels } from "./softmax.ts";

/** One lowering per op name (alias ops have none). */
export type KernelTable = { readonly [P in Exclude<OpName, AliasOp>]: KernelLowering<OpAttrs[P]> };

/** Every op's WGSL lowering, by name. */
export const KERNELS: KernelTable = {
  ...elementwiseKernels,
  ...reduceKernels,
  ...layoutKernels,
  ...matmulKernels,
  ...patchKernels,
  ...activationKernels,
  ...normKernels,
  ...softmaxKernels,
  ...attentionKernels,
  ...gatherKernels,
  ...lossKernels,
  ...optimKernels,
  ...ropeKernels,
  ...pointsKernels,
  ...batchnormKernels,
  ...dropPathKernels,
  ...emaKernels,
  ...finiteKernels,
};

/**
 * An op defined outside the op table, with its own kernel lowering: the extension point for tests
 * and experiments. Apply it with Graph.apply(def, inputs, attrs); lowering takes `kernel` from it.
 * It has no CPU reference, so tests/ref's interpreter refuses it.
 */
export interface CustomOp<A = Attrs> extends OpDef<A> {
  readonly kernel: KernelLowering<A>;
}

/** The lowering of op node n: its table entry, or a custom op's own kernel. */
export function kernelOf(n: Node): KernelLowering {
  const def = opDef(n);
  if (isOpName(n.op) && n.op !== "reshape" && OPS[n.op] === (def as unknown)) {
    // n was built with OPS[n.op], so its attrs are OpAttrs[n.op]: the entry's attrs type is n's
    return KERNELS[n.op] as unknown as KernelLowering;
  }
  if (isCustom(def)) return def.kernel;
  throw new Error(`kernels: op '${n.op}' is not in the op table and carries no kernel (see CustomOp)`);
}

function isCustom(def: OpDef): def is CustomOp {
  return typeof (def as Partial<CustomOp>).kernel === "function";
}
