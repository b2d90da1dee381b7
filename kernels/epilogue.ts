// Matmul epilogues: what a matmul kernel does with each finished accumulator, emitted as one WGSL
// function `store(i, gn, acc)` (i: flat output index, gn: output column) so every matmul variant
// shares it. Unfused, it adds the bias and writes `out`. The fusion pass (compiler/fuse.ts) can hand
// the matmul its consumer: an activation (out = act(acc + bias)), a residual add
// (out = acc + bias + res[i]) or, in the backward, an activation's gradient when the matmul computes
// its dy (out = acc · act'(x[i]), x bound as `res`); then `out` is the consumer's storage, and `pre`
// (the matmul's own value, acc + bias) is written too only when something else reads it.

import type { Node } from "../compiler/core/ir.ts";
import type { Activation } from "../compiler/ops/activation.ts";
import { ACTIVATION_WGSL } from "./activation.ts";
import type { Binding } from "./kernel.ts";

export interface Epilogue {
  /** The consumer whose value the fused kernel writes to `out`. */
  out: Node;
  /** out = act(acc + bias). */
  act?: Activation;
  /**
   * out = (acc + bias) · act'(residual[i]): the activation's backward, when the matmul computes its
   * incoming gradient (dy) and `residual` is the activation's saved input x.
   */
  actBwd?: Activation;
  /** out = acc + bias + residual (same shape as the output); with actBwd, the activation's input. */
  residual?: Node;
  /** Also write acc + bias to the matmul node's own storage (`pre`): a backward reads it. */
  keepPre: boolean;
}

/** Declarations (bindings 2..5) and the store function of a matmul kernel. */
export function epilogueWgsl(hasBias: boolean, e?: Epilogue): string {
  const decls = [
    hasBias ? "@group(0) @binding(2) var<storage, read> bias: array<f32>;" : "",
    "@group(0) @binding(3) var<storage, read_write> out: array<f32>;",
    e?.keepPre ? "@group(0) @binding(4) var<storage, read_write> pre: array<f32>;" : "",
    e?.residual ? "@group(0) @binding(5) var<storage, read> res: array<f32>;" : "",
  ].filter((s) => s).join("\n");
  const act = e?.act ? ACTIVATION_WGSL[e.act] : undefined;
  const bwd = e?.actBwd ? ACTIVATION_WGSL[e.actBwd] : undefined;
  // the activation snippets are written in terms of `v`, their input: for the backward, rebind it
  // to the saved x in an inner block (WGSL allows shadowing there)
  const write = bwd
    ? `{ let dy = v; { let v = res[i]; out[i] = dy * (${bwd.dfdx}); } }`
    : `out[i] = ${act ? act.fwd : e?.residual ? "v + res[i]" : "v"};`;
  return /* wgsl */ `${decls}
${(act ?? bwd)?.helpers ?? ""}
fn store(i: u32, gn: u32, acc: f32) {
  let v = acc${hasBias ? " + bias[gn]" : ""};
  ${e?.keepPre ? "pre[i] = v;" : ""}
  ${write}
}`;
}

/** The bindings that go with epilogueWgsl, for matmul node `n`. */
export function epilogueBindings(n: Node, bias: Node | undefined, e?: Epilogue): Binding[] {
  return [
    ...(bias ? [{ name: "bias", ref: { node: bias } }] : []),
    { name: "out", ref: { node: e ? e.out : n } },
    ...(e?.keepPre ? [{ name: "pre", ref: { node: n } }] : []),
    ...(e?.residual ? [{ name: "res", ref: { node: e.residual } }] : []),
  ];
}
