// Host-side checks that keep API values from wrapping or meaning something else: compile() options
// (a NaN budget would compare false against every size and be ignored) and values written to integer
// nodes (Int32Array.from(2 ** 40) is 0, Uint32Array.from(-1) is 4294967295). Each check is O(n) on the
// host, run once per write; f32 data into float nodes is not scanned.

import type { DType, Node } from "../core/ir.ts";

/** The compile() options this file checks (a subset of CompileOptions; kept here to avoid a cycle). */
interface CheckedOptions {
  maxBindingBytes?: number;
  gpuMemoryBudget?: number;
  stream?: string;
  upload?: string;
  fuse?: boolean;
  inPlace?: boolean;
}

/** Refuses compile() options that would be ignored or misread, naming the option. */
export function checkOptions(opts: CheckedOptions): void {
  const budget = opts.gpuMemoryBudget;
  // +Infinity is "no limit", the default; NaN and negatives would silently mean the same
  if (budget !== undefined && (typeof budget !== "number" || Number.isNaN(budget) || budget < 0)) {
    throw new Error(
      `compile: gpuMemoryBudget must be a number of bytes >= 0 (or Infinity for no limit), not ${budget}`,
    );
  }
  const mb = opts.maxBindingBytes;
  if (mb !== undefined && (typeof mb !== "number" || !Number.isSafeInteger(mb) || mb <= 0)) {
    throw new Error(`compile: maxBindingBytes must be a positive whole number of bytes, not ${mb}`);
  }
  if (opts.stream !== undefined && !["auto", "always", "never"].includes(opts.stream)) {
    throw new Error(`compile: stream must be auto, always or never, not '${opts.stream}'`);
  }
  if (opts.upload !== undefined && !["auto", "write-buffer", "staging-ring"].includes(opts.upload)) {
    throw new Error(`compile: upload must be auto, write-buffer or staging-ring, not '${opts.upload}'`);
  }
  for (const k of ["fuse", "inPlace"] as const) {
    if (opts[k] !== undefined && typeof opts[k] !== "boolean") {
      throw new Error(`compile: ${k} must be true or false, not ${opts[k]}`);
    }
  }
}

const LIMITS: Partial<Record<DType, [number, number]>> = {
  i32: [-(2 ** 31), 2 ** 31 - 1],
  u32: [0, 2 ** 32 - 1],
};

/**
 * Refuses host values that a node's dtype cannot hold as given: a Uint16Array anywhere but f16/bf16
 * (it is raw 16-bit words there, and would be read as small integers elsewhere), and non-integers or
 * out-of-range values for i32/u32 (they would be truncated or wrap).
 */
export function checkHostValues(n: Node | DType, dtype: DType, data: ArrayLike<number>): void {
  if (data instanceof Uint16Array && dtype !== "f16" && dtype !== "bf16") {
    throw new Error(
      `runtime: ${n} is ${dtype} but got a Uint16Array; a Uint16Array is taken as raw 16-bit words, ` +
        `valid only for f16/bf16 nodes (pass a Float32Array, Int32Array or Uint32Array of values)`,
    );
  }
  const lim = LIMITS[dtype];
  if (!lim) return;
  if ((dtype === "i32" && data instanceof Int32Array) || (dtype === "u32" && data instanceof Uint32Array)) {
    return;
  }
  const [lo, hi] = lim;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (!Number.isInteger(v) || v < lo || v > hi) {
      throw new Error(
        `runtime: ${n} is ${dtype} but value [${i}] is ${v}; ${dtype} holds whole numbers in ` +
          `[${lo}, ${hi}] (it would be truncated or wrap)`,
      );
    }
  }
}

/** Refuses values of an input outside the range an op declared for it (Node.valueRange). */
export function checkRange(n: Node, data: ArrayLike<number>): void {
  const r = n.valueRange;
  if (!r) return;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (!(v >= r.lo && v < r.hi)) {
      throw new Error(
        `runtime: ${n} value [${i}] is ${v}, outside [${r.lo}, ${r.hi}): ${r.why}`,
      );
    }
  }
}
