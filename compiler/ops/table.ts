// The op table: every op of the library (compiler/ops/attrs.ts lists them) mapped to its definition.
// It is a mapped type over OpName, so an op without a definition — or a family whose definitions are
// not spread in here — is a type error. Nodes carry their OpDef, so the compiler does not look ops up
// here; kernels/table.ts and tests/ref/table.ts use the table to tell library ops from custom ones,
// and tests use it to apply an op directly (e.g. a backward op).

import type { OpDefOf, OpName } from "./attrs.ts";
import { activationOps } from "./activation.ts";
import { attentionOps } from "./attention.ts";
import { batchnormOps } from "./batchnorm.ts";
import { broadcastOps } from "./broadcast.ts";
import { elementwiseOps } from "./elementwise.ts";
import { gatherOps } from "./gather.ts";
import { layoutOps } from "./layout.ts";
import { lossOps } from "./loss.ts";
import { dropPathOps } from "./droppath.ts";
import { emaOps } from "./ema.ts";
import { finiteOps } from "./finite.ts";
import { matmulOps } from "./matmul.ts";
import { normOps } from "./norm.ts";
import { optimOps } from "./optim.ts";
import { patchOps } from "./patch.ts";
import { pointsOps } from "./points.ts";
import { reduceOps } from "./reduce.ts";
import { ropeOps } from "./rope.ts";
import { softmaxOps } from "./softmax.ts";

export type { AliasOp, OpAttrs, OpDefOf, OpName } from "./attrs.ts";

/** One definition per op name. */
export type OpTable = { readonly [P in OpName]: OpDefOf<P> };

/** Every op of the library, by name. */
export const OPS: OpTable = {
  ...elementwiseOps,
  ...broadcastOps,
  ...reduceOps,
  ...layoutOps,
  ...matmulOps,
  ...patchOps,
  ...activationOps,
  ...normOps,
  ...softmaxOps,
  ...attentionOps,
  ...gatherOps,
  ...lossOps,
  ...optimOps,
  ...ropeOps,
  ...pointsOps,
  ...batchnormOps,
  ...dropPathOps,
  ...emaOps,
  ...finiteOps,
};

/** True when `name` is an op of the library (not a custom op). */
export function isOpName(name: string): name is OpName {
  return Object.hasOwn(OPS, name);
}
