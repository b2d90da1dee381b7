// A minimal PNG encoder for figures: 8-bit grey, RGB or RGBA, no interlace, filter 0 (none) on every
// row, one zlib IDAT (fflate). Enough for the analysis heatmaps; decoders read it as any PNG.

import { zlibSync } from "fflate";
import { crc32 } from "./inflate.ts";

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** PNG colour type by channel count: 1 grey, 3 RGB, 4 RGBA. */
const COLOUR_TYPE: Record<number, number> = { 1: 0, 3: 2, 4: 6 };

/**
 * Encodes 8-bit pixels (row-major, channels interleaved: `width * height * channels` bytes) as a PNG
 * file's bytes. channels: 1 (grey), 3 (RGB) or 4 (RGBA).
 */
export function encodePng(
  width: number,
  height: number,
  channels: 1 | 3 | 4,
  pixels: Uint8Array,
): Uint8Array {
  if (!(Number.isInteger(width) && width > 0 && Number.isInteger(height) && height > 0)) {
    throw new Error(`encodePng: bad size ${width}×${height}`);
  }
  if (COLOUR_TYPE[channels] === undefined) throw new Error(`encodePng: ${channels} channels (1, 3 or 4)`);
  const row = width * channels;
  if (pixels.length !== row * height) {
    throw new Error(`encodePng: ${pixels.length} bytes for ${width}×${height}×${channels} (${row * height})`);
  }
  const raw = new Uint8Array((row + 1) * height); // each row: filter byte 0, then the row
  for (let y = 0; y < height; y++) raw.set(pixels.subarray(y * row, (y + 1) * row), y * (row + 1) + 1);
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr.set([8, COLOUR_TYPE[channels], 0, 0, 0], 8);
  const parts = [
    Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlibSync(raw, { level: 6 })),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
