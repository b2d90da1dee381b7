// Tests of the matmul family: forward and gradients (rule vs finite differences, GPU vs CPU) for all
// four trans combinations, 2-D / batched / shared-b layouts, with and without bias, odd sizes that
// straddle tile edges, every kernel variant forced in turn (tiled configs with one or two workgroup
// buffers and vec4 / packed 16-bit / scalar staging over several K steps, the barrier-free "direct"
// one with its vec4 / packed 16-bit / scalar read paths and block shapes up to the software adapters'
// 16×16), the small-device fallback and batches folded past the z limit; which variant the heuristic
// picks; frozen bf16/f16 weights (forward and dA through them, no dB kernel); shape errors.

import { assertClose, checkOp, randParam } from "./harness.ts";
import { assert, assertThrowsMsg, test } from "./testing.ts";
import { type DType, Graph, type Node } from "../compiler/core/ir.ts";
import { grad } from "../compiler/grad.ts";
import { kernelLabels, lower } from "../compiler/lower/plan.ts";
import { compile } from "../compiler/runtime/executable.ts";
import { fromBf16, fromF16, toBf16, toF16 } from "../compiler/core/dtype.ts";
import { mul } from "../compiler/ops/elementwise.ts";
import { sumAll } from "../compiler/ops/reduce.ts";
import { linear, matmul } from "../compiler/ops/matmul.ts";
import { Rng } from "../compiler/core/random.ts";
import { DEFAULT_LOWER_CTX, type LowerCtx } from "../kernels/kernel.ts";
import { chooseVariant, type MatmulVariant } from "../kernels/matmul.ts";
import { interpret } from "./ref/tensor.ts";
import { buildMatmul, type Layout, shapes, TRANS, withVariant } from "./matmul_cases.ts";

test("matmul: fwd + grads, all trans combos x 2-D/batched/shared b x bias, odd sizes", async (t) => {
  for (const layout of ["2d", "batched", "shared"] as const) {
    for (const [ta, tb] of TRANS) {
      for (const withBias of [false, true]) {
        await t.step(`7x13x5 ${layout} transA=${ta} transB=${tb} bias=${withBias}`, async () => {
          await checkOp({ build: (g) => buildMatmul(g, layout, [7, 13, 5], ta, tb, withBias) });
        });
      }
    }
  }
  // several K tiles (65 = 4·16 + 1), M past one 32-row tile, N not a multiple of anything: the GPU's
  // choice (isSoftware: false; on lavapipe the heuristic's 8×8 direct block, forced in its own test
  // below, whose compile would cost seconds per case here)
  for (const layout of ["2d", "batched", "shared"] as const) {
    for (const [ta, tb] of TRANS) {
      await t.step(`33x65x17 ${layout} transA=${ta} transB=${tb} bias`, async () => {
        await checkOp({
          build: (g) => buildMatmul(g, layout, [33, 65, 17], ta, tb, true, [2]),
          ctx: { isSoftware: false },
        });
      });
    }
  }
  await t.step("two batch dims [2,2] with shared and batched b", async () => {
    await checkOp({ build: (g) => buildMatmul(g, "batched", [5, 6, 4], false, true, true, [2, 2]) });
    await checkOp({ build: (g) => buildMatmul(g, "shared", [5, 6, 4], true, false, true, [2, 2]) });
  });
});

test("matmul: the 64x64 tile config (chosen for larger products) is exercised and correct", async (t) => {
  const cases: [Layout, number[], number[]][] = [
    ["batched", [65, 9, 70], [4]], // 2·2·4 = 16 tiles of 64×64
    ["shared", [65, 9, 130], [5]], // batch folds into M = 325: 6·3 = 18 tiles
  ];
  for (const [layout, mkn, batch] of cases) {
    for (const [ta, tb] of layout === "shared" ? [[false, false], [false, true]] as const : TRANS) {
      await t.step(`${layout} [${batch}] ${mkn.join("x")} transA=${ta} transB=${tb}`, async () => {
        const g = new Graph();
        const y = buildMatmul(g, layout, mkn, ta, tb, true, batch);
        const fwd = lower([y]).dispatches[0];
        assert.equal(fwd.label, "matmul_fwd");
        assert.ok(fwd.code.includes("const BM: u32 = 64u;"), "expected the 64x64 tile");
        // isSoftware: false, so lavapipe runs the heuristic's GPU choice (the 64×64 tile, two buffers)
        await checkOp({
          build: (g) => buildMatmul(g, layout, mkn, ta, tb, true, batch),
          fdSamples: 8,
          ctx: { isSoftware: false },
        });
      });
    }
  }
});

