// Bounded decompression for the readers of compressed inputs (deflated zip entries of a .pth, gzipped
// IDX files): the compressed bytes are pushed through fflate's streaming inflater in small slices and
// inflation stops as soon as the output passes what the format allows, so a decompression bomb costs
// at most one slice's worth of output beyond its cap instead of whatever it claims. Also CRC32.

import { Gunzip, Inflate } from "fflate";

/** Deflate cannot compress better than about 1032:1 (258-byte matches coded in 2 bits). */
export const MAX_DEFLATE_RATIO = 1032;

/** Compressed bytes pushed per step: at most ~16 MB of output (16 kB × 1032) arrive between checks. */
const SLICE = 16 * 1024;

/** Output went past the cap (message says by how much, without the file name). */
export class InflateLimitError extends Error {
  override name = "InflateLimitError";
}

/**
 * Inflates `packed` ("deflate": raw deflate as in zip entries; "gzip": one gzip member). `limit`
 * returns the most output bytes allowed, given the first (up to 1 kB of) output so far, so a header
 * in the data can tighten it (an IDX file's dims); it is asked again after every slice. Throws
 * InflateLimitError as soon as the output exceeds the limit, or fflate's error for corrupt data.
 */
export function inflateCapped(
  packed: Uint8Array,
  format: "deflate" | "gzip",
  limit: (head: Uint8Array) => number,
): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  let head = new Uint8Array(0);
  const ondata = (chunk: Uint8Array) => {
    chunks.push(chunk);
    total += chunk.length;
    if (head.length < 1024) {
      const h = new Uint8Array(Math.min(1024, head.length + chunk.length));
      h.set(head);
      h.set(chunk.subarray(0, h.length - head.length), head.length);
      head = h;
    }
  };
  const stream = format === "gzip" ? new Gunzip(ondata) : new Inflate(ondata);
  for (let at = 0; at < packed.length || at === 0; at += SLICE) {
    const end = Math.min(packed.length, at + SLICE);
    stream.push(packed.subarray(at, end), end >= packed.length);
    const max = limit(head);
    if (total > max) {
      throw new InflateLimitError(
        `inflates to more than ${max} bytes (stopped after ${total} bytes from ${end} of ${packed.length} compressed bytes)`,
      );
    }
    if (end >= packed.length) break;
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) out.set(c, (o += c.length) - c.length);
  return out;
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE 802.3, as zip and gzip use it). */
export function crc32(b: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = crcTable[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
