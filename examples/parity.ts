// Parity with PyTorch: one training step of the ViT (optionally with frozen LLM layers) from the
// initial weights and batch in REF, written to OUT; compared with REF's expected results when present.
//
//   deno task parity --ref REF.safetensors --out OUT.safetensors --model vit \
//     --img 28 --patch 7 --chans 1 --dim 32 --depth 2 --heads 2 --classes 10 \
//     --llm none|CHECKPOINT_DIR --llm-layers 2|1,2 --label-smoothing 0.1 --lr 1e-3 --weight-decay 0.05
//   deno task parity --ref REF --out OUT --model point --points 64 --groups 8 --group-size 8 \
//     --encoder-dim 32 --dim 32 --depth 2 --heads 2 --classes 5 --llm CHECKPOINT_DIR --llm-layers 2 \
//     --label-smoothing 0.2 --lr 1e-3 --weight-decay 0.05
//   deno task parity --ref REF --out OUT --model video --frames 4 --tubelet 2 --img 28 --patch 7 --chans 1 \
//     --dim 32 --depth 2 --heads 2 --classes 10 --llm CHECKPOINT_DIR --llm-layers 1 \
//     --label-smoothing 0.1 --lr 1e-3 --weight-decay 0.05 [--init-values 0.1]
//   deno task parity --ref tests/fixtures/parity/parity-finetune.safetensors --out OUT --model vit \
//     --img 28 --patch 7 --chans 1 --dim 32 --depth 2 --heads 2 --classes 10 --label-smoothing 0.1 \
//     --llm tests/fixtures/llama-tiny-bf16 --llm-layers 2 --arm finetune --llm-lr-scale 0.5
//
// --arm (models/arms.ts; vit and point): with finetune the LLM layers are trainable (REF then holds
// param./grad./next. for them under their HF names) and their AdamW lr is --llm-lr-scale × lr
// (generator: tests/fixtures/parity/gen_parity_finetune.py).
//
// For --model video (models/video.ts, VideoMAE names), inputs are clips [B, C, T, H, W]; layer scale
// (gamma_1/gamma_2) exists when --init-values > 0 (default 0: none, as VideoMAE's fine-tuning); the
// weight decay applies to params with ≥ 2 dims only (VideoMAE's groups).
//
// For --model point, inputs are [B, points, 3], BatchNorm runs in training mode, REF also holds
// buffer.<name> (running stats) and OUT adds nextbuffer.<name>; the loss uses Point-BERT's smoothing
// (ε/(C−1) on the other classes); dropout is off; no weight decay on 1-D/bias/cls_token/cls_pos.
//
// REF holds param.<name> (initial trainable weights, timm names + llama_dim_mapper1/2), inputs
// [B,C,H,W] f32 and labels [B] i64. OUT gets logits, loss [1], grad.<name> and next.<name> (after one
// AdamW step: betas 0.9/0.999, eps 1e-8, no decay on 1-D tensors, biases, pos_embed, cls_token; no
// clipping, no warmup). With expected keys in REF it prints the worst error per group and
// `parity: pass|fail` (exit code 1 on fail).

import { compile, getGpu, grad, Graph, io, models, nn, type Node, ops, train } from "../mod.ts";

const { num } = train;

/** Where the tool's lines go: `out` is stdout's, `err` stderr's (the CLI's console.log / console.error). */
export interface ParityLog {
  out(line: string): void;
  err(line: string): void;
}

/**
 * The parity tool on ARGS (the CLI's flags), printing through LOG; resolves to the exit code (0 pass or
 * no expected results, 1 fail, 2 bad usage). A REF that does not fit the model throws (the CLI: an
 * uncaught error, exit 1). --help and unparsable flags or numbers still print and exit the process
 * (train.parseFlags / train.num), as the CLI always did.
 */
