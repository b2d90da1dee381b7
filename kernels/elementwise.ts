// Elementwise kernels: one thread per output element. Broadcasting is resolved at plan time: each
// input gets strides with 0 on broadcast dims, and the index arithmetic is unrolled per dimension
// (shapes are static), so equal-shape operands compile to a plain `out[i] = a[i] op b[i]`.
// These ops are their own backward (the gradient rules compose them), so there is no _bwd kernel.

import { type Node, type Shape, strides } from "../compiler/core/ir.ts";
import type { NoAttrs } from "../compiler/ops/attrs.ts";
import type { BinaryOp } from "../compiler/ops/elementwise.ts";
import {
  f32lit,
  grid1d,
  type KernelLowering,
  type KernelsFor,
  loadF32,
  type LowerCtx,
  WGSL_UNPACK,
} from "./kernel.ts";
import { bind, read, write } from "./bindings.ts";

const WG = 256;

/** Strides of `inShape` viewed as broadcast to `outShape` (0 where the dim is broadcast or missing). */
function bcastStrides(inShape: Shape, outShape: Shape): number[] {
  const r = outShape.length;
  const st = strides(inShape);
  return outShape.map((_, d) => {
    const k = d - (r - inShape.length);
    return k < 0 || inShape[k] === 1 ? 0 : st[k];
  });
}

/** WGSL statements computing `idx_<name>` for each input from the linear output index `i`. */
function indexCode(outShape: Shape, inputs: { name: string; shape: Shape }[]): string {
  const same = inputs.every((x) => x.shape.join() === outShape.join());
  if (same) return inputs.map((x) => `  let idx_${x.name} = i;`).join("\n");
  const os = strides(outShape);
  const lines = [`  var rem = i;`];
  for (const x of inputs) lines.push(`  var idx_${x.name} = 0u;`);
  outShape.forEach((_, d) => {
    lines.push(`  let c${d} = rem / ${os[d]}u; rem = rem - c${d} * ${os[d]}u;`);
    for (const x of inputs) {
      const s = bcastStrides(x.shape, outShape)[d];
      if (s) lines.push(`  idx_${x.name} = idx_${x.name} + c${d} * ${s}u;`);
    }
  });
  return lines.join("\n");
}

/**
 * out[i] = expr over the inputs' values v_<name>. With `inPlace` = k, input k's values are already in
 * `out` (the planner gave the output its buffer): it is read from there and not bound.
 */
function elementwise(
  n: Node,
  ctx: LowerCtx,
  label: string,
  expr: string,
  all: { name: string; node: Node }[],
  inPlace?: number,
) {
  const g = grid1d(n.size, WG, ctx);
  const inputs = all.filter((_, k) => k !== inPlace);
  const io = bind({
    ...Object.fromEntries(inputs.map((x) => [x.name, read(x.node)])),
    out: write(n),
  });
  const own = inPlace === undefined ? "" : `  let v_${all[inPlace].name} = out[i];`;
  const code = /* wgsl */ `
${io.wgsl}
const N: u32 = ${n.size}u;
${g.stride}
${WGSL_UNPACK}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_STRIDE;
  if (i >= N) { return; }
${indexCode(n.shape, inputs.map((x) => ({ name: x.name, shape: x.node.shape })))}
${inputs.map((x) => `  let v_${x.name} = ${loadF32(x.node.dtype, x.name, `idx_${x.name}`)};`).join("\n")}
${own}
  out[i] = ${expr};
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

const BINARY: Record<string, string> = {
  add: "v_a + v_b",
  sub: "v_a - v_b",
  mul: "v_a * v_b",
  div: "v_a / v_b",
};
/** A binary op's lowering: `expr` of a and b. */
const binary = (op: BinaryOp): KernelLowering<NoAttrs> => (n, ctx, _e, inPlace) =>
  elementwise(
    n,
    ctx,
    op,
    BINARY[op],
    [{ name: "a", node: n.inputs[0] }, { name: "b", node: n.inputs[1] }],
    inPlace,
  );

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const elementwiseKernels: KernelsFor<BinaryOp | "scale" | "expand" | "cast" | "fill"> = {
  add: binary("add"),
  sub: binary("sub"),
  mul: binary("mul"),
  div: binary("div"),
  scale: (n, ctx, _e, inPlace) =>
    elementwise(
      n,
      ctx,
      "scale",
      `v_x * ${f32lit(n.attrs.factor)} + ${f32lit(n.attrs.offset)}`,
      [{ name: "x", node: n.inputs[0] }],
      inPlace,
    ),
  expand: (n, ctx) => elementwise(n, ctx, "expand", "v_x", [{ name: "x", node: n.inputs[0] }]),
  cast: (n, ctx) =>
    elementwise(n, ctx, `cast_${n.inputs[0].dtype}`, "v_x", [{ name: "x", node: n.inputs[0] }]),
  fill: (n, ctx) => elementwise(n, ctx, "fill", f32lit(n.attrs.value), []),
};
