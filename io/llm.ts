// Opening an LLM checkpoint directory in either layout it comes in: Hugging Face (config.json +
// safetensors, single or sharded) or Meta's LLaMA-v1 (params.json + consolidated.00.pth). Either way
// the model code sees the tensors under HF names (Meta's are renamed, their wq/wk rows permuted from
// Meta's rotary order to HF's), so one set of layer builders (models/llm.ts) serves both.

import { type LlmConfig, readConfig } from "./config.ts";
import { exists } from "./fs.ts";
import { openCheckpointDir } from "./safetensors.ts";
import { metaToHfName, openPth, permuteMetaQK } from "./pth.ts";
import { CheckpointError, type TensorInfo, type WeightSource } from "./weights.ts";

/** An opened LLM checkpoint: its config and its tensors under HF names. */
export interface LlmCheckpoint {
  /** The model's architecture. */
  cfg: LlmConfig;
  /** Tensors under HF names (Meta checkpoints are renamed and their q/k rows permuted to HF order). */
  src: WeightSource;
  /** Which layout the directory holds. */
  format: "hf" | "meta";
  /** The directory it was opened from. */
  dir: string;
}

/** Opens an HF (config.json + safetensors, single or sharded) or Meta (params.json + consolidated.00.pth) checkpoint. */
export async function openLlm(dir: string): Promise<LlmCheckpoint> {
  const cfg = await readConfig(dir);
  const isMeta = await exists(`${dir}/consolidated.00.pth`);
  if (isMeta) {
    const pth = await openPth(`${dir}/consolidated.00.pth`);
    return { cfg, src: new MetaAsHf(pth, cfg), format: "meta", dir };
  }
  return { cfg, src: await openCheckpointDir(dir), format: "hf", dir };
}

/** A Meta checkpoint seen under HF names, with wq/wk rows permuted from Meta's rotary order to HF's. */
class MetaAsHf implements WeightSource {
  private readonly toMeta = new Map<string, string>();
  constructor(private readonly pth: WeightSource, private readonly cfg: LlmConfig) {
    for (const t of pth.list()) {
      const hf = metaToHfName(t.name);
      if (hf) this.toMeta.set(hf, t.name);
    }
  }
  get path(): string {
    return this.pth.path;
  }
  list(): TensorInfo[] {
    return [...this.toMeta].map(([hf, meta]) => ({ ...this.pth.info(meta), name: hf }));
  }
  has(name: string): boolean {
    return this.toMeta.has(name);
  }
  info(name: string): TensorInfo {
    const m = this.toMeta.get(name);
    if (!m) throw new CheckpointError(this.path, `no tensor for '${name}' (Meta layout)`);
    return { ...this.pth.info(m), name };
  }
  async read(name: string): Promise<Uint8Array> {
    const m = this.toMeta.get(name);
    if (!m) throw new CheckpointError(this.path, `no tensor for '${name}' (Meta layout)`);
    const raw = await this.pth.read(m);
    const isQ = name.endsWith("self_attn.q_proj.weight"), isK = name.endsWith("self_attn.k_proj.weight");
    if (!isQ && !isK) return raw;
    const heads = isQ ? this.cfg.heads : this.cfg.kvHeads;
    return permuteMetaQK(raw, this.pth.info(m).dtype, heads, this.cfg.headDim, this.cfg.hidden);
  }
  close(): void {
    this.pth.close();
  }
}
