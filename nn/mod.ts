/**
 * Neural-network building blocks on top of the ops: the pre-LN transformer block, a tiny sequence
 * classifier around it, the AdamW optimizer, and seeded init helpers.
 *
 * @module
 */

export {
  type BlockConfig,
  type ClassifierConfig,
  type DropPathRate,
  sequenceClassifier,
  transformerBlock,
} from "./block.ts";
export { AdamW, type AdamWOptions, type ParamGroup, timmNoDecay } from "./optim.ts";
export { constantInit, randn, Rng, truncNormal } from "../compiler/core/random.ts";
