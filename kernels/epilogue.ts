// Matmul epilogues: what a matmul kernel does with each finished accumulator, emitted as one WGSL
// function `store(i, gn, acc)` (i: flat output index, gn: output column) so every matmul variant
// shares it. Unfused, it adds the bias and writes `out`. The fusion pass (compiler/fuse.ts) can hand
// the matmul its consumer: an activation (out = act(acc + bias)), a residual add
// (out = acc + bias + res[i]) or, in the backward, an activation's gradient when the matmul computes
// its dy (out = acc · act'(x[i]), x bound as `res`); then `out` is the consumer's storage, and `pre`
// (the matmul's own value, acc + bias) is written too only when something else reads it.

import type { Node } from "../compiler/core/ir.ts";
import { ACTIVATION_WGSL } from "./activation.ts";
import { type BufferVars, read, write } from "./bindings.ts";
import type { Epilogue } from "./kernel.ts";

export type { Epilogue } from "./kernel.ts";

/** The buffers of a matmul kernel's epilogue (bias, out, pre, res), for matmul node `n`; see bind. */
export function epilogueVars(n: Node, bias: Node | undefined, e?: Epilogue): BufferVars {
  return {
    bias: bias && read(bias),
    out: write(e ? e.out : n),
    pre: e?.keepPre && write(n),
    res: e?.residual && read(e.residual),
  };
}

/** The store function of a matmul kernel, over the buffers of epilogueVars. */
export function epilogueWgsl(hasBias: boolean, e?: Epilogue): string {
  const act = e?.act ? ACTIVATION_WGSL[e.act] : undefined;
  const bwd = e?.actBwd ? ACTIVATION_WGSL[e.actBwd] : undefined;
  // the activation snippets are written in terms of `v`, their input: for the backward, rebind it
  // to the saved x in an inner block (WGSL allows shadowing there)
  const write = bwd
    ? `{ let dy = v; { let v = res[i]; out[i] = dy * (${bwd.dfdx}); } }`
    : `out[i] = ${act ? act.fwd : e?.residual ? "v + res[i]" : "v"};`;
  return /* wgsl */ `${(act ?? bwd)?.helpers ?? ""}
fn store(i: u32, gn: u32, acc: f32) {
  let v = acc${hasBias ? " + bias[gn]" : ""};
  ${e?.keepPre ? "pre[i] = v;" : ""}
  ${write}
}`;
}
