// A small reader for (ustar / GNU / pax) tar archives held in memory, enough for datasets shipped as
// .tar.gz (CIFAR). Only regular files are returned; every header is checksummed and every size bounded by
// the archive, so a corrupt archive fails with a message instead of reading past its end.

import { gunzipChecked } from "../fashion_mnist.ts";

/** Largest .tar.gz we inflate in memory (CIFAR-10's tar is 185 MB, CIFAR-100's 169 MB). */
export const MAX_TAR_BYTES = 1 << 30;

/** One regular file of an archive: its path and a view of its bytes. */
export interface TarEntry {
  /** Path inside the archive (pax / GNU long names applied, "./" dropped). */
  name: string;
  /** The file's bytes (a view into the archive). */
  data: Uint8Array;
}

const ascii = (b: Uint8Array) => new TextDecoder().decode(b).replace(/\0[\s\S]*$/, "");

function octal(b: Uint8Array, what: string, archive: string): number {
  if (b[0] & 0x80) throw new Error(`${archive}: corrupt tar (${what} in base-256 form is not supported)`);
  const s = ascii(b).trim();
  if (s !== "" && !/^[0-7]+$/.test(s)) {
    throw new Error(`${archive}: corrupt tar (${what} '${s}' is not octal)`);
  }
  return s === "" ? 0 : parseInt(s, 8);
}

/** Lists the regular files of an uncompressed tar archive (views into `tar`, no copies). */
export function readTar(tar: Uint8Array, archive: string): TarEntry[] {
  const entries: TarEntry[] = [];
  let off = 0, longName: string | undefined;
  while (off + 512 <= tar.length) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) return entries; // end-of-archive block
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
    if (sum !== octal(h.subarray(148, 156), "checksum", archive)) {
      throw new Error(`${archive}: corrupt tar (bad header checksum at byte ${off})`);
    }
    const size = octal(h.subarray(124, 136), "size", archive);
    const type = String.fromCharCode(h[156] || 0x30);
    const start = off + 512;
    if (start + size > tar.length) {
      throw new Error(`${archive}: truncated tar (an entry of ${size} bytes at byte ${off} passes the end)`);
    }
    const data = tar.subarray(start, start + size);
    const prefix = ascii(h.subarray(345, 500));
    let name = longName ?? (prefix ? `${prefix}/` : "") + ascii(h.subarray(0, 100));
    longName = undefined;
    if (type === "L") longName = ascii(data); // GNU long name for the next entry
    else if (type === "x") {
      const m = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(new TextDecoder().decode(data));
      if (m) longName = m[1];
    } else if (type === "0" || type === "7") {
      name = name.replace(/^\.\//, "");
      entries.push({ name, data });
    }
    off = start + Math.ceil(size / 512) * 512;
  }
  if (off === tar.length) return entries; // some writers omit the end blocks
  throw new Error(`${archive}: truncated tar (ends inside a header at byte ${off})`);
}

/** Reads a .tar.gz file: gunzip (CRC-checked, at most MAX_TAR_BYTES) then readTar. */
export async function readTarGz(path: string): Promise<TarEntry[]> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as Error).message})`);
  }
  return readTar(gunzipChecked(bytes, path, () => MAX_TAR_BYTES), path);
}
