// Video: a VideoMAE-style ViT with a frozen LLM layer (the paper's ViT-LLaMA for video), trained on
// moving Fashion-MNIST — clips generated from the bundled subset whose 8 classes are the motion
// (right/left, down/up, clockwise/counter-clockwise, grow/shrink: frame order matters, as on SSv2) —
// or on videos listed VideoMAE's way (train.csv / val.csv) or SSv2's (labels.json, train.json, ...).
//
//   deno task train-video                                  (moving Fashion-MNIST, llama-tiny's middle layer)
//   deno task train-video --llm none --out out/video-none
//   deno task train-video --data LISTS_DIR --video-root VIDEOS --model small-ssv2 --init videomae.pth \
//     --layer-decay 0.7 --test-clips 2 --test-crops 3
//   deno task train-video --resume out/video
//
// The same flags, outputs and resume as `deno task train`, plus the video flags (--frames, --tubelet,
// --sampling, --stride, --test-clips, --test-crops, --drop-path, --init-values, --layer-decay).

import { train } from "../mod.ts";

await train.trainCommand("video");
