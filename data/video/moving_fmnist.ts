// Moving Fashion-MNIST: a built-in video dataset that needs nothing installed. Each clip shows one
// garment of the bundled Fashion-MNIST subset (scaled to `object` pixels on a black size×size canvas)
// moving over `frames` frames; the class is the motion, not the garment:
//   0 right, 1 left, 2 down, 3 up, 4 rotate clockwise, 5 rotate counter-clockwise, 6 grow, 7 shrink.
// Every class is the time reverse of another (right ↔ left, cw ↔ ccw, grow ↔ shrink), so a model that
// ignores frame order is at chance between the pairs — as on Something-Something-v2.
// Clips are generated on the fly and deterministically: sample k of a split has class k mod 8, a
// garment and trajectory drawn from a stream seeded by (seed, k). With augmentation (the Batcher's
// rng), the trajectory is redrawn from that rng instead, keeping the garment and the class.

import { Rng } from "../../compiler/core/random.ts";
import { mixSeed, type Samples } from "../batcher.ts";
import { FASHION_MNIST_MEAN, FASHION_MNIST_STD, type FashionMnist } from "../fashion_mnist.ts";

/** The motion classes, by index. */
export const MOTION_CLASSES: readonly string[] = [
  "move right",
  "move left",
  "move down",
  "move up",
  "rotate clockwise",
  "rotate counter-clockwise",
  "grow",
  "shrink",
];

/** Shape of the generated clips. */
export interface MovingOptions {
  /** Frames per clip (default 8). */
  frames?: number;
  /** Canvas side in pixels (default 28). */
  size?: number;
  /** Side of the garment at scale 1, in pixels (default 14; grown it reaches 1.4×). */
  object?: number;
  /** Clips in the split (default: one per image of the split). */
  count?: number;
  /** Seed of the per-sample garments and trajectories. */
  seed: number;
}

/** One clip's trajectory: centre, rotation and scale at the first and the last frame. */
export interface Trajectory {
  /** Garment image index in the split. */
  image: number;
  /** Centre x (pixels) at the first frame. */
  x0: number;
  /** Centre y (pixels, down) at the first frame. */
  y0: number;
  /** Centre x at the last frame. */
  x1: number;
  /** Centre y at the last frame. */
  y1: number;
  /** Rotation (radians, clockwise on screen) at the first frame. */
  a0: number;
  /** Rotation at the last frame. */
  a1: number;
  /** Scale (relative to `object`) at the first frame. */
  s0: number;
  /** Scale at the last frame. */
  s1: number;
}

const uni = (rng: Rng, lo: number, hi: number) => lo + rng.next() * (hi - lo);

/** Draws a trajectory of class `cls` that keeps the garment's centre on the canvas. */
export function drawTrajectory(
  cls: number,
  image: number,
  size: number,
  object: number,
  rng: Rng,
): Trajectory {
  const half = object / 2, lo = half, hi = size - half;
  const t: Trajectory = { image, x0: 0, y0: 0, x1: 0, y1: 0, a0: 0, a1: 0, s0: 1, s1: 1 };
  if (cls < 4) {
    // translation: travel 45–90 % of the free range along the axis, the other coordinate random
    const d = (hi - lo) * uni(rng, 0.45, 0.9), start = uni(rng, lo, hi - d), other = uni(rng, lo, hi);
    const [a, b] = cls % 2 === 0 ? [start, start + d] : [start + d, start];
    if (cls < 2) [t.x0, t.x1, t.y0, t.y1] = [a, b, other, other];
    else [t.x0, t.x1, t.y0, t.y1] = [other, other, a, b];
    return t;
  }
  const c = size / 2, j = Math.max(0, (size - 1.4 * object) / 2);
  t.x0 = t.x1 = c + uni(rng, -j, j);
  t.y0 = t.y1 = c + uni(rng, -j, j);
  if (cls < 6) {
    const turn = uni(rng, Math.PI / 2, Math.PI) * (cls === 4 ? 1 : -1);
    t.a0 = uni(rng, -Math.PI / 4, Math.PI / 4);
    t.a1 = t.a0 + turn;
    return t;
  }
  const small = uni(rng, 0.55, 0.7), big = uni(rng, 1.2, 1.4);
  [t.s0, t.s1] = cls === 6 ? [small, big] : [big, small];
  return t;
}

