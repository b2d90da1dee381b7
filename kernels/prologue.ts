// Matmul prologues: a norm computed on the fly as the matmul loads its A operand. When every reader
// of a layernorm/rmsnorm output y is a matmul taking y as A (q/k/v or gate/up projections of a frozen
// LLM layer; compiler/fuse.ts), the matmul binds the norm's input x and its row statistics instead of
// y, and turns each loaded element x[m, k] into y[m, k]:
//   layernorm: (x − mean[m])·rstd[m]·w[k] + b[k];  rmsnorm: x·rstd[m]·w[k]  (w, b only if present),
// in the same order of operations as kernels/norm.ts's forward (so it matches the unfused plan to
// rounding). The norm then only writes its statistics (its backward reads x and those, never y), so y
// is neither written nor read: one [rows, D] write and as many reads saved per fused matmul.
// Measured on lavapipe (llama-tiny, 3 layers, batch 2×50, forward + backward; /tmp bench with the
// prologue on vs off, epilogues on in both): the same 94 kernels (the norm still runs, statistics
// only), peak GPU bytes 2076020 → 1922420 resident (−7.4%), 1747316 → 1593716 streamed; step time
// unchanged within the ±10% noise. Alone (rmsNorm 400×512 → two bf16 linears to 1376, profile()
// minima over 4 runs, ~11 ms fixed per dispatch): the norm 14.4 → 12.6 ms, the products 276–311 ms
// fused vs 289–327 ms unfused, i.e. the prologue arithmetic is lost in the noise. Fused and unfused
// outputs came out bit-identical there; tests allow float rounding.
//
// The prologue is emitted as WGSL functions every matmul variant calls where it loads an element of A
// (kernels/matmul.ts): `pro_mean(row)` / `pro_rstd(row)` fetch a row's statistics (hoisted out of the
// K loop by the caller), `pro_wb(k)` column k's (weight, bias) — (1, 0) where absent, and the unused
// component is never read — loaded once per k and shared by all the rows a thread holds (on lavapipe
// a load costs what it costs: per element it would add a third to the A loads of an 8×8 block), and
// `pro(x, mu, rs, wb)` / `pro4(x, mu, rs, wb0..wb3)` normalise one element / four consecutive along k.

import type { Node } from "../compiler/core/ir.ts";
import { loadF32, type Prologue } from "./kernel.ts";
import { type BufferVars, read } from "./bindings.ts";

export type { Prologue } from "./kernel.ts";

/** The prologue of norm node `n` (its inputs are x, then the weight and bias its attrs list). */
export function normPrologue(n: Node): Prologue {
  const weight = n.attrs.weight ? n.inputs[1] : undefined;
  const bias = n.attrs.bias ? n.inputs[weight ? 2 : 1] : undefined;
  return { norm: n, kind: n.op as Prologue["kind"], x: n.inputs[0], weight, bias };
}

/** Storage buffers the prologue adds to the matmul (x replaces a, so it adds none). */
export function prologueBuffers(p: Prologue): number {
  return Object.values(prologueVars(p)).filter((v) => v).length;
}

/**
 * The buffers the prologue adds to the matmul (weight, bias, and the norm's row statistics, its aux
 * outputs); none without a prologue. See bind.
 */
export function prologueVars(p?: Prologue): BufferVars {
  if (!p) return {};
  const layer = p.kind === "layernorm";
  return {
    pro_w: p.weight && read(p.weight),
    pro_b: p.bias && read(p.bias),
    pro_mu: layer && read({ auxOf: p.norm, k: 0 }, "f32"),
    pro_rs: read({ auxOf: p.norm, k: layer ? 1 : 0 }, "f32"),
  };
}

/** The helper functions over the buffers of prologueVars; "" without a prologue. */
export function prologueWgsl(p?: Prologue): string {
  if (!p) return "";
  const layer = p.kind === "layernorm";
  let y = "v";
  if (p.weight) y = `${y} * wb.x`;
  if (p.bias) y = `${y} + wb.y`;
  const w = p.weight ? loadF32(p.weight.dtype, "pro_w", "k") : "1.0";
  const b = p.bias ? loadF32(p.bias.dtype, "pro_b", "k") : "0.0";
  return /* wgsl */ `
fn pro_mean(row: u32) -> f32 { return ${layer ? "pro_mu[row]" : "0.0"}; }
fn pro_rstd(row: u32) -> f32 { return pro_rs[row]; }
fn pro_wb(k: u32) -> vec2<f32> { return vec2<f32>(${w}, ${b}); }
fn pro(x: f32, mu: f32, rs: f32, wb: vec2<f32>) -> f32 {
  let v = (x - mu) * rs;
  return ${y};
}
fn pro4(x: vec4<f32>, mu: f32, rs: f32, wb0: vec2<f32>, wb1: vec2<f32>, wb2: vec2<f32>, wb3: vec2<f32>) -> vec4<f32> {
  return vec4<f32>(pro(x.x, mu, rs, wb0), pro(x.y, mu, rs, wb1), pro(x.z, mu, rs, wb2), pro(x.w, mu, rs, wb3));
}`;
}
