// The layering rule: every import points down (or within its own layer), and no module imports itself
// back through a cycle. Type-only imports count too: an upward `import type` is still an upward arrow.
// Tests may import anything; nothing else may import from tests/.

import { assert, test } from "./testing.ts";

/** Layers from the bottom up; a path belongs to the first (longest) prefix that matches. */
const LAYERS: readonly (readonly string[])[] = [
  ["compiler/core/"],
  ["compiler/ops/", "compiler/grad.ts"],
  ["kernels/"],
  ["compiler/lower/"],
  ["compiler/runtime/"],
  ["nn/"],
  ["io/"],
  ["data/"],
  ["models/"],
  ["train/"],
  ["mod.ts"],
  ["examples/"],
];

const ROOT = new URL("../", import.meta.url);

function layerOf(path: string): number {
  let best = -1, bestLen = -1;
  LAYERS.forEach((prefixes, i) => {
    for (const p of prefixes) {
      if ((path === p || path.startsWith(p)) && p.length > bestLen) [best, bestLen] = [i, p.length];
    }
  });
  return best;
}

async function sources(dir: string, out: string[] = []): Promise<string[]> {
  for await (const e of Deno.readDir(new URL(dir, ROOT))) {
    const p = dir + e.name;
    if (e.isDirectory && !e.name.startsWith(".") && !["tests", "out", "docs", "node_modules"].includes(p)) {
      await sources(p + "/", out);
    } else if (e.isFile && e.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

const SPEC = /(?:^|\n)\s*(?:import|export)\b[^;"']*?(?:from\s*)?["'](\.{1,2}\/[^"']+)["']/g;

/** Relative imports of one file, resolved to repository paths. */
async function importsOf(path: string): Promise<string[]> {
  const text = await Deno.readTextFile(new URL(path, ROOT));
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/") + 1) : "";
  return [...text.matchAll(SPEC)].map((m) =>
    new URL(m[1], new URL(dir || ".", ROOT)).href.slice(ROOT.href.length)
  );
}

test("layering: every import points down a layer or stays in its own; no cycles", async () => {
  const files = (await sources("")).filter((p) => !p.startsWith("tests/"));
  const graph = new Map<string, string[]>();
  const upward: string[] = [];
  for (const f of files) {
    const from = layerOf(f);
    assert.ok(from >= 0, `${f} belongs to no layer: add its folder to LAYERS in tests/layering.test.ts`);
    const deps = await importsOf(f);
    graph.set(f, deps);
    for (const d of deps) {
      if (d.startsWith("tests/")) upward.push(`${f} -> ${d} (library code imports tests/)`);
      else if (layerOf(d) > from) upward.push(`${f} (${LAYERS[from][0]}) -> ${d} (${LAYERS[layerOf(d)][0]})`);
    }
  }
  assert.deepEqual(upward, [], `upward imports:\n${upward.join("\n")}`);

  // Cycles: depth-first search with an explicit stack of the current path.
  const cycles: string[] = [];
  const state = new Map<string, 1 | 2>(); // 1 on the path, 2 done
  const path: string[] = [];
  const visit = (f: string) => {
    state.set(f, 1);
    path.push(f);
    for (const d of graph.get(f) ?? []) {
      if (state.get(d) === 1) cycles.push([...path.slice(path.indexOf(d)), d].join(" -> "));
      else if (!state.has(d)) visit(d);
    }
    path.pop();
    state.set(f, 2);
  };
  for (const f of graph.keys()) if (!state.has(f)) visit(f);
  assert.deepEqual(cycles, [], `import cycles:\n${cycles.join("\n")}`);
});

test("layering: the checker sees upward arrows and cycles (self-test on known paths)", () => {
  assert.ok(layerOf("compiler/core/ir.ts") < layerOf("compiler/ops/matmul.ts"));
  assert.ok(layerOf("compiler/ops/matmul.ts") < layerOf("kernels/matmul.ts"));
  assert.ok(layerOf("kernels/matmul.ts") < layerOf("compiler/lower/plan.ts"));
  assert.ok(layerOf("compiler/runtime/executable.ts") < layerOf("nn/block.ts"));
  assert.ok(layerOf("io/safetensors.ts") < layerOf("data/fashion_mnist.ts"));
  assert.ok(layerOf("train/loop.ts") < layerOf("examples/bench.ts"));
  const m = [...'import { a } from "../x.ts";\nexport * from "./y.ts";\nimport type { Z } from "./z.ts";'
    .matchAll(SPEC)].map((x) => x[1]);
  assert.deepEqual(m, ["../x.ts", "./y.ts", "./z.ts"]);
});