test("matmul: direct and tiled variants read packed bf16/f16 b, vectorised and scalar", async (t) => {
  // K and N multiples of 4 → vec2<u32> reads / staging (four 16-bit values); odd sizes → scalar reads
  const variants: MatmulVariant[] = [
    { kind: "direct", TM: 4, TN: 4 },
    { kind: "direct", TM: 8, TN: 8 }, // two groups of 4 columns per thread
    { kind: "tiled", WX: 8, WY: 8, TM: 2, TN: 2, BK: 8, double: true },
  ];
  const layouts = [["shared", false, true], ["shared", true, false], ["batched", false, false]] as const;
  for (const v of variants) {
    for (const dtype of ["bf16", "f16"] as const) {
      for (const [mkn, vec] of [[[8, 16, 12], true], [[5, 13, 7], false]] as const) {
        for (const [layout, ta, tb] of layouts) {
          // the 8×8 block's own path (two groups of 4 columns) needs vector reads along n; its other
          // reads are the 4×4 block's code with more unrolled lines (LLVM: seconds per case, cold)
          if (v.kind === "direct" && v.TN === 8 && (!vec || tb)) continue;
          await t.step(`${v.kind} ${v.TM} ${dtype} ${mkn.join("x")} ${layout} ${ta} ${tb}`, async () => {
            await withVariant(v, async () => {
              const build = (g: Graph) => {
                const [M, K, N] = mkn;
                const s = shapes(layout, M, K, N, ta, tb, [2]);
                const a = randParam(g, "a", s.a);
                const size = s.b.reduce((p, d) => p * d, 1);
                const w = g.param("w", s.b, {
                  trainable: false,
                  dtype,
                  init: rounded16(dtype, size, 5 + size),
                });
                return matmul(a, w, { transA: ta, transB: tb, bias: randParam(g, "bias", [N]) });
              };
              const code = lower([build(new Graph())]).dispatches[0].code;
              assert.equal(code.includes("array<vec2<u32>>"), vec, "packed vector reads iff aligned");
              assert.equal(code.includes("workgroupBarrier"), v.kind === "tiled", "the forced variant");
              await checkOp({ build, fdSamples: 4 });
            });
          });
        }
      }
    }
  }
});

