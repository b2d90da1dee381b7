import { assert, assertRejectsMsg, test } from "../testing.ts"; import { gzipSync } from "fflate"; import { encodeIdx, encodeIdxGz, MAX_IDX_BYTES, readIdx } from "../../data/fashion_mnist.ts";
test("IDX .gz: a decompression bomb stops at what the header's dims allow", async () => {
  const dir = await Deno.makeTempDir({ prefix: "idx-bomb-" });
  try {
    // header says [2, 28, 28] (1,568 bytes) but 60 MB of pixels follow: ~60 kB of gzip
    const hdr = encodeIdx([2, 28, 28], new Uint8Array(2 * 28 * 28));
    const body = new Uint8Array(60_000_000);
    body.set(hdr);
    const p = `${dir}/bomb-idx3-ubyte.gz`;
    await Deno.writeFile(p, gzipSync(body, { level: 6 }));
    const t0 = performance.now();
    await assertRejectsMsg(() => readIdx(p, 3), p, "inflates to more than", "refusing it");
    assert(performance.now() - t0 < 1500, `${performance.now() - t0} ms`);
    // a trailer claiming more than MAX_IDX_BYTES is refused before inflating
    const q = `${dir}/huge-idx1-ubyte.gz`;
    const hugeGz = encodeIdxGz([4], new Uint8Array(4));
    new DataView(hugeGz.buffer).setUint32(hugeGz.length - 4, MAX_IDX_BYTES + 1, true);
    await Deno.writeFile(q, hugeGz);
    await assertRejectsMsg(() => readIdx(q, 1), q, "corrupt gzip", `claims ${MAX_IDX_BYTES + 1}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
