/**
 * Videos: clips decoded by `ffmpeg` (video files) or from folders of frames, VideoMAE's list files and
 * SSv2's label JSON, VideoMAE's temporal sampling (SSv2 segments, Kinetics dense windows, test-time
 * clips × crops), clip transforms consistent across frames, and moving Fashion-MNIST — a built-in video
 * dataset whose classes are motions, generated from Fashion-MNIST images.
 *
 * ```ts
 * import { data } from "./mod.ts";
 *
 * const split = await data.loadFashionMnist(data.DEFAULT_DATA_DIR, "train");
 * const clips = data.video.movingFashionSamples(split, { frames: 8, seed: 0 });
 * const batcher = new data.Batcher(clips, { batchSize: 16, seed: 0, augment: true });
 * const { x, labels } = batcher.next(); // x: [16, 1, 8, 28, 28], labels: motion classes 0..7
 * ```
 *
 * @module
 */

export {
  averageViews,
  type Box,
  clipCache,
  type ClipOptions,
  clipSize,
  IMAGENET_MEAN,
  IMAGENET_STD,
  randAugmentFrames,
  randomResizedBox,
  shortSideSize,
  videoSamples,
  videoViewSamples,
  type ViewSamples,
  writeClip,
} from "./clips.ts";
export { LruCache } from "../cache.ts";
export {
  clearProbeCache,
  decodeFrameFolder,
  decodeVideo,
  FRAME_EXTENSIONS,
  frameCount,
  type Frames,
  listFrameFiles,
  MAX_DECODED_BYTES,
  probeVideo,
  VideoError,
  videoToolRuns,
} from "./decode.ts";
export {
  parseSsv2,
  parseVideoList,
  readSsv2,
  readVideoList,
  ssv2Template,
  type VideoEntry,
} from "./labels.ts";
export {
  denseTestIndices,
  denseTrainIndices,
  ssv2TestIndices,
  ssv2TrainIndices,
  testViews,
  type View,
} from "./sampling.ts";
export {
  drawTrajectory,
  MOTION_CLASSES,
  movingFashionSamples,
  type MovingOptions,
  type MovingSamples,
  renderClip,
  type Trajectory,
} from "./moving_fmnist.ts";
export {
  MOVING_TEST_SEED,
  type VideoDataKind,
  videoDataKind,
  videoEntries,
  videoSplit,
  type VideoSplitOptions,
} from "./dataset.ts";