test("matmul: variant choice per shape and device limits", () => {
  const lavapipe: LowerCtx = { ...DEFAULT_LOWER_CTX, maxWorkgroupStorage: 32768, maxInvocations: 1024 };
  const shape = (M: number, K: number, N: number, batch = 1) => ({ M, K, N, batch });
  // skinny products (few tokens through a linear layer, or few output columns): no tiles
  assert.deepEqual(chooseVariant(shape(4, 512, 1376), lavapipe), { kind: "direct", TM: 4, TN: 4 });
  assert.deepEqual(chooseVariant(shape(4096, 64, 10), lavapipe), { kind: "direct", TM: 4, TN: 4 });
  assert.deepEqual(chooseVariant(shape(3, 64, 2), lavapipe), { kind: "direct", TM: 3, TN: 2 });
  assert.equal(chooseVariant(shape(512, 4, 1376), lavapipe).kind, "direct"); // dB of 4 tokens
  // large: 128×128 tiles where 16.5 KiB of workgroup memory is allowed, else 64×64; two buffers of
  // them (one barrier per K step) only where twice that fits (48 KiB: NVIDIA over Vulkan)
  const big = chooseVariant(shape(512, 512, 512), lavapipe);
  assert.ok(big.kind === "tiled" && big.WY * big.TM === 128 && !big.double, JSON.stringify(big));
  const nv = chooseVariant(shape(512, 512, 512), { ...lavapipe, maxWorkgroupStorage: 49152 });
  assert.ok(nv.kind === "tiled" && nv.WY * nv.TM === 128 && nv.double, JSON.stringify(nv));
  const def = chooseVariant(shape(512, 512, 512), DEFAULT_LOWER_CTX);
  assert.ok(def.kind === "tiled" && def.WY * def.TM === 64 && !def.double, JSON.stringify(def));
  // medium: too few big tiles to fill a GPU (the 32×32 tile, small enough to double)
  const mid = chooseVariant(shape(100, 64, 100), lavapipe);
  assert.ok(mid.kind === "tiled" && mid.WY * mid.TM === 32 && mid.double, JSON.stringify(mid));
  // software adapters: barrier-free register blocks, 16×16 for big products, 8×8 for the rest
  const soft: LowerCtx = { ...lavapipe, isSoftware: true };
  const bigSoft = { kind: "direct", TM: 16, TN: 16, WG: 32 };
  assert.deepEqual(chooseVariant(shape(1024, 1024, 1024), soft), bigSoft);
  assert.deepEqual(chooseVariant(shape(197, 384, 1536, 2), soft), bigSoft);
  assert.deepEqual(chooseVariant(shape(128, 128, 128), soft), { kind: "direct", TM: 8, TN: 8 });
  assert.deepEqual(chooseVariant(shape(4, 512, 1376), soft), { kind: "direct", TM: 4, TN: 4 });
  // what lowering does with it: a 4-row linear layer lowers to the barrier-free kernel
  const g = new Graph();
  const y = linear(g.input("x", [4, 512]), g.input("w", [1376, 512]));
  assert.ok(!lower([y]).dispatches[0].code.includes("workgroupBarrier"));
});

/** Compiles only the forward with a given lowering context and compares it with the CPU reference. */
async function forwardWithCtx(build: (g: Graph) => Node, ctx: LowerCtx): Promise<string> {
  const g = new Graph();
  const y = build(g);
  const want = interpret([y]).get(y)!.data;
  const exe = await compile([y], { ctx });
  const [got] = await exe.run([y]);
  exe.destroy();
  assertClose("matmul forward with a custom lowering context", got, want, 1e-4);
  return lower([y], [], { ctx }).dispatches[0].code;
}

test("matmul: small-device fallback tile and batches folded past the z limit", async () => {
  // 64 invocations per workgroup: the 8×8-thread config
  const code = await forwardWithCtx(
    (g) => buildMatmul(g, "batched", [19, 21, 23], true, false, true, [2]),
    { ...DEFAULT_LOWER_CTX, maxInvocations: 64 },
  );
  assert.ok(code.includes("@workgroup_size(8, 8)"), "expected the 8x8 fallback");
  // at most 4 workgroups per dimension: 10 batches → z = 4, folded 3 times into y
  await forwardWithCtx(
    (g) => buildMatmul(g, "batched", [9, 7, 11], false, true, false, [10]),
    { ...DEFAULT_LOWER_CTX, maxWorkgroupsPerDim: 4 },
  );
  await forwardWithCtx(
    (g) => buildMatmul(g, "shared", [9, 7, 11], true, true, true, [2, 5]),
    { ...DEFAULT_LOWER_CTX, maxWorkgroupsPerDim: 4 },
  );
});

test("linear: PyTorch layout w [out, in], with and without bias", async () => {
  await checkOp({
    build: (g) => linear(randParam(g, "x", [2, 3, 10]), randParam(g, "w", [6, 10]), randParam(g, "b", [6])),
  });
  await checkOp({ build: (g) => linear(randParam(g, "x", [4, 9]), randParam(g, "w", [3, 9])) });
});

/** Random values exactly representable in a 16-bit storage type (so the CPU sees what the GPU sees). */
function rounded16(dtype: DType, n: number, seed: number): Float32Array {
  const r = new Rng(seed);
  const rt = dtype === "bf16" ? (x: number) => fromBf16(toBf16(x)) : (x: number) => fromF16(toF16(x));
  return Float32Array.from({ length: n }, () => rt(r.normal()));
}