export async function runParity(args: string[], log: ParityLog): Promise<number> {
  const flags = train.parseFlags("usage: deno task parity --ref REF --out OUT [flags]", {
    ref: {
      type: "string",
      help: "reference safetensors (param.*, inputs, labels, optionally expected results)",
    },
    out: { type: "string", help: "output safetensors" },
    model: { type: "string", default: "vit", help: "vit | point | video" },
    frames: { type: "string", default: "4", help: "frames per clip (video)" },
    tubelet: { type: "string", default: "2", help: "frames per tubelet (video)" },
    "init-values": { type: "string", default: "0", help: "layer scale init; 0: no gamma_1/gamma_2 (video)" },
    points: { type: "string", default: "64", help: "points per cloud (point)" },
    groups: { type: "string", default: "8", help: "FPS groups (point)" },
    "group-size": { type: "string", default: "8", help: "kNN group size (point)" },
    "encoder-dim": { type: "string", default: "32", help: "mini-PointNet output dim (point)" },
    img: { type: "string", default: "28", help: "image size" },
    patch: { type: "string", default: "7", help: "patch size" },
    chans: { type: "string", default: "1", help: "input channels" },
    dim: { type: "string", default: "32", help: "embedding dim" },
    depth: { type: "string", default: "2", help: "blocks" },
    heads: { type: "string", default: "2", help: "attention heads" },
    classes: { type: "string", default: "10", help: "classes" },
    llm: { type: "string", default: "none", help: "none or a checkpoint dir" },
    arm: {
      type: "string",
      default: "frozen",
      help: "LLM arm (models/arms.ts): frozen | finetune | mlp | ...",
    },
    "llm-lr-scale": {
      type: "string",
      default: "1",
      help: "finetune arm: the LLM layers' lr as a multiple of --lr",
    },
    "llm-layers": { type: "string", default: "last", help: "layers of the LLM, e.g. 2 or 1,2 or last:2" },
    "label-smoothing": { type: "string", default: "0.1", help: "label smoothing" },
    lr: { type: "string", default: "1e-3", help: "learning rate" },
    "weight-decay": {
      type: "string",
      default: "0.05",
      help: "AdamW weight decay (not on 1-D/bias/pos_embed/cls_token)",
    },
    tol: { type: "string", default: "1e-4", help: "pass threshold: worst scaled error per group" },
  }, args);
  if (!flags.ref || !flags.out) {
    log.err("parity: --ref and --out are required (see --help)");
    return 2;
  }
  if (flags.model !== "vit" && flags.model !== "point" && flags.model !== "video") {
    log.err(`parity: --model ${flags.model} is not supported (vit | point | video)`);
    return 2;
  }
  const isPoint = flags.model === "point", isVideo = flags.model === "video";
  const cfg = {
    img: num("img", flags.img),
    patch: num("patch", flags.patch),
    chans: num("chans", flags.chans),
    dim: num("dim", flags.dim),
    depth: num("depth", flags.depth),
    heads: num("heads", flags.heads),
    classes: num("classes", flags.classes),
  };
  const lr = num("lr", flags.lr), wd = num("weight-decay", flags["weight-decay"]);
  const smoothing = num("label-smoothing", flags["label-smoothing"]), tol = num("tol", flags.tol);

  const ref = await io.openSafetensors(flags.ref);
  const read = async (src: io.WeightSource, name: string) =>
    io.toFloat32(src.info(name), await src.read(name));
  const inputsInfo = ref.info("inputs");
  const B = inputsInfo.shape[0];
  const frames = isVideo ? [num("frames", flags.frames)] : [];
  const sampleShape = isPoint ? [num("points", flags.points), 3] : [cfg.chans, ...frames, cfg.img, cfg.img];
  const want = `[B, ${sampleShape.join(", ")}]`;
  const got = inputsInfo.shape.slice(1).join();
  if (got !== sampleShape.join()) {
    throw new Error(`${flags.ref}: inputs have shape [${inputsInfo.shape}], but the model expects ${want}`);
  }

  const g = new Graph();
  const llm = flags.llm === "none" ? undefined : await io.openLlm(flags.llm);
  const layers = llm ? io.parseLayerSelection(flags["llm-layers"], llm.cfg.layers) : [];
  const arm = flags.arm as models.LlmArm;
  if (!models.LLM_ARMS.includes(arm) || arm === "none" || (isVideo && arm !== "frozen")) {
    log.err(
      `parity: --arm ${arm} is not supported here (${
        isVideo ? "video: frozen" : "frozen, finetune, mlp, ..."
      })`,
    );
    llm?.src.close();
    ref.close();
    return 2;
  }
  const llmOpt = llm ? { ck: llm, layers, arm } : undefined;
  let input: Node, logitsNode: Node, buffers: Node[] = [], bnUpdates: Node[] = [], loader;
  if (isPoint) {
    const m = await models.buildPointBert(
      g,
      {
        points: num("points", flags.points),
        groups: num("groups", flags.groups),
        groupSize: num("group-size", flags["group-size"]),
        encoderDim: num("encoder-dim", flags["encoder-dim"]),
        dim: cfg.dim,
        depth: cfg.depth,
        heads: cfg.heads,
        classes: cfg.classes,
      },
      B,
      { training: true, dropout: 0, llm: llmOpt },
    );
    [input, logitsNode, buffers, bnUpdates, loader] = [
      m.points,
      m.logits,
      m.buffers,
      m.bnUpdates,
      m.llm?.loader,
    ];
  } else if (isVideo) {
    const video = {
      ...cfg,
      frames: frames[0],
      tubelet: num("tubelet", flags.tubelet),
      initValues: num("init-values", flags["init-values"]),
    };
    const m = await models.buildVideoVit(g, video, B, { llm: llmOpt });
    [input, logitsNode, loader] = [m.clips, m.logits, m.llm?.loader];
  } else {
    const m = await models.buildVit(g, cfg, B, { llm: llmOpt });
    [input, logitsNode, loader] = [m.images, m.logits, m.llm?.loader];
  }
  const model = { logits: logitsNode };
  const labels = g.input("labels", [B], "i32");
  const loss = ops.crossEntropy(model.logits, labels, {
    labelSmoothing: smoothing,
    smoothing: isPoint ? "others" : "uniform",
  });
  const grads = grad(loss);
  const opt = new nn.AdamW(g, grads, {
    lr,
    weightDecay: wd,
    noDecay: isPoint ? models.pointNoDecay : isVideo ? models.videoNoDecay : models.vitNoDecay,
    paramGroup: models.llmParamGroup(arm, num("llm-lr-scale", flags["llm-lr-scale"])),
  });
  const gradNodes = [...grads.values()];
  const gpu = await getGpu();
  log.err(`webgpu adapter: ${gpu.adapterName}`);
  // REF is checked against the model before compiling it (a REF that does not fit costs no kernels)
  try {
    checkRef(flags.ref, ref, [...grads.keys()], buffers);
  } catch (e) {
    ref.close();
    llm?.src.close();
    throw e;
  }
  // BatchNorm's running-stat updates (point model) run before the optimizer's, in creation order
  const exe = await compile([model.logits, loss, ...gradNodes], {
    gpu,
    effects: [...bnUpdates, ...opt.effects],
    weights: loader,
  });
  let code = 0;
  try {
    for (const p of grads.keys()) exe.write(p, await read(ref, `param.${p.name}`));
    exe.write(input, await read(ref, "inputs"));
    for (const b of buffers) exe.write(b, await read(ref, `buffer.${b.name}`));
    exe.write(labels, Int32Array.from(await read(ref, "labels")));
    opt.prepareStep(exe, lr);
    const [logits, lossV, ...gradVals] = await exe.run([model.logits, loss, ...gradNodes]);

    const out: { name: string; shape: number[]; data: Float32Array }[] = [
      { name: "logits", shape: [...model.logits.shape], data: logits as Float32Array },
      { name: "loss", shape: [1], data: lossV as Float32Array },
    ];
    const params = [...grads.keys()];
    params.forEach((p, i) =>
      out.push({ name: `grad.${p.name}`, shape: [...p.shape], data: gradVals[i] as Float32Array })
    );
    for (const p of params) {
      out.push({ name: `next.${p.name}`, shape: [...p.shape], data: (await exe.read(p)) as Float32Array });
    }
    for (const b of buffers) {
      out.push({
        name: `nextbuffer.${b.name}`,
        shape: [...b.shape],
        data: (await exe.read(b)) as Float32Array,
      });
    }
    await io.writeSafetensors(
      flags.out,
      out.map((t) => ({ name: t.name, dtype: "F32", shape: t.shape, data: io.bytesOf(t.data) })),
      {
        tool: "examples/parity.ts",
      },
    );
    log.out(`parity: wrote ${out.length} tensors to ${flags.out}`);

    if (ref.has("logits")) {
      // error of a tensor: max |ours - ref| / max |ref|. For next.* (one AdamW step) the scale is the
      // step size lr (after allowing for f32 storage of the result), and elements whose reference
      // gradient is below 1e-6 (~100 × eps) are skipped: there
      // the first AdamW step g/(|g|+eps) turns rounding noise into a full step (e.g. the key bias, whose
      // true gradient is exactly 0 because softmax ignores a shift shared by a row).
      const worst: Record<string, { err: number; what: string; skipped: number }> = {};
      const note = (group: string, what: string, err: number, skipped = 0) => {
        const w = worst[group] ??= { err: 0, what: "", skipped: 0 };
        w.skipped += skipped;
        if (!(err <= w.err)) [w.err, w.what] = [err, what];
      };
      const byName = new Map(out.map((t) => [t.name, t.data]));
      for (const name of ["logits", "loss"]) {
        note(name, name, scaled(byName.get(name)!, await read(ref, name)));
      }
      // a gradient that is exactly zero in exact arithmetic (biases right before a training-mode
      // BatchNorm, which cancels any shift) is rounding noise in f32: such tensors are measured against
      // 1e-3 of the largest gradient instead of their own (zero) scale
      let gscale = 0;
      for (const p of params) {
        for (const v of await read(ref, `grad.${p.name}`)) gscale = Math.max(gscale, Math.abs(v));
      }
      for (const p of params) {
        const gRef = await read(ref, `grad.${p.name}`);
        note("grad", p.name!, scaled(byName.get(`grad.${p.name}`)!, gRef, 1e-3 * gscale));
        const nRef = await read(ref, `next.${p.name}`), nOurs = byName.get(`next.${p.name}`)!;
        let e = 0, skipped = 0;
        for (let i = 0; i < nRef.length; i++) {
          if (Math.abs(gRef[i]) < 1e-6) {
            skipped++;
            continue;
          }
          // minus what storing the result in f32 alone costs (2 ulps), in units of the step size
          e = Math.max(e, Math.max(0, Math.abs(nOurs[i] - nRef[i]) - 2 ** -22 * Math.abs(nRef[i])) / lr);
        }
        note("next", p.name!, e, skipped);
      }
      for (const b of buffers) {
        note(
          "buffer",
          b.name!,
          scaled(byName.get(`nextbuffer.${b.name}`)!, await read(ref, `nextbuffer.${b.name}`)),
        );
      }
      let pass = true;
      for (const [group, w] of Object.entries(worst)) {
        const ok = w.err <= tol;
        pass &&= ok;
        log.out(
          `  ${group.padEnd(7)} worst ${w.err.toExponential(2)} (${w.what})${
            w.skipped ? `, ${w.skipped} ill-conditioned elements skipped` : ""
          }${ok ? "" : "  > " + tol}`,
        );
      }
      log.out(`parity: ${pass ? "pass" : "fail"}`);
      if (!pass) code = 1;
    }
  } finally {
    exe.destroy();
    ref.close();
    llm?.src.close();
  }
  return code;
}

