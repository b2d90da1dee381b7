// The op test harness. For an op built from random trainable params:
//   1. forward: GPU vs the CPU reference (f64);
//   2. gradient rule: the autodiff graph evaluated with the CPU references (f64) vs central finite
//      differences of the CPU forward (f64) — this checks the rule and the backward references;
//   3. backward kernels: the same autodiff graph on the GPU vs its f64 CPU evaluation.
// The loss is sum(y * c) with a random cotangent c, so every output element matters.

import "../mod.ts";
import { Graph, type Node } from "../compiler/core/ir.ts";
import { grad } from "../compiler/grad.ts";
import { mul } from "../compiler/ops/elementwise.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { getGpu } from "../compiler/runtime/device.ts";
import type { LowerCtx } from "../kernels/kernel.ts";
import { Rng } from "../compiler/core/random.ts";
import { interpret, type T } from "./ref/tensor.ts";
import { assert } from "./testing.ts";

export interface OpCase {
  /** Build the op under test. Differentiable inputs are trainable params (use `randParam`). */
  build(g: Graph): Node;
  /** Values for non-differentiable inputs (indices, labels), by input name. */
  feeds?: Record<string, ArrayLike<number>>;
  /** Check gradients (default true when the graph has trainable params). */
  grad?: boolean;
  /** Relative L2 tolerance GPU vs CPU (default 1e-4). */
  tol?: number;
  /** Relative tolerance of the f64 rule vs finite differences (default 1e-5). */
  fdTol?: number;
  /** Coordinates per param checked by finite differences (default 16). */
  fdSamples?: number;
  /** Finite-difference step (default 1e-4 in f64). */
  fdStep?: number;
  /**
   * Overrides of the device's lowering facts, to test a kernel variant the adapter would not pick
   * (e.g. `{ isSoftware: false }` runs the workgroup-reduction kernels on lavapipe too).
   */
  ctx?: Partial<LowerCtx>;
}

let seedCounter = 1;

/** A trainable param of random N(0, std²) values (rounded to f32). */
export function randParam(g: Graph, name: string, shape: number[], std = 1): Node {
  const seed = seedCounter++;
  return g.param(name, shape, {
    init: (n) => {
      const r = new Rng(seed * 7919);
      return Float32Array.from({ length: n }, () => r.normal() * std);
    },
  });
}

export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) || Number.isNaN(b[i])) return Infinity;
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-12);
}

export function assertClose(
  what: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
): void {
  assert.equal(got.length, want.length, `${what}: length ${got.length} vs ${want.length}`);
  const e = relErr(got, want);
  if (!(e <= tol)) {
    let worst = 0;
    for (let i = 0; i < got.length; i++) {
      if (Math.abs(got[i] - want[i]) > Math.abs(got[worst] - want[worst])) worst = i;
    }
    throw new assert.AssertionError({
      message: `${what}: relative error ${e.toExponential(2)} > ${tol} (worst at ${worst}: got ${
        got[worst]
      }, want ${want[worst]})`,
    });
  }
}

export interface OpCheck {
  forwardErr: number;
  gradErrs: Record<string, number>;
  fdErrs: Record<string, number>;
}

export async function checkOp(c: OpCase): Promise<OpCheck> {
  const g = new Graph();
  const y = c.build(g);
  const rng = new Rng(4242 + seedCounter++);
  const feeds = new Map<Node, ArrayLike<number>>();
  for (const [name, v] of Object.entries(c.feeds ?? {})) feeds.set(g.byName(name), v);
  const params = g.trainableParams;
  const doGrad = (c.grad ?? true) && params.length > 0;
  const result: OpCheck = { forwardErr: 0, gradErrs: {}, fdErrs: {} };

  let loss: Node | undefined;
  let grads = new Map<Node, Node>();
  if (doGrad) {
    const cot = g.input("__cotangent", y.shape);
    feeds.set(cot, Float64Array.from({ length: y.size }, () => rng.normal()));
    loss = sumAll(mul(y, cot));
    grads = grad(loss);
  }
  const outs = [y, ...grads.values()];
  const cpu = interpret(outs, feeds);

  // 2. rule vs finite differences, all in f64 on the CPU references
  if (doGrad) {
    const h = c.fdStep ?? 1e-4;
    for (const [p, gp] of grads) {
      const base = Float64Array.from(cpu.get(p)!.data);
      const ana = cpu.get(gp)!.data;
      const k = Math.min(p.size, c.fdSamples ?? 16);
      const idx = p.size <= k ? [...Array(p.size).keys()] : Array.from({ length: k }, () => rng.int(p.size));
      const num: number[] = [], an: number[] = [];
      for (const i of idx) {
        const f = (delta: number) => {
          const v = Float64Array.from(base);
          v[i] += delta;
          const m = new Map(feeds);
          m.set(p, v);
          for (const q of params) if (q !== p) m.set(q, cpu.get(q)!.data);
          return interpret([loss!], m).get(loss!)!.data[0];
        };
        num.push((f(h) - f(-h)) / (2 * h));
        an.push(ana[i]);
      }
      const e = relErr(an, num);
      result.fdErrs[p.name!] = e;
      assertClose(
        `gradient rule of ${y.op} w.r.t. ${p.name} vs finite differences (f64)`,
        an,
        num,
        c.fdTol ?? 1e-5,
      );
    }
  }

  // 1 + 3. GPU vs CPU
  const exe = await compile(outs, c.ctx ? { ctx: { ...(await getGpu()).lowerCtx, ...c.ctx } } : {});
  for (const [n, v] of feeds) exe.write(n, Float32Array.from(v));
  const got = await exe.run(outs);
  const tol = c.tol ?? 1e-4;
  result.forwardErr = relErr(got[0], cpu.get(y)!.data);
  assertClose(`${y.op} forward (GPU vs CPU reference)`, got[0], cpu.get(y)!.data, tol);
  let k = 1;
  for (const [p, gp] of grads) {
    const want = cpu.get(gp)!.data;
    result.gradErrs[p.name!] = relErr(got[k], want);
    assertClose(`${y.op} backward w.r.t. ${p.name} (GPU vs CPU f64 autodiff)`, got[k], want, tol);
    k++;
  }
  exe.destroy();
  return result;
}

export type { T };