test("matmul: frozen bf16/f16 b — forward and dA through it, no weight-gradient kernel", async (t) => {
  const cases: [Layout, boolean, boolean][] = [
    ["shared", false, true], // linear layer: x [B, T, in] · Wᵀ
    ["shared", false, false],
    ["shared", true, false], // dA needs the transposed-output product reading 16-bit b
    ["batched", true, true],
    ["2d", false, false],
  ];
  for (const dtype of ["bf16", "f16"] as const) {
    for (const [layout, ta, tb] of cases) {
      const build = (g: Graph) => {
        const [M, K, N] = [7, 13, 5];
        const s = shapes(layout, M, K, N, ta, tb, [2]);
        const a = randParam(g, "a", s.a);
        const size = s.b.reduce((p, d) => p * d, 1);
        const w = g.param("w", s.b, { trainable: false, dtype, init: rounded16(dtype, size, 17 + size) });
        return matmul(a, w, { transA: ta, transB: tb, bias: randParam(g, "bias", [N]) });
      };
      await t.step(`${dtype} ${layout} transA=${ta} transB=${tb}`, async () => {
        const r = await checkOp({ build });
        assert.deepEqual(Object.keys(r.gradErrs).sort(), ["a", "bias"]);
        // the plan of the gradients: dA reads the 16-bit weight; no dB kernel exists
        const g = new Graph();
        const y = build(g);
        const loss = sumAll(mul(y, randParam(g, "c", [...y.shape])));
        const grads = grad(loss, [g.byName("a"), g.byName("bias")]);
        const plan = lower([...grads.values()]);
        const labels = kernelLabels(plan);
        assert.ok(labels.includes("matmul_bwd_a"), labels.join());
        assert.ok(!labels.includes("matmul_bwd_b"), labels.join());
        const da = plan.dispatches.find((d) => d.label === "matmul_bwd_a")!;
        assert.ok(da.code.includes(dtype === "bf16" ? "bf16_at(b[" : "unpack2x16float(b["), "16-bit read");
      });
    }
  }
});

test("matmul: trainable b gets a dB kernel; only what `needs` asks for is built", () => {
  const g = new Graph();
  const x = g.input("x", [2, 3, 4]);
  const w = randParam(g, "w", [5, 4]);
  const loss = sumAll(linear(x, w));
  const labels = kernelLabels(lower([...grad(loss).values()]));
  assert.ok(labels.includes("matmul_bwd_b"), labels.join());
  assert.ok(!labels.includes("matmul_bwd_a"), `x is an input: no dA (${labels.join()})`);
});

test("matmul: shape errors name the op and the shapes", () => {
  const g = new Graph();
  const a = g.input("a", [3, 4]);
  assertThrowsMsg(() => matmul(a, g.input("b", [5, 6])), "matmul", "[3,4]", "[5,6]", "K");
  assertThrowsMsg(() => matmul(a, g.input("b2", [6, 4]), { transB: false }), "matmul", "[6,4]");
  assertThrowsMsg(
    () => matmul(a, g.input("b3", [4, 6]), { bias: g.input("bias", [4]) }),
    "matmul",
    "[4]",
    "bias of shape [6]",
  );
  assertThrowsMsg(
    () => matmul(g.input("a3", [2, 3, 4]), g.input("b4", [3, 4, 5])),
    "matmul",
    "[2,3,4]",
    "[3,4,5]",
    "batch",
  );
  assertThrowsMsg(
    () => matmul(g.param("ah", [3, 4], { trainable: false, dtype: "f16" }), g.input("b5", [4, 2])),
    "matmul",
    "f16",
    "only b may be",
  );
  assertThrowsMsg(() => matmul(g.input("v", [4]), g.input("b6", [4, 2])), "matmul", "rank >= 2");
  assertThrowsMsg(() => linear(a, g.input("w", [4, 3])), "matmul", "[4,3]");
});
