// Labelled video lists: VideoMAE's list files (one `path label` per line, space-separated, as its
// train.csv / val.csv / test.csv for SSv2 and Kinetics) and Something-Something-v2's own JSON
// (labels.json: template → class id; train.json / validation.json: [{id, template, ...}], the video
// being `<id>.webm`). Errors name the file and the line or entry.

/** One labelled video: a file or a folder of frames, and its class. */
export interface VideoEntry {
  /** Path of the video file or frame folder (relative paths resolved against the list's root). */
  path: string;
  /** Class index. */
  label: number;
}

function join(root: string | undefined, p: string): string {
  if (!root || p.startsWith("/")) return p;
  return `${root.replace(/\/+$/, "")}/${p}`;
}

/**
 * Parses a VideoMAE list file: `path label` per line (the path may contain spaces: the label is the
 * last field; VideoMAE's Kinetics lists may add a frame count before it, which is ignored). Blank lines
 * are skipped. Paths are resolved against `root` when given.
 */
export function parseVideoList(text: string, file: string, root?: string): VideoEntry[] {
  const out: VideoEntry[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.trim();
    if (!t) return;
    const fields = t.split(/\s+/);
    const label = Number(fields[fields.length - 1]);
    if (fields.length < 2 || !Number.isInteger(label) || label < 0) {
      throw new Error(
        `${file}:${i + 1}: expected 'path label' with an integer label ≥ 0, got '${t.slice(0, 80)}'`,
      );
    }
    // VideoMAE's frame lists are `path frames label`: drop a numeric middle field
    const rest = fields.length >= 3 && /^\d+$/.test(fields[fields.length - 2])
      ? fields.slice(0, -2)
      : fields.slice(0, -1);
    out.push({ path: join(root, rest.join(" ")), label });
  });
  if (!out.length) throw new Error(`${file}: the list has no videos`);
  return out;
}

/** Reads a VideoMAE list file (see parseVideoList). */
export async function readVideoList(file: string, root?: string): Promise<VideoEntry[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new Error(`${file}: cannot read the video list (${(e as Error).message})`);
  }
  return parseVideoList(text, file, root);
}

/** SSv2's template text as labels.json keys it: the brackets of "[something]" removed. */
export function ssv2Template(t: string): string {
  return t.replace(/\[/g, "").replace(/\]/g, "");
}

/**
 * Entries of an SSv2 split: `split` is train.json / validation.json ([{id, template, ...}]), `labels`
 * labels.json ({template: "id"}); videos are `<videoDir>/<id>.<ext>` (SSv2 ships .webm).
 */
export function parseSsv2(
  split: unknown,
  labels: unknown,
  files: { split: string; labels: string },
  videoDir: string,
  ext = "webm",
): VideoEntry[] {
  if (typeof labels !== "object" || labels === null || Array.isArray(labels)) {
    throw new Error(`${files.labels}: expected an object of template → class id`);
  }
  const byTemplate = new Map<string, number>();
  for (const [k, v] of Object.entries(labels)) {
    const id = Number(v);
    if (!Number.isInteger(id) || id < 0) {
      throw new Error(`${files.labels}: '${k}' has class id ${JSON.stringify(v)}`);
    }
    byTemplate.set(k, id);
  }
  if (!Array.isArray(split)) throw new Error(`${files.split}: expected a list of {id, template, ...}`);
  return split.map((e, i) => {
    const id = e?.id, template = e?.template;
    if ((typeof id !== "string" && typeof id !== "number") || typeof template !== "string") {
      throw new Error(`${files.split}: entry ${i} lacks a string 'id' or 'template'`);
    }
    const label = byTemplate.get(ssv2Template(template));
    if (label === undefined) {
      throw new Error(
        `${files.split}: entry ${i} (id ${id}): template '${template}' is not in ${files.labels}`,
      );
    }
    return { path: join(videoDir, `${id}.${ext}`), label };
  });
}

/** Reads an SSv2 split and labels.json from disk (see parseSsv2). */
export async function readSsv2(
  splitFile: string,
  labelsFile: string,
  videoDir: string,
  ext = "webm",
): Promise<VideoEntry[]> {
  const json = async (f: string) => {
    try {
      return JSON.parse(await Deno.readTextFile(f));
    } catch (e) {
      throw new Error(`${f}: cannot read the JSON (${(e as Error).message})`);
    }
  };
  return parseSsv2(
    await json(splitFile),
    await json(labelsFile),
    { split: splitFile, labels: labelsFile },
    videoDir,
    ext,
  );
}
