// Model EMA (timm's ModelEmaV2): after each optimizer step, every tracked tensor's running average
//   ema ← decay·ema + (1 − decay)·source
// ema_update(e0..ek-1, s0..sk-1) {decay, count: k}: the update of k (ema, source) pairs in one
//   dispatch, in place on the e's (writes [0..k-1]). The e's are f32 state tensors, the sources
//   params or state tensors of the same shapes (all f32). Both roles are arenas (OpDef.spans:
//   [e…], [s…]); the arenas' zero padding stays zero (decay·0 + (1 − decay)·0). A source that already
//   lies in an arena (the params of a fused AdamW) must be passed as exactly that arena's list, which
//   nn/ema.ts does. Not differentiable.

import { fmtShape, type Node, shapeFail } from "../core/ir.ts";
import { defineOp } from "./attrs.ts";

const emaUpdateOp = defineOp("ema_update", {
  grad: "none",
  readsUpdated: true, // it averages the weights this step's optimizer (and BatchNorm) just updated
  writes: (n) => Array.from({ length: n.attrs.count }, (_, i) => i),
  spans: (n) => [n.inputs.slice(0, n.attrs.count), n.inputs.slice(n.attrs.count)],
  infer: (inputs, attrs) => {
    const k = attrs.count;
    const what = "ema states e0..e(k-1), then k sources of the same shapes, all f32";
    if (!Number.isInteger(k) || k < 1 || inputs.length !== 2 * k) shapeFail("ema_update", inputs, what);
    const d = attrs.decay;
    if (typeof d !== "number" || !(d >= 0 && d <= 1)) {
      shapeFail("ema_update", inputs, `decay in [0, 1] (got ${d})`);
    }
    for (let i = 0; i < k; i++) {
      const e = inputs[i], s = inputs[k + i];
      if (e.kind !== "state" || e.dtype !== "f32") {
        shapeFail("ema_update", inputs, `${what}; ${e} is not an f32 state`);
      }
      if (!s.persistent || s.kind === "input" || s.dtype !== "f32" || s.shape.join() !== e.shape.join()) {
        shapeFail(
          "ema_update",
          inputs,
          `${what}; source ${s} does not match ${fmtShape(e.shape)} f32 param/state`,
        );
      }
    }
    if (new Set(inputs).size !== inputs.length) shapeFail("ema_update", inputs, `${what}; all distinct`);
    return { shape: [1], dtype: "f32" };
  },
});

/** The op definitions of this family (entries of compiler/ops/table.ts). */
export const emaOps = { ema_update: emaUpdateOp };

/**
 * ema ← decay·ema + (1 − decay)·source for every pair (emas[i], sources[i]), in one dispatch; returns
 * the effect node (pass it to compile(outputs, { effects }) after the optimizer's effects).
 */
export function emaUpdate(emas: readonly Node[], sources: readonly Node[], decay: number): Node {
  if (!emas.length || emas.length !== sources.length) {
    throw new Error(`emaUpdate: ${emas.length} ema tensors for ${sources.length} sources`);
  }
  return emas[0].graph.apply(emaUpdateOp, [...emas, ...sources], { decay, count: emas.length });
}
