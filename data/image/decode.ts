// JPEG and PNG decoding with Pillow's pixels. Pillow decodes JPEG with libjpeg-turbo, so we use a WASM build
// of the same code (@jsquash/jpeg: Squoosh's MozJPEG decoder, libjpeg-turbo's decompressor with its default
// islow IDCT and fancy upsampling): bit-identical to Pillow on every mode we test, and 2-4x faster than the
// pure-JS jpeg-js (which differs by up to 40 levels on 4:2:0 because it upsamples chroma differently).
// PNG uses @jsquash/png (the Rust `png` crate in WASM), ~3x faster than fast-png; PNG is lossless, so the
// only Pillow-specific parts are the conversions below, which we do ourselves from the IHDR header:
// - gray (color types 0, 4) stays one channel; everything else becomes RGB with alpha dropped (Pillow's
//   convert("RGB"), the palette looked up, tRNS ignored);
// - 16-bit samples keep their high byte (Pillow's ";16B" unpackers), except 16-bit gray without alpha,
//   which Pillow opens as mode I and whose convert("L") clips to 255 instead.

import initMozjpeg from "@jsquash/jpeg/codec/dec/mozjpeg_dec.js";
import initPng, {
  decode as pngDecode,
  decode_rgba16 as pngDecode16,
} from "@jsquash/png/codec/pkg/squoosh_png.js";
import { crc32 } from "../../io/inflate.ts";

/** A decoded image: row-major, interleaved channels (1 = gray, 3 = RGB), 8 bits per sample. */
export interface DecodedImage {
  /** Columns. */
  width: number;
  /** Rows. */
  height: number;
  /** 1 (gray) or 3 (RGB). */
  channels: 1 | 3;
  /** height * width * channels bytes. */
  data: Uint8Array;
}

/** A file that cannot be decoded; the message names the file and says why in one line. */
export class ImageDecodeError extends Error {
  /** `file` names the image (as the caller passed it); `reason` is the one-line cause. */
  constructor(readonly file: string, readonly reason: string) {
    super(`${file}: ${reason}`);
    this.name = "ImageDecodeError";
  }
}

/** Images larger than this (in pixels) are refused before decoding: a corrupt header must not exhaust memory. */
export const MAX_PIXELS = 1 << 28;

interface JpegModule {
  decode(
    data: Uint8Array,
    preserveOrientation: boolean,
  ): { width: number; height: number; data: Uint8ClampedArray };
}

let jpegModule: JpegModule | undefined;
let pngReady = false;
// libjpeg reports warnings and fatal errors as text on "stderr"; we collect them instead of printing.
let jpegMessages: string[] = [];

/** Loads the WASM decoders once (idempotent); decodeImageSync needs it, decodeImage calls it. */
export async function initImageDecoders(): Promise<void> {
  if (!jpegModule) {
    jpegModule = await (initMozjpeg as unknown as (o: object) => Promise<JpegModule>)({
      noInitialRun: true,
      print: (m: string) => jpegMessages.push(m),
      printErr: (m: string) => jpegMessages.push(m),
    });
  }
  if (!pngReady) {
    await initPng();
    pngReady = true;
  }
}

/** Decodes a JPEG or PNG (by its signature, not its name) as Pillow + torchvision's loader would. */
export async function decodeImage(bytes: Uint8Array, name: string): Promise<DecodedImage> {
  await initImageDecoders();
  return decodeImageSync(bytes, name);
}

/** decodeImage without the await, for tight loops; initImageDecoders must have finished first. */
export function decodeImageSync(bytes: Uint8Array, name: string): DecodedImage {
  if (!jpegModule || !pngReady) throw new Error("decodeImageSync: call initImageDecoders() first");
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    return decodeJpeg(bytes, name);
  }
  if (bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return decodePng(bytes, name);
  throw new ImageDecodeError(name, "not a JPEG or PNG file (unrecognised signature)");
}

// ---------------------------------------------------------------------------------------------- JPEG

function decodeJpeg(bytes: Uint8Array, name: string): DecodedImage {
  const { components, width, height } = jpegFrame(bytes, name);
  if (components === 4) {
    throw new ImageDecodeError(
      name,
      "CMYK/YCCK JPEG is not supported; convert it to RGB (e.g. Pillow's convert)",
    );
  }
  if (components !== 1 && components !== 3) {
    throw new ImageDecodeError(name, `JPEG with ${components} components is not supported`);
  }
  if (width * height > MAX_PIXELS) throw new ImageDecodeError(name, `image too large (${width}x${height})`);
  jpegMessages = [];
  let out;
  try {
    out = jpegModule!.decode(bytes, false);
  } catch {
    out = null; // libjpeg's error_exit ends in exit(); the reason is in jpegMessages
  }
  if (!out) throw new ImageDecodeError(name, `corrupt JPEG (${jpegMessages.at(-1) ?? "decoder failed"})`);
  // libjpeg pads a truncated file with gray and only warns; Pillow refuses it ("image file is truncated").
  if (jpegMessages.some((m) => m.includes("Premature end of JPEG file"))) {
    throw new ImageDecodeError(name, "truncated JPEG (premature end of file)");
  }
  return fromRgba(out.data, out.width, out.height, components === 1 ? 1 : 3);
}

