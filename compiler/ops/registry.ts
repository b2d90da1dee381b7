// The op table. Each op is defined once (compiler/ops/<family>.ts) with its shape rule and gradient
// rule; its kernel lowering is registered separately by kernels/<family>.ts. Keeping them in two
// tables lets the compiler (graph building, autodiff) run without a GPU, e.g. in the CPU tests.

import type { Attrs, Node, OutSpec } from "../core/ir.ts";
import type { KernelLowering } from "../../kernels/kernel.ts";

/**
 * A gradient rule: given the node, the gradient of the loss w.r.t. its output (`dy`, same shape) and
 * which inputs need a gradient, return one gradient per input (undefined where not needed). Rules
 * build their result out of other ops of the same IR, so the backward graph is an ordinary graph.
 */
export type GradRule = (node: Node, dy: Node, needs: readonly boolean[]) => (Node | undefined)[];

export interface OpDef {
  name: string;
  /** Validates inputs/attrs and returns the output spec; throws ShapeError naming the op. */
  infer(inputs: readonly Node[], attrs: Attrs): OutSpec;
  /** Missing: the op is not differentiable (indices, backward ops, optimizer updates). */
  grad?: GradRule;
  /**
   * Indices of inputs this op updates in place (side-effect ops such as optimizer updates); a
   * function when they depend on the node (adamw_fused writes its first k inputs and its m and v).
   */
  writes?: readonly number[] | ((n: Node) => readonly number[]);
  /** Output shares the storage of input 0 (reshape): no kernel, no copy. */
  alias?: boolean;
  /**
   * Inputs whose buffer the output may take over when that input dies at this op (elementwise ops:
   * element i is read and written by the same thread). The kernel lowering is then told which input
   * lives in `out` (KernelLowering's `inPlace`).
   */
  inPlace?: readonly number[];
  /**
   * Groups of the node's inputs that must be stored back to back, in order, in one buffer, each at
   * a 256-byte-aligned offset (an "arena"; compiler/lower.ts), so that one binding ({ span }) covers
   * all of them: e.g. a fused optimizer update over every param, gradient and moment.
   */
  spans?: (node: Node) => readonly (readonly Node[])[];
}

const ops = new Map<string, OpDef>();
const kernels = new Map<string, KernelLowering>();

export function defineOp(def: OpDef): OpDef {
  if (ops.has(def.name)) throw new Error(`registry: op '${def.name}' defined twice`);
  ops.set(def.name, def);
  return def;
}

export function getOp(name: string): OpDef {
  const d = ops.get(name);
  if (!d) throw new Error(`registry: unknown op '${name}'`);
  return d;
}

export function allOps(): string[] {
  return [...ops.keys()];
}

export function defineKernel(op: string, lower: KernelLowering): void {
  if (kernels.has(op)) throw new Error(`registry: kernel for '${op}' defined twice`);
  kernels.set(op, lower);
}

/** The inputs node n updates in place (OpDef.writes resolved for n); undefined for ordinary ops. */
export function writesOf(n: Node): readonly number[] | undefined {
  const w = getOp(n.op).writes;
  return typeof w === "function" ? w(n) : w;
}

export function getKernel(op: string): KernelLowering {
  const k = kernels.get(op);
  if (!k) throw new Error(`registry: op '${op}' has no kernel (is kernels/index.ts imported?)`);
  return k;
}
