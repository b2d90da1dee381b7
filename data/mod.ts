/**
 * Datasets and the one batcher: Fashion-MNIST (the bundled subset or the full set) as images or as
 * point clouds, ModelNet40 / ScanObjectNN point-cloud readers, videos (`video`: ffmpeg decoding,
 * VideoMAE / SSv2 lists, moving Fashion-MNIST), a synthetic sequence task, and the
 * seeded, resumable Batcher that feeds a Trainer from any of them.
 *
 * ```ts
 * import { data } from "./mod.ts";
 *
 * const split = await data.loadFashionMnist(data.DEFAULT_DATA_DIR, "train");
 * const batcher = new data.Batcher(data.imageSamples(split), { batchSize: 64, seed: 0, augment: true });
 * const { x, labels } = batcher.next(); // x: [64, 1, 28, 28] normalised, labels: [64]
 * ```
 *
 * @module
 */

export {
  type Batch,
  Batcher,
  type BatcherOptions,
  type BatcherState,
  type EvalBatch,
  type Samples,
} from "./batcher.ts";
export {
  CLASSES,
  DEFAULT_DATA_DIR,
  type FashionMnist,
  firstSamples,
  type ImageSampleOptions,
  type ImageSamples,
  imageSamples,
  loadFashionMnist,
  type Split,
  SYSTEM_DATA_DIR,
} from "./fashion_mnist.ts";
export {
  fashionPointSet,
  fashionPointSource,
  loadModelNet,
  loadPointH5,
  pointSamples,
  type PointSet,
  type PointSource,
  scaleAndTranslate,
} from "./point_data.ts";
export {
  detectPointFiles,
  farthestPoints,
  loadPointFiles,
  type PointFileKind,
  type PointFiles,
  poolPoints,
  resampledPointSamples,
  type ResampleOptions,
} from "./point_files.ts";
export { batchOf, type SyntheticBatch, syntheticTask } from "./synthetic.ts";
/**
 * Real images: JPEG/PNG decoding with Pillow's pixels, timm's eval and train transforms, ImageFolder /
 * CIFAR / IDX datasets behind one `openImageDataset`, and the parallel worker pipeline (`openImagePipeline`)
 * that feeds a Batcher with prefetch.
 */
export * as image from "./image/mod.ts";
/**
 * Videos: ffmpeg and frame-folder decoding, VideoMAE list files and SSv2 labels, VideoMAE's clip
 * sampling and test views, and moving Fashion-MNIST (motion classes from the bundled images).
 */
export * as video from "./video/mod.ts";