/** Reads the frame header (SOFn): number of components and size. */
function jpegFrame(b: Uint8Array, name: string): { components: number; width: number; height: number } {
  let i = 2;
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff) throw new ImageDecodeError(name, `corrupt JPEG (no marker at byte ${i})`);
    const marker = b[i + 1];
    if (marker === 0xff) { // fill byte
      i++;
      continue;
    }
    const len = (b[i + 2] << 8) | b[i + 3];
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isSof) {
      if (i + 10 > b.length) break;
      const height = (b[i + 5] << 8) | b[i + 6];
      const width = (b[i + 7] << 8) | b[i + 8];
      if (width === 0 || height === 0) throw new ImageDecodeError(name, "JPEG with zero width or height");
      return { components: b[i + 9], width, height };
    }
    if (marker === 0xda || marker === 0xd9) break; // scan or end before any frame header
    i += 2 + len;
  }
  throw new ImageDecodeError(name, "truncated or corrupt JPEG (no frame header)");
}

// ----------------------------------------------------------------------------------------------- PNG

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function decodePng(bytes: Uint8Array, name: string): DecodedImage {
  if (bytes.length < 33 || String.fromCharCode(...bytes.subarray(12, 16)) !== "IHDR") {
    throw new ImageDecodeError(name, "corrupt PNG (no IHDR chunk)");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const width = view.getUint32(16), height = view.getUint32(20);
  const depth = bytes[24], colorType = bytes[25];
  if (width === 0 || height === 0) throw new ImageDecodeError(name, "PNG with zero width or height");
  if (width * height > MAX_PIXELS) throw new ImageDecodeError(name, `image too large (${width}x${height})`);
  checkPngChunks(bytes, name);
  const gray = colorType === 0 || colorType === 4;
  try {
    if (depth === 16 && colorType === 0) {
      // Pillow: mode I, convert("L") clips (values above 255 become 255, not >> 8).
      const img = pngDecode16(bytes);
      const out = new Uint8Array(width * height);
      for (let p = 0; p < out.length; p++) out[p] = Math.min(img.data[p * 4], 255);
      img.free();
      return { width, height, channels: 1, data: out };
    }
    const img = pngDecode(bytes);
    return fromRgba(img.data as Uint8ClampedArray, img.width, img.height, gray ? 1 : 3);
  } catch (e) {
    throw new ImageDecodeError(
      name,
      `corrupt or truncated PNG (${String((e as Error).message ?? e).split("\n")[0]})`,
    );
  }
}

/**
 * Walks the chunks and checks each CRC, as Pillow does ("broken PNG file"); the Rust decoder does not, and
 * a flipped byte inside IDAT can otherwise still inflate to (wrong) pixels. Also finds truncation early.
 */
function checkPngChunks(b: Uint8Array, name: string): void {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let i = 8;
  while (i + 12 <= b.length) {
    const len = view.getUint32(i);
    if (i + 12 + len > b.length) break;
    const type = String.fromCharCode(b[i + 4], b[i + 5], b[i + 6], b[i + 7]);
    if (crc32(b.subarray(i + 4, i + 8 + len)) !== view.getUint32(i + 8 + len)) {
      throw new ImageDecodeError(name, `corrupt PNG (bad CRC in chunk ${type} at byte ${i})`);
    }
    if (type === "IEND") return;
    i += 12 + len;
  }
  throw new ImageDecodeError(name, "truncated PNG (no IEND chunk)");
}

/** Keeps the first `channels` of each RGBA pixel (gray decoders replicate gray into R, G and B). */
function fromRgba(
  rgba: Uint8ClampedArray | Uint8Array,
  width: number,
  height: number,
  channels: 1 | 3,
): DecodedImage {
  const n = width * height;
  if (rgba.length !== n * 4) {
    throw new Error(`decoder returned ${rgba.length} bytes for ${width}x${height} RGBA`);
  }
  const out = new Uint8Array(n * channels);
  if (channels === 1) {
    for (let p = 0; p < n; p++) out[p] = rgba[p * 4];
  } else {
    for (let p = 0, q = 0; p < n * 4; p += 4, q += 3) {
      out[q] = rgba[p];
      out[q + 1] = rgba[p + 1];
      out[q + 2] = rgba[p + 2];
    }
  }
  return { width, height, channels, data: out };
}
