// CPU reference (f64) of the model-EMA update: the new values of the ema tensors, in writes order.
import { type RefOf, type RefsFor, tensor } from "./f64.ts";

const emaUpdateRef: RefOf<"ema_update"> = (ins, a) => {
  const k = a.count;
  return ins.slice(0, k).map((e, i) =>
    tensor(e.shape, e.data.map((v, j) => a.decay * v + (1 - a.decay) * ins[k + i].data[j]))
  );
};

/** The CPU references of this family (entries of tests/ref/table.ts). */
export const emaRefs: RefsFor<"ema_update"> = { ema_update: emaUpdateRef };
