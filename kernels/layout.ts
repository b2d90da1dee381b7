// WGSL kernels of the layout family: permute, slice (+ slice_bwd), concat. reshape has none (alias).
// All are copies with one thread per element of what they write; shapes are static, so the index
// arithmetic is unrolled per dimension with the sizes baked in as constants. Tensors are 32-bit
// (the ops reject 16-bit storage), so every element is one array word and no two threads share one.

import { type Node, type Shape, strides } from "../compiler/core/ir.ts";
import {
  type Dispatch,
  grid1d,
  type KernelOf,
  type KernelsFor,
  type LowerCtx,
  storageType,
} from "./kernel.ts";
import { bind, read, write } from "./bindings.ts";

const WG = 256;

/** Product of dims [from, to). */
function prod(s: Shape, from: number, to: number): number {
  let p = 1;
  for (let i = from; i < to; i++) p *= s[i];
  return p;
}

/** A thread-per-element kernel over `n` items: `body` computes from `i` and writes its element. */
function copyKernel(
  label: string,
  n: number,
  ctx: LowerCtx,
  src: { name: string; node: Node },
  dst: { name: string; node: Node },
  body: string,
): Dispatch {
  const g = grid1d(n, WG, ctx);
  const io = bind({ [src.name]: read(src.node), [dst.name]: write(dst.node) });
  const code = /* wgsl */ `
${io.wgsl}
const N: u32 = ${n}u;
${g.stride}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_STRIDE;
  if (i >= N) { return; }
${body}
}
`;
  return {
    label,
    code,
    bindings: io.bindings,
    workgroups: g.workgroups,
  };
}

/**
 * The permutation with size-1 dims dropped and runs of axes that stay adjacent and in order merged
 * (e.g. [2,3,4,5] by [0,2,3,1] is [2,3,20] by [0,2,1]). Moves the same data as the original.
 */
export function canonicalPerm(shape: Shape, perm: readonly number[]): { shape: number[]; perm: number[] } {
  const keep = perm.filter((a) => shape[a] !== 1);
  // groups of output-consecutive axes that are also input-consecutive
  const groups: number[][] = [];
  for (const a of keep) {
    const last = groups[groups.length - 1];
    if (last && last[last.length - 1] + 1 === a) last.push(a);
    else groups.push([a]);
  }
  // number the groups in input order
  const byInput = [...groups].sort((g, h) => g[0] - h[0]);
  return {
    shape: byInput.map((g) => g.reduce((p, a) => p * shape[a], 1)),
    perm: groups.map((g) => byInput.indexOf(g)),
  };
}

const TILE = 16;

// permute, general case: output element i has coordinates c[d] (row-major in the output shape); its
// source is sum_d c[d] * xstride[perm[d]]. Size-1 output dims contribute nothing and are skipped.
// When the innermost axis stays innermost, consecutive threads read consecutive words, so this is
// already coalesced; when the permute is a (batched) 2-D transpose it is not, and permute_tiled
// below stages 16x16 tiles through workgroup memory so both reads and writes are coalesced.
const permuteKernel: KernelOf<"permute"> = (n, ctx) => {
  const x = n.inputs[0];
  const perm = n.attrs.perm;
  const c = canonicalPerm(x.shape, perm);
  const r = c.perm.length;
  const batched = r >= 2 && c.perm[r - 2] === r - 1 && c.perm[r - 1] === r - 2 &&
    c.perm.slice(0, r - 2).every((a, i) => a === i);
  if (batched) {
    const B = prod(c.shape, 0, r - 2), R = c.shape[r - 2], C = c.shape[r - 1];
    const wg = [Math.ceil(C / TILE), Math.ceil(R / TILE), B] as const;
    if (wg.every((w) => w <= ctx.maxWorkgroupsPerDim)) {
      return { dispatches: [tiledTranspose(x, n, R, C, wg)] };
    }
  }
  const os = strides(n.shape), xs = strides(x.shape);
  const lines = [`  var rem = i;`, `  var src = 0u;`];
  n.shape.forEach((d, k) => {
    if (d === 1) return;
    lines.push(`  let c${k} = rem / ${os[k]}u; rem = rem - c${k} * ${os[k]}u;`);
    lines.push(`  src = src + c${k} * ${xs[perm[k]]}u;`);
  });
  lines.push(`  out[i] = x[src];`);
  return {
    dispatches: [
      copyKernel(
        "permute_fwd",
        n.size,
        ctx,
        { name: "x", node: x },
        { name: "out", node: n },
        lines.join("\n"),
      ),
    ],
  };
};

