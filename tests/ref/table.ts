// The CPU reference table (tests only): every op of the library mapped to its f64 reference. It is a
// mapped type over OpName, so an op without a reference — or a family whose references are not
// spread in here — is a type error, and each reference gets its attributes typed.

import { type Node, opDef } from "../../compiler/core/ir.ts";
import { type AliasOp, isOpName, type OpName, OPS } from "../../compiler/ops/table.ts";
import type { OpAttrs } from "../../compiler/ops/attrs.ts";
import type { RefFn } from "./f64.ts";
import { activationRefs } from "./activation.ts";
import { attentionRefs } from "./attention.ts";
import { batchnormRefs } from "./batchnorm.ts";
import { elementwiseRefs } from "./elementwise.ts";
import { gatherRefs } from "./gather.ts";
import { layoutRefs } from "./layout.ts";
import { lossRefs, softLossRefs } from "./loss.ts";
import { dropPathRefs } from "./droppath.ts";
import { emaRefs } from "./ema.ts";
import { finiteRefs } from "./finite.ts";
import { matmulRefs } from "./matmul.ts";
import { normRefs } from "./norm.ts";
import { optimRefs } from "./optim.ts";
import { patchRefs } from "./patch.ts";
import { pointsRefs } from "./points.ts";
import { reduceRefs } from "./reduce.ts";
import { ropeRefs } from "./rope.ts";
import { softmaxRefs } from "./softmax.ts";

/** One reference per op name (alias ops share their input's values and have none). */
export type RefTable = { readonly [P in Exclude<OpName, AliasOp>]: RefFn<OpAttrs[P]> };

/** Every op's CPU reference, by name. */
export const REFS: RefTable = {
  ...elementwiseRefs,
  ...reduceRefs,
  ...layoutRefs,
  ...matmulRefs,
  ...patchRefs,
  ...activationRefs,
  ...normRefs,
  ...softmaxRefs,
  ...attentionRefs,
  ...gatherRefs,
  ...lossRefs,
  ...optimRefs,
  ...ropeRefs,
  ...pointsRefs,
  ...batchnormRefs,
  ...softLossRefs,
  ...dropPathRefs,
  ...emaRefs,
  ...finiteRefs,
};

/** The reference of op node n; custom ops (kernels/table.ts CustomOp) have none. */
export function refOf(n: Node): RefFn<unknown> {
  if (isOpName(n.op) && n.op !== "reshape" && OPS[n.op] === (opDef(n) as unknown)) {
    // n was built with OPS[n.op], so its attrs are OpAttrs[n.op]
    return REFS[n.op] as RefFn<unknown>;
  }
  throw new Error(`interpret: op '${n.op}' has no CPU reference (not an op of compiler/ops/table.ts)`);
}
