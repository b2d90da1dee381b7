// Predictions of a saved image run for image files: the model rebuilt from the checkpoint's state.json,
// each image through the run's eval transform, softmax probabilities, the top-k classes by name.

import { getGpu } from "../compiler/runtime/device.ts";
import { findCheckpoint, readCheckpointState } from "../io/checkpoint.ts";
import { CheckpointError } from "../io/weights.ts";
import { decodeImage, ImageDecodeError } from "../data/image/decode.ts";
import { transformSample } from "../data/image/sample_transform.ts";
import type { RunConfig } from "./config.ts";
import { imageClassNames, imageEvalSpec, TASKS } from "./tasks.ts";
import { withSavedModel } from "./evaluate.ts";

/** One image's prediction. */
export interface Prediction {
  /** The image file. */
  file: string;
  /** The k most probable classes, most probable first. */
  top: { label: number; name: string; prob: number }[];
  /** Why it could not be predicted (a corrupt file), instead of `top`. */
  error?: string;
}

/** Top-k predictions of a run's checkpoint (an image run) for image files. */
export async function predictImages(
  checkpoint: string,
  files: string[],
  opts: { k?: number; gpuMemory?: number } = {},
): Promise<Prediction[]> {
  const where = await findCheckpoint(checkpoint);
  const run = (await readCheckpointState(where.checkpoint)).run as RunConfig | undefined;
  if (!run || run.task !== "image") {
    throw new CheckpointError(
      `${where.checkpoint}/state.json`,
      run ? `a ${run.task} run; predict takes image runs` : "no run configuration",
    );
  }
  const spec = await imageEvalSpec(run);
  const classes = TASKS.image.classes(run);
  const names = await imageClassNames(run).catch(() => [] as string[]);
  const S = spec.chans * spec.imgSize * spec.imgSize;
  const x = new Float32Array(files.length * S);
  const errors = new Map<number, string>();
  for (const [i, f] of files.entries()) {
    try {
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(f);
      } catch (e) {
        throw new ImageDecodeError(f, `cannot read (${(e as Error).message})`);
      }
      x.set(transformSample(await decodeImage(bytes, f), spec, undefined, f), i * S);
    } catch (e) {
      if (!(e instanceof ImageDecodeError)) throw e;
      errors.set(i, e.message);
    }
  }
  await getGpu({ quiet: true });
  return await withSavedModel(run, files.length, where.checkpoint, opts.gpuMemory, async (m, exe) => {
    exe.write(m.input, x);
    const [logits] = await exe.run([m.logits]);
    const k = Math.min(opts.k ?? 5, classes);
    return files.map((file, i) => {
      if (errors.has(i)) return { file, top: [], error: errors.get(i) };
      const row = Array.from(logits.subarray(i * classes, (i + 1) * classes));
      const mx = Math.max(...row), e = row.map((v) => Math.exp(v - mx)), z = e.reduce((a, b) => a + b, 0);
      const order = [...row.keys()].sort((a, b) => row[b] - row[a] || a - b).slice(0, k);
      return {
        file,
        top: order.map((c) => ({ label: c, name: names[c] ?? `class ${c}`, prob: e[c] / z })),
      };
    });
  });
}
