// Reads tests/fixtures/images/reference.safetensors (U8 tensors written by gen_images.py with Pillow). A tiny
// reader of its own: the fixture uses only U8, and the tests must not depend on io/'s dtype list.

/** One reference tensor: [H, W, C] uint8. */
export interface RefImage {
  shape: number[];
  data: Uint8Array;
}

/** What gen_images.py recorded about one fixture file. */
export interface RefCase {
  file: string;
  channels: number;
  pil_mode: string;
  no_decode_ref?: boolean;
  color_type?: number;
  bit_depth?: number;
}

/** Directory of the image fixtures. */
export const IMAGE_FIXTURES = new URL("./fixtures/images/", import.meta.url).pathname;

/** All tensors and the case list of the reference file. */
export function loadImageReference(): { tensors: Map<string, RefImage>; cases: RefCase[] } {
  const bytes = Deno.readFileSync(IMAGE_FIXTURES + "reference.safetensors");
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const base = 8 + n;
  const tensors = new Map<string, RefImage>();
  for (const [name, v] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { dtype, shape, data_offsets: [b, e] } = v as {
      dtype: string;
      shape: number[];
      data_offsets: number[];
    };
    if (dtype !== "U8") throw new Error(`reference ${name}: dtype ${dtype}`);
    tensors.set(name, { shape, data: bytes.subarray(base + b, base + e) });
  }
  return { tensors, cases: JSON.parse(header.__metadata__.cases) };
}
