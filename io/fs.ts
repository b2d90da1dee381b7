// Small file-system helpers shared by the loaders, checkpoints and the runner.

/** Whether `path` exists (file, directory or anything else `stat` can see). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Writes `data` to `path` (created or replaced) and flushes it to the disk; a failure (a full disk, a
 * missing directory, no permission) is an Error whose message starts with the path.
 */
export async function writeFileSynced(path: string, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(path, { write: true, create: true, truncate: true });
    for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
    await file.syncData();
  } catch (e) {
    throw new Error(`${path}: cannot write (${(e as Error).message})`, { cause: e });
  } finally {
    file?.close();
  }
}

/** Flushes a directory's entries (new, renamed or removed files) to the disk; best effort. */
export async function syncDir(path: string): Promise<void> {
  try {
    const d = await Deno.open(path, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch {
    // some file systems refuse to sync a directory; the rename itself is still atomic
  }
}
