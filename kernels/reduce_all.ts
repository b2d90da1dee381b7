// A reduction of every element of a flat buffer to one value, shared by sumsq (Σ g², gradient-norm
// clipping) and nonfinite_any (OR of bad bits). Each thread folds a strided run of elements in a fixed
// order, then one workgroup tree reduction (kernel.ts wgslWorkgroupReduce) combines the threads:
//   short inputs:  one dispatch, one workgroup of 256 threads over all `len` elements.
//   long inputs:   up to 256 workgroups first write a partial each to scratch, then the same single
//                  workgroup dispatch combines the partials (`map` is applied to the elements only).
// The result (combined with an optional one-element accumulator input) goes to out[0]. No atomics:
// the order of combination is fixed, so the result does not depend on thread timing.

import { type BufRef, type Dispatch, type Lowered, wgslWorkgroupReduce } from "./kernel.ts";
import { bind, read, write } from "./bindings.ts";
import type { Node } from "../compiler/core/ir.ts";

const WG = 256;
/** Elements per thread above which the reduction splits into partials. */
const PER_THREAD = 16;

/** What a whole-buffer reduction computes: what each element contributes and how values combine. */
export interface ReduceAll {
  /** Label of the single (or second-stage) dispatch, e.g. `sumsq_fwd`. */
  label: string;
  /** Label of the first-stage dispatch that writes the per-workgroup partials, e.g. `sumsq_partial`. */
  partialLabel: string;
  /** The WGSL type the source is read as; also the type of the partials and of the result. */
  type: string;
  /** The WGSL identity of `combine` (the value of an empty reduction), e.g. `0.0` for a sum. */
  identity: string;
  /** WGSL for what one source element `v` contributes, e.g. `v * v`. */
  map: (v: string) => string;
  /** WGSL combining two contributions (associative; `a` is the earlier one), e.g. `a + b`. */
  combine: (a: string, b: string) => string;
}

/**
 * Lowers node `n` to the reduction `r` of the `len` elements of `src` (a node or an arena span),
 * combined with `acc[0]` when an accumulator node is given; the result goes to n's output.
 */
export function reduceAllLowering(
  n: Node,
  src: BufRef,
  len: number,
  acc: Node | undefined,
  r: ReduceAll,
): Lowered {
  const parts = Math.min(WG, Math.ceil(len / (WG * PER_THREAD)));
  const partsRef = { scratch: 0 };
  const wgFn = wgslWorkgroupReduce("wg_reduce", r.type, WG, r.combine);
  /** Folds this thread's elements `i` of src (from `first`, step `stride`) into `folded`, in order. */
  const fold = (first: string, stride: string, term: string) =>
    `var folded = ${r.identity};
  for (var i = ${first}; i < LEN; i += ${stride}) { let v = src[i]; folded = ${r.combine("folded", term)}; }`;
  /** What one source element `v` contributes, parenthesized for any combine expression. */
  const mapped = `(${r.map("v")})`;

  const combineDispatch = (fromParts: boolean, count: number): Dispatch => {
    const io = bind({
      src: read(fromParts ? partsRef : src, r.type),
      out: write(n),
      acc: acc && read(acc),
    });
    return {
      label: r.label,
      code: /* wgsl */ `
${io.wgsl}
const LEN: u32 = ${count}u;
${wgFn}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) t: u32) {
  ${fold("t", `${WG}u`, fromParts ? "v" : mapped)}
  let total = wg_reduce(t, folded);
  if (t == 0u) { out[0] = ${acc ? r.combine("total", "acc[0]") : "total"}; }
}
`,
      bindings: io.bindings,
      workgroups: [1, 1, 1],
    };
  };
  if (parts <= 1) return { dispatches: [combineDispatch(false, len)] };

  const partialIo = bind({ src: read(src, r.type), parts: write(partsRef, r.type) });
  const partial: Dispatch = {
    label: r.partialLabel,
    code: /* wgsl */ `
${partialIo.wgsl}
const LEN: u32 = ${len}u;
${wgFn}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  ${fold(`wid.x * ${WG}u + t`, `${parts * WG}u`, mapped)}
  let total = wg_reduce(t, folded);
  if (t == 0u) { parts[wid.x] = total; }
}
`,
    bindings: partialIo.bindings,
    workgroups: [parts, 1, 1],
  };
  return { scratch: [4 * parts], dispatches: [partial, combineDispatch(true, parts)] };
}
