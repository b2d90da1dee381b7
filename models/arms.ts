// The paper's ablation arms as one builder every task calls in place of the frozen LLM stack:
//
//   const s = await llmArm(g, x, { arm, ck, layers, seed });   // x: [B, T, hidden] (after mapper1)
//   // s.out: [B, T, hidden] (feed mapper2); s.taps: per layer {attn, out}; s.loader → compile({ weights })
//
// Arms (all keep the unit-scale final norm, so only the layer itself differs between them):
//   frozen          the checkpoint's layers, frozen (the method; 16-bit matrices stay 16-bit, streamable)
//   random-frozen   the same names and shapes, random weights (llm.ts StackOpts.random), frozen
//   random-trained  the same, trained end to end (the paper's random arm, App. B.2)
//   finetune        the checkpoint's layers, trainable: 16-bit matrices become f32 params (the master
//                   copies); a task scales their lr with llmParamGroup (--llm-lr-scale)
//   mlp             the paper's "+MLP" control: per selected layer one trainable pre-norm residual MLP
//                   block in the LLM's own FFN form and sizes — LLaMA: y = x + down(silu(gate(n)) ⊙ up(n)),
//                   n = RMSNorm(x) (weight, eps of the LLM); OPT: y = x + fc2(relu(fc1(LayerNorm(x)))) with
//                   biases — hidden → intermediate → hidden, random init (matrices ~ N(0, 0.02²)); names
//                   `llm_mlp.<k>.*`. Its taps: attn = the block's input (it has no attention half), out.
//   none            no stack: callers skip mapper1/mapper2 as well (llmArm refuses it).

import type { Graph, Node } from "../compiler/core/ir.ts";
import { add, mul } from "../compiler/ops/elementwise.ts";
import { linear } from "../compiler/ops/matmul.ts";
import { layerNorm, rmsNorm } from "../compiler/ops/norm.ts";
import { relu, silu } from "../compiler/ops/activation.ts";
import { constantInit, truncNormal } from "../compiler/core/random.ts";
import type { LlmCheckpoint } from "../io/llm.ts";
import { checkLayers, frozenEncoderStack, type FrozenStack, type LayerOut, unitFinalNorm } from "./llm.ts";

/** The ablation arms (`--arm`). */
export type LlmArm = "none" | "frozen" | "mlp" | "random-frozen" | "random-trained" | "finetune";

/** Every arm, in the order the ablation table lists them. */
export const LLM_ARMS: readonly LlmArm[] = [
  "none",
  "mlp",
  "frozen",
  "random-frozen",
  "random-trained",
  "finetune",
];

/** Where the LLM layers sit in a ViT (`--llm-position`). */
export type LlmPosition = "tail" | "middle" | "head";

/** The positions (`--llm-position`). */
export const LLM_POSITIONS: readonly LlmPosition[] = ["tail", "middle", "head"];

/** What llmArm builds. */
export interface ArmOpts {
  /** The arm (not "none"). */
  arm: LlmArm;
  /** The checkpoint: its weights (frozen, finetune) or only its shape (the other arms). */
  ck: LlmCheckpoint;
  /** The selected layer indices. */
  layers: readonly number[];
  /** Seed of random weights (random-*, mlp; default 0). */
  seed?: number;
}

/** The stack of an arm: out, per-layer params and taps, and the weights loader (FrozenStack). */
export type ArmStack = FrozenStack & {
  /** The arm that built it. */
  arm: LlmArm;
};

/** Builds the arm's layers on x [B, T, hidden]; see the file comment for what each arm is. */
export async function llmArm(g: Graph, x: Node, opts: ArmOpts): Promise<ArmStack> {
  const { arm, ck, layers } = opts;
  const seed = opts.seed ?? 0;
  switch (arm) {
    case "frozen":
      return { ...await frozenEncoderStack(g, x, ck, layers), arm };
    case "random-frozen":
    case "random-trained":
      return {
        ...await frozenEncoderStack(g, x, ck, layers, {
          random: true,
          trainable: arm === "random-trained",
          seed,
        }),
        arm,
      };
    case "finetune":
      return { ...await frozenEncoderStack(g, x, ck, layers, { trainable: true }), arm };
    case "mlp":
      return { ...mlpStack(g, x, ck, layers, seed), arm };
    default:
      throw new Error(
        `llmArm: arm '${arm}' builds no layers (expected one of ${LLM_ARMS.slice(1).join(", ")})`,
      );
  }
}

/** The mlp arm: one pre-norm residual MLP block per selected layer, then the unit final norm. */
function mlpStack(
  g: Graph,
  x: Node,
  ck: LlmCheckpoint,
  layers: readonly number[],
  seed: number,
): FrozenStack {
  const { cfg } = ck;
  if (x.shape[x.rank - 1] !== cfg.hidden) {
    throw new Error(`llm: input ${x} must have last dim ${cfg.hidden} (the LLM's hidden size)`);
  }
  checkLayers(ck, layers);
  const [H, I] = [cfg.hidden, cfg.intermediate];
  let y = x;
  const params: Map<string, Node>[] = [];
  const taps: LayerOut[] = [];
  for (const k of layers.keys()) {
    const w = new Map<string, Node>();
    let j = 0;
    const p = (n: string, shape: number[]) => {
      const init = shape.length >= 2
        ? truncNormal(seed * 7919 + 1000 * k + 31 * j++ + 5, 0.02)
        : constantInit(n.endsWith("bias") ? 0 : 1);
      const node = g.param(`llm_mlp.${k}.${n}`, shape, { init });
      w.set(node.name!, node);
      return node;
    };
    let f: Node;
    if (cfg.type === "llama") {
      const n = rmsNorm(y, p("norm.weight", [H]), cfg.normEps);
      const gated = mul(silu(linear(n, p("gate.weight", [I, H]))), linear(n, p("up.weight", [I, H])));
      f = linear(gated, p("down.weight", [H, I]));
    } else {
      const n = layerNorm(y, p("norm.weight", [H]), p("norm.bias", [H]), cfg.normEps);
      f = linear(
        relu(linear(n, p("fc1.weight", [I, H]), p("fc1.bias", [I]))),
        p("fc2.weight", [H, I]),
        p("fc2.bias", [H]),
      );
    }
    const out = add(y, f);
    taps.push({ attn: y, out });
    params.push(w);
    y = out;
  }
  return {
    out: unitFinalNorm(y, cfg),
    layerParams: params,
    layers: [...layers],
    loader: () => Promise.reject(new Error("llm: the mlp arm has no checkpoint weights to stream")),
    taps,
  };
}

/** True for a param of the LLM layers (HF names: `model.*`) — the finetune arm's lr-scaled group. */
export function isLlmParam(p: Node): boolean {
  return (p.name ?? "").startsWith("model.");
}

/**
 * AdamW param groups of the finetune arm: the LLM's params at lr × `lrScale` (`--llm-lr-scale`), the
 * rest as usual; undefined when nothing is scaled.
 */
export function llmParamGroup(
  arm: LlmArm | undefined,
  lrScale: number | undefined,
): ((p: Node) => { lrScale?: number }) | undefined {
  if (arm !== "finetune" || lrScale === undefined || lrScale === 1) return undefined;
  return (p) => isLlmParam(p) ? { lrScale } : {};
}