if (import.meta.main) {
  Deno.exitCode = await runParity(Deno.args, {
    out: (line) => console.log(line),
    err: (line) => console.error(line),
  });
}

/** Throws unless REF's param.* are exactly the model's trainable PARAMS (names, shapes) and it has every buffer. */
function checkRef(path: string, ref: io.WeightSource, params: Node[], buffers: Node[]): void {
  const refParams = new Set(
    ref.list().filter((t) => t.name.startsWith("param.")).map((t) => t.name.slice(6)),
  );
  for (const p of params) {
    if (!refParams.has(p.name!)) {
      throw new Error(`${path}: no 'param.${p.name}' for the model's trainable ${p}`);
    }
    const shape = ref.info(`param.${p.name}`).shape;
    if (shape.join() !== p.shape.join()) {
      throw new Error(`${path}: 'param.${p.name}' has shape [${shape}], the model's is [${p.shape}]`);
    }
    refParams.delete(p.name!);
  }
  if (refParams.size) {
    const hint = [...refParams].some((n) => /\.gamma_[12]$/.test(n))
      ? " (layer scale: pass --init-values > 0)"
      : "";
    throw new Error(`${path}: params the model does not have: ${[...refParams].join(", ")}${hint}`);
  }
  for (const b of buffers) {
    if (!ref.has(`buffer.${b.name}`)) throw new Error(`${path}: no 'buffer.${b.name}' for the model's ${b}`);
  }
}

function scaled(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-30): number {
  if (a.length !== b.length) return Infinity;
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) return Infinity;
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / Math.max(den, floor);
}
