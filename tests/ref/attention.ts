// CPU references (f64) of the attention family: plain loops over (batch, head, query, key) —
// scores, masked softmax, weighted sum — and the textbook backward through the softmax.
// Layout: q [B, Tq, H·Dh], k/v [B, Tk, Hkv·Dh]; query head h uses kv head floor(h / (H/Hkv)).
import type { AttnAttrs } from "../../compiler/ops/attrs.ts";
import { type RefOf, type RefsFor, type T, tensor } from "./f64.ts";

interface Dims {
  B: number;
  Tq: number;
  Tk: number;
  H: number;
  Hkv: number;
  Dh: number;
  scale: number;
  causal: boolean;
}

function dims(q: T, k: T, a: AttnAttrs): Dims {
  const [B, Tq, F] = q.shape;
  return {
    B,
    Tq,
    Tk: k.shape[1],
    H: a.heads,
    Hkv: a.kvHeads,
    Dh: F / a.heads,
    scale: a.scale,
    causal: a.causal,
  };
}

/** Element (b, t, head, d) of a [B, T, heads·Dh] tensor. */
const at = (x: T, b: number, t: number, head: number, d: number, heads: number, Dh: number) =>
  x.data[((b * x.shape[1] + t) * heads + head) * Dh + d];
const idx = (x: T, b: number, t: number, head: number, d: number, heads: number, Dh: number) =>
  ((b * x.shape[1] + t) * heads + head) * Dh + d;

/**
 * The logsumexp the kernels store for a query row with no visible key (causal with Tq > Tk): the
 * lowest finite f32, -3.4028235e38, rather than -Infinity (the row's output is 0 either way).
 */
const NO_KEY_LSE = -Math.fround(3.4028235e38);

const visible = (z: Dims, i: number, j: number) => !z.causal || j <= i + z.Tk - z.Tq;

/** Scaled score of query (b, i, head h) with key (b, j, kv head of h). */
function score(z: Dims, q: T, k: T, b: number, h: number, i: number, j: number): number {
  const hk = Math.floor(h / (z.H / z.Hkv));
  let s = 0;
  for (let d = 0; d < z.Dh; d++) s += at(q, b, i, h, d, z.H, z.Dh) * at(k, b, j, hk, d, z.Hkv, z.Dh);
  return s * z.scale;
}

const attentionRef: RefOf<"attention"> = ([q, k, v], a) => {
  const z = dims(q, k, a);
  const out = tensor(q.shape), lse = tensor([z.B, z.H, z.Tq]);
  for (let b = 0; b < z.B; b++) {
    for (let h = 0; h < z.H; h++) {
      const hk = Math.floor(h / (z.H / z.Hkv));
      for (let i = 0; i < z.Tq; i++) {
        const s: number[] = [];
        for (let j = 0; j < z.Tk; j++) s.push(visible(z, i, j) ? score(z, q, k, b, h, i, j) : -Infinity);
        const m = Math.max(...s);
        const lrow = (b * z.H + h) * z.Tq + i;
        if (m === -Infinity) { // no visible key: output 0, and the kernels' lse convention (below)
          lse.data[lrow] = NO_KEY_LSE;
          continue;
        }
        const e = s.map((x) => Math.exp(x - m));
        const sum = e.reduce((p, x) => p + x, 0);
        lse.data[lrow] = m + Math.log(sum);
        for (let d = 0; d < z.Dh; d++) {
          let o = 0;
          for (let j = 0; j < z.Tk; j++) o += (e[j] / sum) * at(v, b, j, hk, d, z.Hkv, z.Dh);
          out.data[idx(out, b, i, h, d, z.H, z.Dh)] = o;
        }
      }
    }
  }
  return [out, lse];
};

const attentionBwdDRef: RefOf<"attention_bwd_d"> = ([o, dy], a) => {
  const [B, T, F] = o.shape, H = a.heads, Dh = F / H;
  const D = tensor([B, H, T]);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        let s = 0;
        for (let d = 0; d < Dh; d++) s += at(o, b, i, h, d, H, Dh) * at(dy, b, i, h, d, H, Dh);
        D.data[(b * H + h) * T + i] = s;
      }
    }
  }
  return D;
};

/**
 * Calls f(b, h, hk, i, j, P_ij, dS_ij) for every visible (query, key) pair, where
 * P = exp(s - L) and dS = P·(dP - D) with dP_ij = Σ_d dy_id·v_jd — the gradient w.r.t. the scaled
 * score s (before the scale is applied to q·k).
 */
function eachPair(
  [q, k, v, dy, L, D]: T[],
  a: AttnAttrs,
  f: (b: number, h: number, hk: number, i: number, j: number, p: number, ds: number) => void,
) {
  const z = dims(q, k, a);
  for (let b = 0; b < z.B; b++) {
    for (let h = 0; h < z.H; h++) {
      const hk = Math.floor(h / (z.H / z.Hkv));
      for (let i = 0; i < z.Tq; i++) {
        const row = (b * z.H + h) * z.Tq + i;
        for (let j = 0; j < z.Tk; j++) {
          if (!visible(z, i, j)) continue;
          const p = Math.exp(score(z, q, k, b, h, i, j) - L.data[row]);
          let dp = 0;
          for (let d = 0; d < z.Dh; d++) {
            dp += at(dy, b, i, h, d, z.H, z.Dh) * at(v, b, j, hk, d, z.Hkv, z.Dh);
          }
          f(b, h, hk, i, j, p, p * (dp - D.data[row]));
        }
      }
    }
  }
  return z;
}

const attentionBwdQRef: RefOf<"attention_bwd_q"> = (ins, a) => {
  const [q, k] = ins;
  const dq = tensor(q.shape);
  const z = dims(q, k, a);
  eachPair(ins, a, (b, h, hk, i, j, _p, ds) => {
    for (let d = 0; d < z.Dh; d++) {
      dq.data[idx(dq, b, i, h, d, z.H, z.Dh)] += z.scale * ds * at(k, b, j, hk, d, z.Hkv, z.Dh);
    }
  });
  return dq;
};

const attentionBwdKvRef: RefOf<"attention_bwd_kv"> = (ins, a) => {
  const [q, k, , dy] = ins;
  const dk = tensor(k.shape), dv = tensor(k.shape);
  const z = dims(q, k, a);
  eachPair(ins, a, (b, h, hk, i, j, p, ds) => {
    for (let d = 0; d < z.Dh; d++) {
      dk.data[idx(dk, b, j, hk, d, z.Hkv, z.Dh)] += z.scale * ds * at(q, b, i, h, d, z.H, z.Dh);
      dv.data[idx(dv, b, j, hk, d, z.Hkv, z.Dh)] += p * at(dy, b, i, h, d, z.H, z.Dh);
    }
  });
  return [dk, dv];
};

/** The CPU references of this family (entries of tests/ref/table.ts). */
export const attentionRefs: RefsFor<
  "attention" | "attention_bwd_d" | "attention_bwd_q" | "attention_bwd_kv"
> = {
  attention: attentionRef,
  attention_bwd_d: attentionBwdDRef,
  attention_bwd_q: attentionBwdQRef,
  attention_bwd_kv: attentionBwdKvRef,
};
