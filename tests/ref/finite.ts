// CPU references of the finiteness checks (compiler/ops/finite.ts): any non-finite element (| acc),
// and the set-once first-bad-step flag.
import { type RefOf, type RefsFor, tensor } from "./f64.ts";

const nonfiniteAnyRef: RefOf<"nonfinite_any"> = (xs, a) => {
  let bad = xs[a.count] ? xs[a.count].data[0] : 0;
  for (const x of xs.slice(0, a.count)) if (x.data.some((v) => !Number.isFinite(v))) bad = 1;
  return tensor([1], [bad]);
};

// writes input 2 (flag): returns its new value
const nonfiniteFlagRef: RefOf<"nonfinite_flag"> = ([bad, step, flag]) => [
  tensor([1], [bad.data[0] !== 0 && flag.data[0] === 0 ? step.data[0] : flag.data[0]]),
];

/** The CPU references of this family (entries of tests/ref/table.ts). */
export const finiteRefs: RefsFor<"nonfinite_any" | "nonfinite_flag"> = {
  nonfinite_any: nonfiniteAnyRef,
  nonfinite_flag: nonfiniteFlagRef,
};
