// Reads a zip file by offset: the End Of Central Directory (Zip64 too: torch.save writes Zip64 for files
// over 4 GiB), the central directory, and one entry's bytes (or a byte range of a stored entry) at a time.
// Nothing else of the file is read, so a 13 GB consolidated.00.pth costs a few kilobytes to open.
//
// Stored entries (all torch.save writes) are read in place; deflated entries are inflated whole, with
// the output capped at the directory's uncompressed size (and that size at what deflate can produce
// from the compressed bytes), so a decompression bomb stops at its claim. Encrypted entries and other
// compression methods are refused. readWhole checks an entry's CRC32 (a tensor's range of a storage is
// read without one: checking would mean reading the whole storage).

import { CheckpointError } from "./weights.ts";
import { crc32, inflateCapped, InflateLimitError, MAX_DEFLATE_RATIO } from "./inflate.ts";

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  /** Uncompressed size. */
  size: number;
  localHeaderOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;

function u64(dv: DataView, at: number, file: string, what: string): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CheckpointError(file, `${what} ${v} is too large`);
  return Number(v);
}

/** A zip opened for reading by offset. Reads are serialized on one file handle. */
export class ZipReader {
  private readonly byName = new Map<string, ZipEntry>();
  private readonly dataOffsets = new Map<string, number>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly file: Deno.FsFile,
    readonly fileSize: number,
    readonly entries: ZipEntry[],
  ) {
    for (const e of entries) this.byName.set(e.name, e);
  }

  /** Opens `path` and reads its central directory (and nothing else). */
  static async open(path: string): Promise<ZipReader> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (e) {
      throw new CheckpointError(path, `cannot open: ${(e as Error).message}`);
    }
    try {
      const size = (await file.stat()).size;
      const entries = await readDirectory(file, path, size);
      return new ZipReader(path, file, size, entries);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The entry, or a CheckpointError "no entry 'X' in FILE". */
  entry(name: string): ZipEntry {
    const e = this.byName.get(name);
    if (!e) throw new CheckpointError(this.path, `no entry '${name}' in ${this.path}`);
    return e;
  }

  /** Offset of the entry's data in the file (reads and checks its local header once). */
  async dataOffset(name: string): Promise<number> {
    const known = this.dataOffsets.get(name);
    if (known !== undefined) return known;
    const e = this.entry(name);
    checkReadable(e, this.path);
    if (e.localHeaderOffset + 30 > this.fileSize) {
      throw new CheckpointError(
        this.path,
        `entry '${name}': local header at ${e.localHeaderOffset} is past the end of the file (${this.fileSize} bytes): truncated`,
      );
    }
    const h = await this.readAt(e.localHeaderOffset, 30);
    const dv = new DataView(h.buffer, h.byteOffset, h.byteLength);
    if (dv.getUint32(0, true) !== SIG_LOCAL) {
      throw new CheckpointError(
        this.path,
        `entry '${name}': no local file header at offset ${e.localHeaderOffset}`,
      );
    }
    const at = e.localHeaderOffset + 30 + dv.getUint16(26, true) + dv.getUint16(28, true);
    if (at + e.compressedSize > this.fileSize) {
      throw new CheckpointError(
        this.path,
        `entry '${name}': data (${e.compressedSize} bytes at offset ${at}) runs past the end of the file (${this.fileSize} bytes): truncated`,
      );
    }
    this.dataOffsets.set(name, at);
    return at;
  }

  /**
   * The entry's uncompressed bytes, or `length` bytes from `start` of them. A range of a stored entry
   * reads only that range; a deflated entry is inflated whole first.
   */
  async read(name: string, start = 0, length?: number): Promise<Uint8Array> {
    const e = this.entry(name);
    const len = length ?? e.size - start;
    if (start < 0 || len < 0 || start + len > e.size) {
      throw new CheckpointError(
        this.path,
        `entry '${name}': range [${start}, ${start + len}) is outside its ${e.size} bytes`,
      );
    }
    const at = await this.dataOffset(name);
    if (e.method === 0) {
      if (e.compressedSize !== e.size) {
        throw new CheckpointError(
          this.path,
          `entry '${name}': stored entry with sizes ${e.compressedSize} != ${e.size}`,
        );
      }
      return await this.readAt(at + start, len);
    }
    if (e.size > e.compressedSize * MAX_DEFLATE_RATIO + 1024) {
      throw new CheckpointError(
        this.path,
        `entry '${name}': ${e.compressedSize} deflated bytes cannot inflate to the ${e.size} the directory claims: corrupt`,
      );
    }
    const packed = await this.readAt(at, e.compressedSize);
    let out: Uint8Array;
    try {
      out = inflateCapped(packed, "deflate", () => e.size);
    } catch (err) {
      const why = err instanceof InflateLimitError
        ? `${err.message}, more than the directory's size ${e.size}: corrupt`
        : `cannot inflate: ${(err as Error).message}`;
      throw new CheckpointError(this.path, `entry '${name}': ${why}`);
    }
    if (out.length !== e.size) {
      throw new CheckpointError(
        this.path,
        `entry '${name}': inflated to ${out.length} bytes, expected ${e.size}`,
      );
    }
    return out.subarray(start, start + len);
  }

  /**
   * The whole entry, refused without reading when the directory says it is over `maxBytes`, and checked
   * against the directory's CRC32 (for small entries whose corruption would not show otherwise: a
   * pickle, byteorder).
   */
  async readWhole(name: string, maxBytes: number): Promise<Uint8Array> {
    const e = this.entry(name);
    if (e.size > maxBytes) {
      throw new CheckpointError(
        this.path,
        `entry '${name}' is ${e.size} bytes, more than the ${maxBytes} such an entry can be: corrupt or not a checkpoint`,
      );
    }
    const data = await this.read(name);
    const crc = crc32(data);
    if (crc !== e.crc32) {
      throw new CheckpointError(
        this.path,
        `entry '${name}': CRC32 ${hex32(crc)} of its ${data.length} bytes does not match the directory's ${
          hex32(e.crc32)
        }: corrupt`,
      );
    }
    return data;
  }

  /** Reads exactly `length` bytes at `offset` of the file (serialized with other reads). */
  readAt(offset: number, length: number): Promise<Uint8Array> {
    const run = this.queue.then(() => this.readAtNow(offset, length));
    this.queue = run.catch(() => {});
    return run;
  }

  private async readAtNow(offset: number, length: number): Promise<Uint8Array> {
    if (this.closed) throw new CheckpointError(this.path, "read after close()");
    return await readExact(this.file, this.path, offset, length);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.file.close();
  }
}

