// CPU reference (f64) of rope, written the way HF states it: per position and head, build the cos and
// sin vectors (angle_i duplicated over both halves) and rotate_half(x) = concat(-x2, x1), then
// out = x·cos + rotate_half(x)·sin. The inverse (attr inverse, used by the gradient) uses −sin.
// Only the angle is kept in f32 — f32(t·inv_freq), HF's f32 product with its f32 inv_freq —
// the rest is f64.
import { type RefOf, type RefsFor, type T, tensor } from "./f64.ts";
import { ropeInvFreq } from "../../compiler/ops/rope.ts";

const ropeRef: RefOf<"rope"> = ([x], attrs) => {
  const [B, T, F] = x.shape;
  const H = attrs.heads, Dh = F / H, half = Dh / 2;
  const invFreq = ropeInvFreq(Dh, attrs.theta, attrs.invFreqDtype);
  const sign = attrs.inverse ? -1 : 1;
  const out = tensor(x.shape);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const pos = t + attrs.positionOffset;
      const cos: number[] = [], sin: number[] = [];
      for (let j = 0; j < Dh; j++) {
        const angle = Math.fround(pos * invFreq[j % half]);
        cos.push(Math.cos(angle));
        sin.push(sign * Math.sin(angle));
      }
      for (let h = 0; h < H; h++) {
        const base = (b * T + t) * F + h * Dh;
        const xs = Array.from(x.data.subarray(base, base + Dh));
        const rot = [...xs.slice(half).map((v) => -v), ...xs.slice(0, half)];
        for (let j = 0; j < Dh; j++) out.data[base + j] = xs[j] * cos[j] + rot[j] * sin[j];
      }
    }
  }
  return out as T;
};

/** The CPU references of this family (entries of tests/ref/table.ts). */
export const ropeRefs: RefsFor<"rope"> = {
  rope: ropeRef,
};
