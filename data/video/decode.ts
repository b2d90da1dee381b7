// Frames of a clip as 8-bit RGB, from (a) a video file (mp4 / webm / ..., as SSv2 and Kinetics ship)
// decoded by Debian's `ffmpeg` as a subprocess that pipes raw rgb24 frames, sized by `ffprobe`, or (b) a
// folder of frame images (VideoMAE's extracted-frames layout, e.g. img_00001.jpg), each decoded the
// same way. Decoding is synchronous (Deno.Command.outputSync), so the Batcher's synchronous write()
// can read a clip when it needs it. Every failure names the file. Each subprocess costs about half a
// second, so a probe is remembered while its file is unchanged (cache.ts), and the frames of a folder are
// decoded by one ffmpeg call.

import { fileVersion, LruCache } from "../cache.ts";

/** Decoded frames: `count` frames of height × width × 3 bytes (rgb24, rows top to bottom). */
export interface Frames {
  /** File or folder the frames came from. */
  path: string;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** Frames, each width·height·3 bytes. */
  frames: Uint8Array[];
}

/** Error for an unreadable or unsuitable video input; the message starts with the path. */
export class VideoError extends Error {
  /** Always "VideoError". */
  override name = "VideoError";
  /** `message` is prefixed with the path it concerns. */
  constructor(readonly path: string, message: string) {
    super(`${path}: ${message}`);
  }
}

/** Image files a frame folder may hold (decoded by ffmpeg). */
export const FRAME_EXTENSIONS: readonly string[] = [".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".webp"];

/** The largest decoded clip accepted (frames·width·height·3 bytes), so a huge video fails clearly. */
export const MAX_DECODED_BYTES = 1 << 30;

let toolRuns = 0;

/** How many ffmpeg / ffprobe subprocesses this module has started (tests check what the caches spare). */
export function videoToolRuns(): number {
  return toolRuns;
}

function run(path: string, tool: string, args: string[]): Uint8Array {
  let r: Deno.CommandOutput;
  toolRuns++;
  try {
    r = new Deno.Command(tool, { args, stdout: "piped", stderr: "piped", stdin: "null" }).outputSync();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new VideoError(path, `cannot decode: '${tool}' is not installed (apt-get install ffmpeg)`);
    }
    throw new VideoError(path, `cannot run ${tool}: ${(e as Error).message}`);
  }
  if (!r.success) {
    const msg = new TextDecoder().decode(r.stderr).trim().split("\n").slice(-2).join(" / ");
    throw new VideoError(path, `${tool} cannot read it (${msg || `exit code ${r.code}`})`);
  }
  return r.stdout;
}

function exists(path: string): Deno.FileInfo {
  try {
    return Deno.statSync(path);
  } catch {
    throw new VideoError(path, "no such file or directory");
  }
}

/** Frame sizes by file version; an entry is a few dozen bytes, so only their number is bounded. */
const probes = new LruCache<{ width: number; height: number }>(Infinity, () => 0, 4096);

/** Forgets every remembered probe (the decoded-clip cache is clips.ts's clipCache). */
export function clearProbeCache(): void {
  probes.clear();
}

/**
 * Width, height and (with `count`, by decoding it: containers' frame counts are unreliable) frame count
 * of a video file's first video stream, by ffprobe. Without `count`, frames is 0.
 */
export function probeVideo(path: string, count = true): { width: number; height: number; frames: number } {
  const info = exists(path);
  if (!info.isFile) throw new VideoError(path, "not a file");
  const key = fileVersion(path, info), known = count ? undefined : probes.get(key);
  if (known) return { ...known, frames: 0 };
  const out = run(path, "ffprobe", [
    ...["-v", "error", "-select_streams", "v:0", ...(count ? ["-count_frames"] : [])],
    ...["-show_entries", `stream=width,height${count ? ",nb_read_frames" : ""}`, "-of", "json", path],
  ]);
  let s: { width?: number; height?: number; nb_read_frames?: string } | undefined;
  try {
    s = JSON.parse(new TextDecoder().decode(out)).streams?.[0];
  } catch {
    throw new VideoError(path, "ffprobe gave unreadable output");
  }
  if (!s) throw new VideoError(path, "no video stream");
  const frames = Number(s.nb_read_frames), width = Number(s.width), height = Number(s.height);
  if (!(width > 0 && height > 0)) throw new VideoError(path, `bad frame size ${s.width}×${s.height}`);
  if (count && !(frames > 0)) throw new VideoError(path, "the video has no frames");
  probes.set(key, { width, height });
  return { width, height, frames: count ? frames : 0 };
}

/** The ffmpeg scale filter for an output size (or none), plus the size frames come out at. */
function scaleArgs(w: number, h: number, size?: { width: number; height: number }): string[] {
  if (!size || (size.width === w && size.height === h)) return [];
  return ["-vf", `scale=${size.width}:${size.height}:flags=bilinear`];
}

function splitFrames(path: string, raw: Uint8Array, width: number, height: number): Uint8Array[] {
  const bytes = width * height * 3;
  if (raw.length === 0 || raw.length % bytes !== 0) {
    throw new VideoError(path, `decoded ${raw.length} bytes, not whole ${width}×${height} rgb24 frames`);
  }
  return Array.from({ length: raw.length / bytes }, (_, i) => raw.subarray(i * bytes, (i + 1) * bytes));
}

/**
 * Decodes every frame of a video file as rgb24, resized to `size` when given (bilinear, by ffmpeg).
 * Throws a VideoError naming the file if it is missing, unreadable, or empty.
 */