const hex32 = (v: number) => "0x" + (v >>> 0).toString(16).padStart(8, "0");

async function readExact(
  file: Deno.FsFile,
  path: string,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await file.seek(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < length) {
    const n = await file.read(buf.subarray(got));
    if (n === null) {
      throw new CheckpointError(
        path,
        `unexpected end of file reading ${length} bytes at offset ${offset}: truncated`,
      );
    }
    got += n;
  }
  return buf;
}

function checkReadable(e: ZipEntry, path: string): void {
  if (e.flags & 1) throw new CheckpointError(path, `entry '${e.name}' is encrypted (not supported)`);
  if (e.method !== 0 && e.method !== 8) {
    throw new CheckpointError(
      path,
      `entry '${e.name}' uses compression method ${e.method} (only stored and deflate are supported)`,
    );
  }
}

async function readDirectory(file: Deno.FsFile, path: string, size: number): Promise<ZipEntry[]> {
  if (size < EOCD_SIZE) {
    throw new CheckpointError(
      path,
      `not a zip file (only ${size} bytes): truncated, or not a torch.save file`,
    );
  }
  // The EOCD is the last 22 bytes plus an optional comment of up to 65535 bytes.
  const tailLen = Math.min(size, EOCD_SIZE + MAX_COMMENT);
  const tailStart = size - tailLen;
  const tail = await readExact(file, path, tailStart, tailLen);
  const tv = new DataView(tail.buffer);
  let eocd = -1;
  for (let i = tailLen - EOCD_SIZE; i >= 0; i--) {
    if (tv.getUint32(i, true) === SIG_EOCD && i + EOCD_SIZE + tv.getUint16(i + 20, true) <= tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    const head = tailStart === 0 ? tail.subarray(0, 4) : await readExact(file, path, 0, 4);
    const looksZip = new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true) === SIG_LOCAL;
    throw new CheckpointError(
      path,
      looksZip
        ? "zip End Of Central Directory record missing: the file is truncated"
        : "not a zip file (no End Of Central Directory record): truncated, or not a torch.save file",
    );
  }
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  const eocdAbs = tailStart + eocd;
  let cdEnd = eocdAbs; // the central directory ends where the (Zip64) EOCD records begin

  // Zip64: a locator 20 bytes before the EOCD points at the Zip64 EOCD record.
  if (eocd >= 20 && tv.getUint32(eocd - 20, true) === SIG_ZIP64_LOCATOR) {
    const recAt = u64(tv, eocd - 20 + 8, path, "Zip64 EOCD offset");
    if (recAt + 56 > eocdAbs - 20) {
      throw new CheckpointError(
        path,
        `Zip64 End Of Central Directory record offset ${recAt} is invalid: truncated or corrupt`,
      );
    }
    const rec = await readExact(file, path, recAt, 56);
    const rv = new DataView(rec.buffer);
    if (rv.getUint32(0, true) !== SIG_ZIP64_EOCD) {
      throw new CheckpointError(path, `no Zip64 End Of Central Directory record at offset ${recAt}: corrupt`);
    }
    count = u64(rv, 32, path, "Zip64 entry count");
    cdSize = u64(rv, 40, path, "Zip64 central directory size");
    cdOffset = u64(rv, 48, path, "Zip64 central directory offset");
    cdEnd = recAt;
  } else if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    throw new CheckpointError(
      path,
      "zip needs a Zip64 End Of Central Directory locator, which is missing: corrupt",
    );
  }
  if (cdOffset + cdSize > cdEnd) {
    throw new CheckpointError(
      path,
      `zip central directory (${cdSize} bytes at offset ${cdOffset}) overlaps its end records at ${cdEnd}: truncated or corrupt`,
    );
  }
  const cd = await readExact(file, path, cdOffset, cdSize);
  const dv = new DataView(cd.buffer);
  const dec = new TextDecoder();
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || dv.getUint32(p, true) !== SIG_CENTRAL) {
      throw new CheckpointError(
        path,
        `zip central directory entry ${i} of ${count} is missing or corrupt (offset ${cdOffset + p})`,
      );
    }
    const nameLen = dv.getUint16(p + 28, true), extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    if (p + 46 + nameLen + extraLen + commentLen > cdSize) {
      throw new CheckpointError(path, `zip central directory entry ${i} runs past the directory: corrupt`);
    }
    const name = dec.decode(cd.subarray(p + 46, p + 46 + nameLen));
    const e: ZipEntry = {
      name,
      flags: dv.getUint16(p + 8, true),
      method: dv.getUint16(p + 10, true),
      crc32: dv.getUint32(p + 16, true),
      compressedSize: dv.getUint32(p + 20, true),
      size: dv.getUint32(p + 24, true),
      localHeaderOffset: dv.getUint32(p + 42, true),
    };
    // Zip64 extended information (id 1): only the fields that are 0xFFFFFFFF above, in this order.
    let x = p + 46 + nameLen;
    const xEnd = x + extraLen;
    while (x + 4 <= xEnd) {
      const id = dv.getUint16(x, true), len = dv.getUint16(x + 2, true);
      if (id === 1) {
        let q = x + 4;
        const next = (what: string) => {
          if (q + 8 > x + 4 + len) {
            throw new CheckpointError(path, `entry '${name}': short Zip64 extra field (${what})`);
          }
          const v = u64(dv, q, path, `entry '${name}' ${what}`);
          q += 8;
          return v;
        };
        if (e.size === 0xffffffff) e.size = next("size");
        if (e.compressedSize === 0xffffffff) e.compressedSize = next("compressed size");
        if (e.localHeaderOffset === 0xffffffff) e.localHeaderOffset = next("local header offset");
      }
      x += 4 + len;
    }
    if (e.localHeaderOffset + 30 + e.compressedSize > size) {
      throw new CheckpointError(
        path,
        `entry '${name}' (${e.compressedSize} bytes at offset ${e.localHeaderOffset}) runs past the end of the file (${size} bytes): truncated`,
      );
    }
    entries.push(e);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}
