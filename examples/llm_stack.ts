// Frozen LLM layers as an encoder stack: load them from a checkpoint (HF safetensors, sharded, or
// Meta .pth), run forward + backward through them (gradients flow to a trainable projection in
// front, as in the ViT-LLM model), resident or streamed under a GPU memory budget, and report peak
// GPU bytes, step time and the streaming upload bandwidth.
//
//   deno run -A examples/llm_stack.ts --llm models/llama-tiny --llm-layers last:2
//   deno run -A examples/llm_stack.ts --llm llama7b --llm-layers 31 --gpu-memory 600MB --compare
//
// --llm llama7b (or random:HIDDEN,HEADS,FFN,LAYERS) writes random weights of that shape (bf16, real
// on-disk layout, only the selected layers) to a temporary directory first.

import { compile, getGpu, grad, Graph, io, models, nn, ops, train } from "../mod.ts";

const flags = train.parseFlags("usage: deno run -A examples/llm_stack.ts [flags]", {
  llm: {
    type: "string",
    default: "models/llama-tiny",
    help: "checkpoint dir, llama7b, or random:HIDDEN,HEADS,FFN,LAYERS",
  },
  "llm-layers": { type: "string", default: "last", help: "layers: 31 | 30,31 | last | last:2 | all | 0-3" },
  "gpu-memory": {
    type: "string",
    default: "",
    help: "GPU memory budget for frozen weights, e.g. 600MB, 1.5GB (default: unlimited)",
  },
  batch: { type: "string", default: "2", help: "sequences" },
  tokens: { type: "string", default: "50", help: "tokens per sequence" },
  steps: { type: "string", default: "5", help: "timed steps (after one warm-up)" },
  compare: { type: "boolean", default: false, help: "also run resident and compare numbers and peak memory" },
  upload: {
    type: "string",
    default: "auto",
    help: "streamed weights' upload path: auto | write-buffer | staging-ring",
  },
});

let dir = flags.llm;
let tmp: string | undefined;
if (dir === "llama7b" || dir.startsWith("random:")) {
  let shape: io.RandomLlamaShape = io.LLAMA_7B;
  if (dir.startsWith("random:")) {
    const [hidden, heads, intermediate, layers] = dir.slice(7).split(",").map(Number);
    shape = { hidden, heads, intermediate, layers };
  }
  tmp = await Deno.makeTempDir({ prefix: "llm-random-" });
  const layers = io.parseLayerSelection(flags["llm-layers"], shape.layers);
  const t0 = performance.now();
  await io.writeRandomLlama(tmp, shape, { only: layers });
  console.log(
    `wrote random ${dir} layers ${layers} (bf16) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  dir = tmp;
}

const gpu = await getGpu();
console.error(`webgpu adapter: ${gpu.adapterName}`);
const ck = await io.openLlm(dir);
const layers = io.parseLayerSelection(flags["llm-layers"], ck.cfg.layers);
const { num } = train;
const B = num("batch", flags.batch), T = num("tokens", flags.tokens), steps = num("steps", flags.steps);
const budget = flags["gpu-memory"] ? train.bytes("gpu-memory", flags["gpu-memory"]) : undefined;
const D = ck.cfg.hidden;

async function run(mode: "auto" | "never") {
  const g = new Graph();
  const x = g.input("x", [B, T, D]);
  // a trainable projection in front: its gradient must flow back through the frozen layers
  const proj = g.param("proj.weight", [D, D], { init: nn.truncNormal(1, 0.02) });
  const stack = await models.frozenEncoderStack(g, ops.linear(x, proj), ck, layers);
  const cot = g.input("cot", [B, T, D]);
  const dproj = grad(ops.sumAll(ops.mul(stack.out, cot))).get(proj)!;
  const exe = await compile([stack.out, dproj], {
    weights: stack.loader,
    gpuMemoryBudget: budget,
    stream: mode,
    upload: flags.upload as "auto" | "write-buffer" | "staging-ring",
  });
  exe.write(x, nn.randn(2, B * T * D));
  exe.write(cot, nn.randn(3, B * T * D));
  await exe.run([dproj]); // warm-up
  exe.streamStats.bytes = exe.streamStats.seconds = exe.streamStats.uploads = 0;
  const t0 = performance.now();
  let out = [] as (Float32Array | Int32Array | Uint32Array)[];
  for (let s = 0; s < steps; s++) out = await exe.run(s === steps - 1 ? [stack.out, dproj] : [dproj]);
  const ms = (performance.now() - t0) / steps;
  const r = {
    streaming: exe.streaming,
    peak: exe.peakBytes,
    ms,
    stats: { ...exe.streamStats },
    out,
    upload: exe.uploadPath,
  };
  exe.destroy();
  return r;
}

const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
console.log(
  `${ck.format} ${ck.cfg.type} checkpoint ${flags.llm}: layers ${layers} of ${ck.cfg.layers}, hidden ${D}; batch ${B}×${T} tokens`,
);
const main = await run("auto");
const report = (name: string, r: typeof main) => {
  let line = `${name}: peak ${mb(r.peak)}, ${r.ms.toFixed(1)} ms/step (forward + backward)`;
  if (r.streaming) {
    const gbps = r.stats.bytes / r.stats.seconds / 1e9;
    line += `; streamed ${mb(r.stats.bytes / steps)}/step in ${r.stats.uploads / steps} uploads, ` +
      `${gbps.toFixed(2)} GB/s (disk read + ${r.upload}, overlapped with compute)`;
  }
  console.log(line);
};
report(main.streaming ? `streamed (budget ${budget} B)` : "resident", main);
if (flags.compare && main.streaming) {
  const res = await run("never");
  report("resident", res);
  let worst = 0;
  for (let k = 0; k < 2; k++) {
    for (let i = 0; i < res.out[k].length; i++) {
      worst = Math.max(worst, Math.abs(res.out[k][i] - main.out[k][i]));
    }
  }
  console.log(
    `streamed vs resident: max |difference| ${worst} (outputs and gradients); adapter ${gpu.adapterName}`,
  );
}
ck.src.close();
if (tmp) await Deno.remove(tmp, { recursive: true });