export function decodeVideo(path: string, size?: { width: number; height: number }): Frames {
  const p = probeVideo(path, false);
  const width = size?.width ?? p.width, height = size?.height ?? p.height;
  const maxFrames = Math.floor(MAX_DECODED_BYTES / (width * height * 3));
  const raw = run(path, "ffmpeg", [
    ...["-v", "error", "-nostdin", "-i", path, "-frames:v", String(maxFrames)],
    ...scaleArgs(p.width, p.height, size),
    ...["-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
  ]);
  if (raw.length === 0) throw new VideoError(path, "the video has no frames");
  return { path, width, height, frames: splitFrames(path, raw, width, height) };
}

/** The frame images of a folder, in name order (numbers compared as numbers: img_2 before img_10). */
export function listFrameFiles(dir: string): string[] {
  if (!exists(dir).isDirectory) throw new VideoError(dir, "not a directory of frames");
  const names: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (e.isFile && FRAME_EXTENSIONS.some((x) => e.name.toLowerCase().endsWith(x))) names.push(e.name);
  }
  if (!names.length) throw new VideoError(dir, `no frame images (${FRAME_EXTENSIONS.join(", ")})`);
  names.sort(new Intl.Collator("en", { numeric: true }).compare);
  return names.map((n) => `${dir.replace(/\/+$/, "")}/${n}`);
}

/**
 * Decodes frames `indices` of a frame folder (each file once), resized to `size` when given. All
 * frames must have the same size; the error names the first one that differs.
 */
export function decodeFrameFolder(
  dir: string,
  indices: readonly number[],
  size?: { width: number; height: number },
): Frames {
  const files = listFrameFiles(dir);
  const bad = indices.find((i) => !Number.isInteger(i) || i < 0 || i >= files.length);
  if (bad !== undefined) throw new VideoError(dir, `frame ${bad} requested, the folder has ${files.length}`);
  const unique = [...new Set(indices)];
  if (!unique.length) return { path: dir, width: size?.width ?? 0, height: size?.height ?? 0, frames: [] };
  const first = probeVideo(files[unique[0]], false);
  const width = size?.width ?? first.width, height = size?.height ?? first.height;
  const decoded = decodeFrameFiles(files, unique, first, size);
  const at = new Map(unique.map((i, k) => [i, decoded[k]]));
  return { path: dir, width, height, frames: indices.map((i) => at.get(i)!) };
}

/**
 * The frame images files[i] for the distinct indices `unique`, which must all have the size `first`
 * (the error names one that differs), resized to `size` when given: one ffmpeg call for all of them
 * when it succeeds, else one per file.
 */
export function decodeFrameFiles(
  files: readonly string[],
  unique: readonly number[],
  first: { width: number; height: number },
  size?: { width: number; height: number },
): Uint8Array[] {
  return (unique.length > 1 && concatFrames(files, unique, first, size)) ||
    frameByFrame(files, unique, first, size);
}

/**
 * The frames of files[unique] from one ffmpeg call (ffmpeg's concat filter, then the same scale as for
 * one file), or undefined when that fails — a file of another size or an unreadable one: frameByFrame
 * then names it.
 */
function concatFrames(
  files: readonly string[],
  unique: readonly number[],
  first: { width: number; height: number },
  size?: { width: number; height: number },
): Uint8Array[] | undefined {
  const scale = scaleArgs(first.width, first.height, size)[1];
  const graph = unique.map((_, k) => `[${k}:v]`).join("") + `concat=n=${unique.length}:v=1:a=0` +
    (scale ? `,${scale}` : "");
  let raw: Uint8Array;
  try {
    raw = run(files[unique[0]], "ffmpeg", [
      ...["-v", "error", "-nostdin", ...unique.flatMap((i) => ["-i", files[i]])],
      ...["-filter_complex", graph, "-vsync", "passthrough"], // constant frame rate would drop frames
      ...["-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
    ]);
  } catch (e) {
    if (e instanceof VideoError && e.message.includes("is not installed")) throw e;
    return undefined;
  }
  const w = size?.width ?? first.width, h = size?.height ?? first.height;
  if (raw.length !== unique.length * w * h * 3) return undefined; // e.g. an animated image: one by one
  return splitFrames(files[unique[0]], raw, w, h);
}

/** The frames of files[unique], one ffprobe (remembered) and one ffmpeg call per file. */
function frameByFrame(
  files: readonly string[],
  unique: readonly number[],
  first: { width: number; height: number },
  size?: { width: number; height: number },
): Uint8Array[] {
  for (const i of unique) {
    const p = probeVideo(files[i], false);
    if (p.width !== first.width || p.height !== first.height) {
      throw new VideoError(
        files[i],
        `frame is ${p.width}×${p.height}, the folder's first is ${first.width}×${first.height}`,
      );
    }
  }
  const w = size?.width ?? first.width, h = size?.height ?? first.height;
  return unique.map((i) => {
    const raw = run(files[i], "ffmpeg", [
      ...["-v", "error", "-nostdin", "-i", files[i]],
      ...scaleArgs(first.width, first.height, size),
      ...["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
    ]);
    return splitFrames(files[i], raw, w, h)[0];
  });
}

/** Frame count of a video file or a frame folder. */
export function frameCount(path: string): number {
  return exists(path).isDirectory ? listFrameFiles(path).length : probeVideo(path).frames;
}
