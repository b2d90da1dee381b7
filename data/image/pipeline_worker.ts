// A worker of the image pipeline (data/image/pipeline.ts): reads, decodes and transforms the samples of
// each job it is sent, and posts back their floats (transferred, not copied) and any per-sample errors.

import { initImageDecoders } from "./decode.ts";
import { type ImageItems, readItem } from "./dataset.ts";
import { type ImageTransformSpec, sampleSizeOf, transformSample } from "./sample_transform.ts";
import type { WorkerJob, WorkerReply } from "./pipeline.ts";

interface Port {
  postMessage(m: unknown, transfer?: Transferable[]): void;
  onmessage: ((e: MessageEvent) => void) | null;
}
const port = self as unknown as Port;
const ready = initImageDecoders();
let items: ImageItems | undefined;
let spec: ImageTransformSpec | undefined;

port.onmessage = async (e: MessageEvent) => {
  const m = e.data as
    | { type: "init"; items: ImageItems; spec: ImageTransformSpec }
    | ({ type: "job" } & WorkerJob);
  if (m.type === "init") {
    items = m.items;
    spec = m.spec;
    return;
  }
  await ready;
  const S = sampleSizeOf(spec!), n = m.indices.length;
  // the buffer of an earlier reply when one came back and is big enough (its old floats get overwritten)
  const out = m.buffer && m.buffer.byteLength >= n * S * 4
    ? new Float32Array(m.buffer, 0, n * S)
    : new Float32Array(n * S);
  const errors: [number, string][] = [];
  for (let k = 0; k < n; k++) {
    const i = m.indices[k];
    try {
      // pixel datasets send their images with the job; files are read here
      const img = m.pixels
        ? { ...m.pixels.shape, data: m.pixels.data.subarray(k * m.pixels.per, (k + 1) * m.pixels.per) }
        : readItem(items!, i);
      const seed = Number.isNaN(m.seeds[k]) ? undefined : m.seeds[k];
      // straight into the reply's buffer: no per-sample array, no copy
      transformSample(img, spec!, seed, m.names[k], out.subarray(k * S, (k + 1) * S));
    } catch (err) {
      errors.push([k, (err as Error).message]);
    }
  }
  const reply: WorkerReply = { id: m.id, out, errors };
  port.postMessage(reply, [out.buffer]);
};
