// Shared pieces of the matmul tests (tests/matmul.test.ts, tests/matmul_variants.test.ts): layouts,
// a matmul builder over them, the forced kernel variants and a helper that forces one.

import { randParam } from "./harness.ts";
import type { Graph, Node } from "../compiler/core/ir.ts";
import { matmul } from "../compiler/ops/matmul.ts";
import { type MatmulVariant, setMatmulVariant } from "../kernels/matmul.ts";

export type Layout = "2d" | "batched" | "shared";

export const TRANS = [[false, false], [false, true], [true, false], [true, true]] as const;

/** Shapes of a and b for op(a) [..., M, K] and op(b) [..., K, N]. */
export function shapes(
  layout: Layout,
  M: number,
  K: number,
  N: number,
  ta: boolean,
  tb: boolean,
  batch = [3],
) {
  const a = ta ? [K, M] : [M, K];
  const b = tb ? [N, K] : [K, N];
  if (layout === "2d") return { a, b };
  if (layout === "shared") return { a: [...batch, ...a], b };
  return { a: [...batch, ...a], b: [...batch, ...b] };
}

export function buildMatmul(
  g: Graph,
  layout: Layout,
  [M, K, N]: number[],
  ta: boolean,
  tb: boolean,
  withBias: boolean,
  batch?: number[],
): Node {
  const s = shapes(layout, M, K, N, ta, tb, batch);
  const a = randParam(g, "a", s.a);
  const b = randParam(g, "b", s.b);
  const bias = withBias ? randParam(g, "bias", [N]) : undefined;
  return matmul(a, b, { transA: ta, transB: tb, bias });
}

/** Runs f with every matmul lowered as variant v (whatever the heuristic would pick). */
export async function withVariant<R>(v: MatmulVariant, f: () => Promise<R> | R): Promise<R> {
  setMatmulVariant(v);
  try {
    return await f();
  } finally {
    setMatmulVariant(undefined);
  }
}

// Forced in every layout and trans combination. Tiled: one or two workgroup buffers, vec4 and scalar
// staging, one or several loads per thread (with and without the idle-thread guard), 1-5 K steps,
// partial and several tiles; 2×2 to 4×4 blocks per thread, the same code as the production tiles' 8×8
// (only fewer unrolled lines), which LLVM compiles in a fraction of their time (2-3 s a case on
// lavapipe with a cold shader cache). Direct: vec4 and scalar reads along k, m and n, the K tail.
export const VARIANTS: MatmulVariant[] = [
  { kind: "tiled", WX: 16, WY: 16, TM: 2, TN: 2, BK: 16 }, // 256 threads
  { kind: "tiled", WX: 8, WY: 8, TM: 4, TN: 4, BK: 16, double: true }, // two workgroup buffers
  { kind: "tiled", WX: 16, WY: 8, TM: 2, TN: 4, BK: 32 }, // unequal sides, deeper K step
  { kind: "tiled", WX: 8, WY: 8, TM: 2, TN: 2, BK: 8, double: true }, // 5 K steps: both buffers reused
  { kind: "direct", TM: 4, TN: 4 },
  { kind: "direct", TM: 3, TN: 1 },
];

// The production blocks with more unrolled lines of the same code (kernels/matmul.ts: HUGE, BIG and
// BIG with two buffers; the software adapters' 8×8 and 16×16 direct blocks), forced in the cases
// that reach all of their paths: aligned and odd sizes, a transposed a and b (the dA / dB products of
// each case's gradient add the other combinations).
export const PRODUCTION: [MatmulVariant, number[], Layout, boolean, boolean][] = [
  [{ kind: "tiled", WX: 16, WY: 16, TM: 8, TN: 8, BK: 16 }, [12, 40, 20], "shared", true, false],
  [{ kind: "tiled", WX: 8, WY: 8, TM: 8, TN: 8, BK: 16 }, [12, 40, 20], "shared", true, false],
  [{ kind: "tiled", WX: 8, WY: 8, TM: 8, TN: 8, BK: 16, double: true }, [7, 37, 5], "batched", false, false],
  [{ kind: "direct", TM: 8, TN: 8 }, [12, 40, 20], "shared", true, false],
  [{ kind: "direct", TM: 8, TN: 8 }, [7, 37, 5], "shared", false, true],
  [{ kind: "direct", TM: 8, TN: 8 }, [12, 40, 20], "2d", true, true],
];

// the software adapters' big block: ~2 s of shader compile per distinct kernel on lavapipe
export const SOFT_BIG: MatmulVariant = { kind: "direct", TM: 16, TN: 16, WG: 32 };

/** Barriers in the tiled variant's K loop: one with two buffers, two with one (+1 before the loop). */
export function barriers(code: string): number {
  return code.split("workgroupBarrier()").length - 1;
}
