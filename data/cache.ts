// What decoding learns about a file, kept while the file stays the same. Starting ffmpeg or ffprobe costs
// about half a second and inflating a gzipped IDX split a tenth of one, so a process that revisits a video
// in the next epoch, evaluates the views of one video, or trains, evaluates and resumes on one split must
// not decode it again. Entries are keyed by the file's version (path, size, mtime, ctime, inode: any
// rewrite changes the key) plus whatever was asked of it, and evicted least recently used first once a
// byte or entry bound is reached.

/** A least-recently-used map bounded in bytes (as `sizeOf` counts them) and in entries. */
export class LruCache<V> {
  #map = new Map<string, { value: V; bytes: number }>();
  #bytes = 0;

  /**
   * `maxBytes`: the most bytes kept (a larger value is not kept at all); `sizeOf`: a value's bytes;
   * `maxEntries`: the most values kept.
   */
  constructor(
    public maxBytes: number,
    readonly sizeOf: (v: V) => number,
    public maxEntries: number = Infinity,
  ) {}

  /** The value under `key` (now the most recently used), or undefined. */
  get(key: string): V | undefined {
    const e = this.#map.get(key);
    if (!e) return undefined;
    this.#map.delete(key);
    this.#map.set(key, e);
    return e.value;
  }

  /** Keeps `value` under `key`, evicting the least recently used values beyond the bounds. */
  set(key: string, value: V): void {
    this.delete(key);
    const bytes = this.sizeOf(value);
    if (bytes > this.maxBytes || this.maxEntries < 1) return;
    this.#map.set(key, { value, bytes });
    this.#bytes += bytes;
    this.#trim();
  }

  /** Forgets `key`. */
  delete(key: string): void {
    const e = this.#map.get(key);
    if (!e) return;
    this.#map.delete(key);
    this.#bytes -= e.bytes;
  }

  /** Forgets everything. */
  clear(): void {
    this.#map.clear();
    this.#bytes = 0;
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Values held now. */
  get size(): number {
    return this.#map.size;
  }

  #trim(): void {
    for (const [k, e] of this.#map) {
      if (this.#bytes <= this.maxBytes && this.#map.size <= this.maxEntries) break;
      this.#map.delete(k);
      this.#bytes -= e.bytes;
    }
  }
}

/** A key that changes whenever the file at `path` is replaced or rewritten (from `info`, its stat). */
export function fileVersion(path: string, info: Deno.FileInfo): string {
  return [path, info.size, info.mtime?.getTime(), info.ctime?.getTime(), info.ino].join("\u0000");
}
