// CPU reference (f64) of drop_path, with the documented hash computed in 32-bit integer arithmetic.
import { DROPOUT_HASH, dropThreshold } from "../../compiler/ops/batchnorm.ts";
import { STREAM_SALT } from "../../compiler/ops/droppath.ts";
import { pcgHash } from "./batchnorm.ts";
import { type RefOf, type RefsFor, tensor } from "./f64.ts";

/** Whether drop_path with (seed, stream) keeps sample b at drop probability p. */
export function dropPathKeeps(seed: number, stream: number, b: number, p: number): boolean {
  const key = pcgHash(
    (pcgHash(((seed >>> 0) + DROPOUT_HASH.seedOffset) >>> 0) ^
      pcgHash((stream ^ STREAM_SALT) >>> 0)) >>> 0,
  );
  return pcgHash((pcgHash(b) ^ key) >>> 0) >= dropThreshold(p);
}

const dropPathRef: RefOf<"drop_path"> = ([x, seed], a) => {
  const per = x.data.length / x.shape[0];
  return tensor(
    x.shape,
    x.data.map((v, i) => dropPathKeeps(seed.data[0], a.stream, Math.floor(i / per), a.p) ? v / (1 - a.p) : 0),
  );
};

/** The CPU references of this family (entries of tests/ref/table.ts). */
export const dropPathRefs: RefsFor<"drop_path"> = { drop_path: dropPathRef };
