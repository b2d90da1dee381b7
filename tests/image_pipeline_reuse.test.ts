// The image pipeline's buffer reuse (data/image/pipeline.ts): a batch handed back with
// PrefetchLoader.release gives its array to a later batch, and every batch keeps the bytes it has without
// reuse (stale floats of the earlier batch never show), with workers writing into returned reply buffers
// too, and a corrupt sample still patched from a good one.
import { assert, test } from "./testing.ts";
import { join } from "node:path";
import { Batcher } from "../data/batcher.ts";
import { openImageDataset } from "../data/image/dataset.ts";
import { openImagePipeline } from "../data/image/pipeline.ts";
import type { ImageTransformSpec } from "../data/image/sample_transform.ts";
import { IMAGE_FIXTURES } from "./image_reference.ts";

const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => v === b[i]);

async function folder(bad: boolean): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "imgreuse-" });
  const src = ["jpeg/astro_q50.jpg", "jpeg/cat_gray.jpg", "png/rgb8.png", "jpeg/coffee_420.jpg"];
  for (let i = 0; i < 12; i++) {
    const to = join(dir, "train", `c${i % 2}`, `${i}.${src[i % 4].slice(-3)}`);
    await Deno.mkdir(join(to, ".."), { recursive: true });
    await Deno.writeFile(
      to,
      bad && i === 5 ? new Uint8Array([0xff, 0xd8, 0xff, 0]) : Deno.readFileSync(IMAGE_FIXTURES + src[i % 4]),
    );
  }
  return dir;
}

test("pipeline: released batches are reused and every batch keeps its own bytes", async () => {
  // one folder with a corrupt file: reuse must also hold for batches patched with a borrowed good sample
  {
    const bad = true;
    const dir = await folder(bad);
    try {
      const ds = await openImageDataset(dir, "train");
      const spec: ImageTransformSpec = { imgSize: 20, chans: 3, augment: "deit" };
      const run = async (release: boolean) => {
        const pipe = await openImagePipeline(ds, spec, { workers: 2, prefetch: 2, skipBad: true });
        const loader = pipe.loader(new Batcher(pipe, { batchSize: 4, seed: 3, augment: true }));
        const copies: Float32Array[] = [], arrays: Float32Array[] = [];
        for (let k = 0; k < 6; k++) {
          const b = await loader.next();
          copies.push(b.x.slice());
          arrays.push(b.x);
          if (release) loader.release(b);
        }
        pipe.close();
        return { copies, arrays };
      };
      const plain = await run(false), reused = await run(true);
      for (let k = 0; k < 6; k++) {
        assert.ok(same(plain.copies[k], reused.copies[k]), `bad=${bad}: batch ${k}`);
      }
      assert.equal(new Set(plain.arrays).size, 6, "without release every batch has its own array");
      assert.ok(new Set(reused.arrays).size < 6, "released arrays come back as later batches' x");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});
