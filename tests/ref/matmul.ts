// CPU reference (f64) of the matmul family: the textbook triple loop over explicit indices.
import { type RefOf, type RefsFor, type T, tensor } from "./f64.ts";

const matmulRef: RefOf<"matmul"> = ([a, b, bias], attrs, node) => {
  const ta = !!attrs.transA, tb = !!attrs.transB, tOut = !!attrs.transOut;
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const M = ta ? ac : ar, K = ta ? ar : ac, N = tb ? br : bc;
  const batch = a.data.length / (ar * ac);
  const shared = b.shape.length === 2;
  // element (m, k) of op(a) and (k, n) of op(b) in batch entry i
  const A = (i: number, m: number, k: number) => a.data[i * M * K + (ta ? k * M + m : m * K + k)];
  const B = (i: number, k: number, n: number) =>
    b.data[(shared ? 0 : i * K * N) + (tb ? n * K + k : k * N + n)];
  const out: T = tensor(node.shape);
  for (let i = 0; i < batch; i++) {
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = bias ? bias.data[n] : 0;
        for (let k = 0; k < K; k++) s += A(i, m, k) * B(i, k, n);
        out.data[i * M * N + (tOut ? n * M + m : m * N + n)] = s;
      }
    }
  }
  return out;
};

/** The CPU references of this family (entries of tests/ref/table.ts). */
export const matmulRefs: RefsFor<"matmul"> = {
  matmul: matmulRef,
};