/**
 * Renders a trajectory of a 28×28 garment into out[offset..] as [frames, size, size] floats, pixels
 * v in 0..255 (background 0) as (v/255 − mean)/std. Bilinear sampling of the inverse transform.
 */
export function renderClip(
  img: Uint8Array,
  imgSide: number,
  t: Trajectory,
  frames: number,
  size: number,
  object: number,
  norm: { mean: number; std: number },
  out: Float32Array,
  offset: number,
): void {
  const px = (x: number, y: number) =>
    x >= 0 && x < imgSide && y >= 0 && y < imgSide ? img[y * imgSide + x] : 0;
  for (let f = 0; f < frames; f++) {
    const u = frames > 1 ? f / (frames - 1) : 0;
    const cx = t.x0 + u * (t.x1 - t.x0), cy = t.y0 + u * (t.y1 - t.y0);
    const a = t.a0 + u * (t.a1 - t.a0), s = (t.s0 + u * (t.s1 - t.s0)) * (object / imgSide);
    const cos = Math.cos(a), sin = Math.sin(a), base = offset + f * size * size;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        // canvas → garment: undo the translation, the (clockwise) rotation and the scale
        const dx = x + 0.5 - cx, dy = y + 0.5 - cy;
        const sx = (cos * dx + sin * dy) / s + imgSide / 2 - 0.5;
        const sy = (-sin * dx + cos * dy) / s + imgSide / 2 - 0.5;
        const x0 = Math.floor(sx), y0 = Math.floor(sy), wx = sx - x0, wy = sy - y0;
        const v = (px(x0, y0) * (1 - wx) + px(x0 + 1, y0) * wx) * (1 - wy) +
          (px(x0, y0 + 1) * (1 - wx) + px(x0 + 1, y0 + 1) * wx) * wy;
        out[base + y * size + x] = (v / 255 - norm.mean) / norm.std;
      }
    }
  }
}

/** Moving Fashion-MNIST samples: clips [1, frames, size, size], 8 motion classes. */
export interface MovingSamples extends Samples {
  /** Frames per clip. */
  frames: number;
  /** Canvas side. */
  size: number;
  /** The trajectory of sample k without augmentation. */
  trajectory(k: number): Trajectory;
}

/** Moving Fashion-MNIST clips from one split (normalised with Fashion-MNIST's mean and std). */
export function movingFashionSamples(data: FashionMnist, opts: MovingOptions): MovingSamples {
  const frames = opts.frames ?? 8, size = opts.size ?? 28, object = opts.object ?? 14;
  const count = opts.count ?? data.n;
  for (const [what, v] of Object.entries({ frames, size, object, count })) {
    if (!Number.isInteger(v) || v < 1) {
      throw new Error(`moving Fashion-MNIST: ${what} must be a positive integer, got ${v}`);
    }
  }
  if (1.4 * object > size) {
    throw new Error(
      `moving Fashion-MNIST: a ${object}-pixel garment grown 1.4× does not fit a ${size}-pixel canvas`,
    );
  }
  if (data.rows !== data.cols || data.n < 1) {
    throw new Error(`moving Fashion-MNIST: need square images, got ${data.rows}×${data.cols}`);
  }
  const side = data.rows, hw = side * side, K = MOTION_CLASSES.length;
  const norm = { mean: FASHION_MNIST_MEAN, std: FASHION_MNIST_STD };
  const fixed = (k: number) => {
    const rng = new Rng(mixSeed(opts.seed, k));
    return drawTrajectory(k % K, rng.int(data.n), size, object, rng);
  };
  return {
    n: count,
    labels: Uint8Array.from({ length: count }, (_, k) => k % K),
    sampleSize: frames * size * size,
    frames,
    size,
    trajectory: fixed,
    write(k, out, offset, rng) {
      let t = fixed(k);
      if (rng) t = drawTrajectory(k % K, t.image, size, object, rng);
      renderClip(
        data.images.subarray(t.image * hw, (t.image + 1) * hw),
        side,
        t,
        frames,
        size,
        object,
        norm,
        out,
        offset,
      );
    },
  };
}