/**
 * x viewed as [B, R, C] → out [B, C, R]: one 16x16 tile per workgroup (B = workgroups in z), staged
 * through workgroup memory padded to 17 columns to dodge bank conflicts.
 */
function tiledTranspose(
  x: Node,
  n: Node,
  R: number,
  C: number,
  wg: readonly [number, number, number],
): Dispatch {
  const t = storageType(x.dtype);
  const io = bind({ x: read(x, t), out: write(n, t) });
  const code = /* wgsl */ `
${io.wgsl}
const R: u32 = ${R}u;
const C: u32 = ${C}u;
var<workgroup> tile: array<${t}, ${TILE * (TILE + 1)}>;
@compute @workgroup_size(${TILE}, ${TILE})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = wid.z;
  let r = wid.y * ${TILE}u + lid.y;
  let c = wid.x * ${TILE}u + lid.x;
  if (r < R && c < C) { tile[lid.y * ${TILE + 1}u + lid.x] = x[(b * R + r) * C + c]; }
  workgroupBarrier();
  // write the transposed tile: consecutive threads (lid.x) now walk along R, contiguous in out
  let r2 = wid.y * ${TILE}u + lid.x;
  let c2 = wid.x * ${TILE}u + lid.y;
  if (r2 < R && c2 < C) { out[(b * C + c2) * R + r2] = tile[lid.x * ${TILE + 1}u + lid.y]; }
}
`;
  return {
    label: "permute_tiled",
    code,
    bindings: io.bindings,
    workgroups: wg,
  };
}

/** [OUTER, LEN, INNER] view of a shape around `axis`. */
function around(s: Shape, axis: number) {
  return { outer: prod(s, 0, axis), len: s[axis], inner: prod(s, axis + 1, s.length) };
}

// slice: output viewed as [OUTER, LEN_OUT, INNER] reads x at [o, start + j, r].
const sliceKernel: KernelOf<"slice"> = (n, ctx) => {
  const x = n.inputs[0];
  const axis = n.attrs.axis, start = n.attrs.start;
  const { len: lo, inner } = around(n.shape, axis);
  const li = x.shape[axis];
  const body = `
  let r = i % ${inner}u;
  let j = (i / ${inner}u) % ${lo}u;
  let o = i / ${inner * lo}u;
  out[i] = x[(o * ${li}u + j + ${start}u) * ${inner}u + r];`;
  return {
    dispatches: [
      copyKernel("slice_fwd", n.size, ctx, { name: "x", node: x }, { name: "out", node: n }, body),
    ],
  };
};

// slice_bwd: one thread per dx element; inside [start, end) on the axis it takes dy, else 0.
const sliceBwdKernel: KernelOf<"slice_bwd"> = (n, ctx) => {
  const dy = n.inputs[0];
  const { axis, start, end } = n.attrs;
  const { len: li, inner } = around(n.shape, axis);
  const lo = end - start;
  const body = `
  let r = i % ${inner}u;
  let j = (i / ${inner}u) % ${li}u;
  let o = i / ${inner * li}u;
  var v = 0.0;
  if (j >= ${start}u && j < ${end}u) { v = dy[(o * ${lo}u + j - ${start}u) * ${inner}u + r]; }
  dx[i] = v;`;
  return {
    dispatches: [
      copyKernel("slice_bwd", n.size, ctx, { name: "dy", node: dy }, { name: "dx", node: n }, body),
    ],
  };
};

// concat: one dispatch per input (so any number of inputs fits the 8-bindings-per-shader limit),
// each copying its input into its own region of the output; the regions are disjoint and together
// cover the output, so every element is written exactly once.
const concatKernel: KernelOf<"concat"> = (n, ctx) => {
  const axis = n.attrs.axis;
  const { len: lo, inner } = around(n.shape, axis);
  let off = 0;
  const dispatches = n.inputs.map((x) => {
    const li = x.shape[axis];
    const body = `
  let r = i % ${inner}u;
  let j = (i / ${inner}u) % ${li}u;
  let o = i / ${inner * li}u;
  out[(o * ${lo}u + j + ${off}u) * ${inner}u + r] = x[i];`;
    off += li;
    return copyKernel("concat_fwd", x.size, ctx, { name: "x", node: x }, { name: "out", node: n }, body);
  });
  return { dispatches };
};

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const layoutKernels: KernelsFor<"permute" | "slice" | "slice_bwd" | "concat"> = {
  permute: permuteKernel,
  slice: sliceKernel,
  slice_bwd: sliceBwdKernel,
  concat: concatKernel,
};
