/**
 * Real images: JPEG/PNG decoding with Pillow's pixels, timm's eval transform with Pillow's bicubic resize,
 * and the ImageFolder / CIFAR-10 / CIFAR-100 readers with a format detector for `--data DIR`.
 *
 * ```ts
 * import { decodeImage, evalTransform, listImageFolder } from "./data/image/mod.ts";
 *
 * const split = await listImageFolder("DIR", "val");
 * const file = split.files[0];
 * const img = await decodeImage(await Deno.readFile(`${split.root}/${file}`), file);
 * const x = evalTransform(img, { imgSize: 224 }); // [3, 224, 224] float32, normalized
 * ```
 *
 * @module
 */

export {
  type DecodedImage,
  decodeImage,
  decodeImageSync,
  ImageDecodeError,
  initImageDecoders,
  MAX_PIXELS,
} from "./decode.ts";
export {
  crop,
  evalTransform,
  type EvalTransformOptions,
  IMAGENET_MEAN,
  IMAGENET_STD,
  normalizeToChw,
  resizeBicubic,
  resizeCenterCrop,
  shorterSideSize,
  type Window,
} from "./transforms.ts";
export { IMAGE_EXTENSIONS, type ImageFolderSplit, listImageFolder } from "./image_folder.ts";
export {
  CIFAR_FILES,
  CIFAR_SIZE,
  type CifarData,
  cifarImage,
  type CifarKind,
  type CifarSplit,
  readCifarFolder,
  readCifarTarGz,
} from "./cifar.ts";
export { MAX_TAR_BYTES, readTar, readTarGz, type TarEntry } from "./tar.ts";
export { type DetectedDataset, detectImageDataset } from "./detect.ts";
export {
  datasetSize,
  firstImages,
  type ImageDataset,
  type ImageItems,
  type ImageSplit,
  itemName,
  openImageDataset,
  readItem,
} from "./dataset.ts";
export {
  grayToRgb,
  IMAGE_AUGMENTS,
  type ImageAugment,
  type ImageTransformSpec,
  normalizationOf,
  sampleSizeOf,
  transformSample,
} from "./sample_transform.ts";
export {
  ImagePipeline,
  type ImagePipelineOptions,
  openImagePipeline,
  PrefetchLoader,
  type WorkerJob,
  type WorkerReply,
} from "./pipeline.ts";
export { type EvalSplit, evalSplit, type EvalSplitOptions } from "./dump.ts";
