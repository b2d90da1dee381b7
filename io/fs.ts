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
