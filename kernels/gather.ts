// WGSL kernels of the gather family.
//
// gather_fwd: one thread per output element (p, d) reads table[idx[p], d]; an index outside [0, V)
// gives 0 (checked before the read, so nothing is read out of bounds).
//
// scatter_add (the table gradient) must sum the rows of every position that shares an index, and
// WGSL has no f32 atomics. Instead of racing, it builds per-row linked lists of positions in
// increasing order and lets one thread per output element (v, d) walk its row's list:
//   scatter_add_init: head[v] = -1                                     (one thread per table row)
//   scatter_add_link: next[p] = the next position q > p with idx[q] = idx[p], or -1; the first
//                     position of each index writes head[idx[p]] = p  (one thread per position;
//                     exactly one writer per row, so no race)
//   scatter_add_sum:  out[v, d] = sum of src[p, d] along v's list       (one thread per output)
// Every output element is written exactly once and the summation order is fixed (ascending p), so
// the result is deterministic. Cost: the sum is O(V·D + N·D); the link pass scans indices forward and
// backward with early exit, O(N²) index compares in the worst case (all indices distinct) — cheap
// next to the sums for batch·seq positions in the thousands, and independent of D.

import { grid1d, type KernelOf, type KernelsFor, loadF32, WGSL_UNPACK } from "./kernel.ts";
import { bind, read, write } from "./bindings.ts";

const WG = 256;

const gatherKernel: KernelOf<"gather"> = (n, ctx) => {
  const [table, idx] = n.inputs;
  const [V, D] = table.shape;
  const g = grid1d(n.size, WG, ctx);
  const io = bind({ tbl: read(table), idx: read(idx), out: write(n) });
  const code = /* wgsl */ `
${io.wgsl}
const N: u32 = ${n.size}u;
const V: i32 = ${V};
const D: u32 = ${D}u;
${g.stride}
${WGSL_UNPACK}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_STRIDE;
  if (i >= N) { return; }
  let v = idx[i / D];
  var r = 0.0;
  if (v >= 0 && v < V) {
    let at = u32(v) * D + i % D;
    r = ${loadF32(table.dtype, "tbl", "at")};
  }
  out[i] = r;
}
`;
  return {
    dispatches: [{
      label: "gather_fwd",
      code,
      bindings: io.bindings,
      workgroups: g.workgroups,
    }],
  };
};

const scatterAddKernel: KernelOf<"scatter_add"> = (n, ctx) => {
  const [idx, src] = n.inputs;
  const [V, D] = n.shape;
  const N = idx.size;
  const consts = `const N: u32 = ${N}u;\nconst V: i32 = ${V};\nconst D: u32 = ${D}u;`;
  const gi = grid1d(V, WG, ctx), gl = grid1d(N, WG, ctx), gs = grid1d(n.size, WG, ctx);
  // scratch 0: next[p] (N positions), scratch 1: head[v] (V table rows)
  const next = { scratch: 0 }, head = { scratch: 1 };
  const initIo = bind({ head: write(head, "i32") });
  const linkIo = bind({ idx: read(idx), next: write(next, "i32"), head: write(head, "i32") });
  const sumIo = bind({ src: read(src), next: read(next, "i32"), head: read(head, "i32"), out: write(n) });
  const init = /* wgsl */ `
${initIo.wgsl}
${consts}
${gi.stride}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let v = gid.x + gid.y * GRID_STRIDE;
  if (v >= u32(V)) { return; }
  head[v] = -1;
}
`;
  const link = /* wgsl */ `
${linkIo.wgsl}
${consts}
${gl.stride}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let p = gid.x + gid.y * GRID_STRIDE;
  if (p >= N) { return; }
  let v = idx[p];
  var nxt = -1;
  if (v >= 0 && v < V) {
    for (var q = p + 1u; q < N; q++) {
      if (idx[q] == v) { nxt = i32(q); break; }
    }
    var first = true;
    for (var q = i32(p) - 1; q >= 0; q--) {
      if (idx[q] == v) { first = false; break; }
    }
    if (first) { head[v] = i32(p); }
  }
  next[p] = nxt;
}
`;
  const sum = /* wgsl */ `
${sumIo.wgsl}
${consts}
${gs.stride}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_STRIDE;
  if (i >= u32(V) * D) { return; }
  let d = i % D;
  var p = head[i / D];
  var acc = 0.0;
  while (p >= 0) {
    acc = acc + src[u32(p) * D + d];
    p = next[p];
  }
  out[i] = acc;
}
`;
  return {
    scratch: [Math.max(4, 4 * N), 4 * V],
    dispatches: [
      {
        label: "scatter_add_init",
        code: init,
        bindings: initIo.bindings,
        workgroups: gi.workgroups,
      },
      {
        label: "scatter_add_link",
        code: link,
        bindings: linkIo.bindings,
        workgroups: gl.workgroups,
      },
      {
        label: "scatter_add_sum",
        code: sum,
        bindings: sumIo.bindings,
        workgroups: gs.workgroups,
      },
    ],
  };
};

/** The kernel lowerings of this family (entries of kernels/table.ts). */
export const gatherKernels: KernelsFor<"gather" | "scatter_add"> = {
  gather: gatherKernel,
  scatter_add: scatterAddKernel,
};
