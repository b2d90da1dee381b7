// Accuracy over evaluation batches. Test samples that are several views of one video (multi-clip ×
// multi-crop testing, data/video/clips.ts ViewSamples) are scored per video: the logits of a video's
// views are averaged first, as VideoMAE's final test does.

import type { Samples } from "../data/batcher.ts";
import { averageViews } from "../data/video/clips.ts";
import { countTopK } from "./loop.ts";

/** Counts top-k hits batch by batch (one k or several); per video when the samples are views. */
export class AccuracyCounter {
  private readonly hits: number[];
  private readonly views: number;
  private readonly scores?: Float32Array;
  private rows = 0;

  /** For the evaluation batches of `samples` (in order), `classes` logits per row, top-k for each k. */
  constructor(
    private readonly samples: Samples,
    private readonly classes: number,
    private readonly ks = [1],
  ) {
    this.hits = ks.map(() => 0);
    this.views = (samples as { views?: number }).views ?? 1;
    if (this.views > 1) this.scores = new Float32Array(samples.n * classes);
  }

  /** Adds a batch: its logits [rows, classes] and labels, of which the first `valid` rows are real. */
  add(logits: ArrayLike<number>, labels: ArrayLike<number>, valid: number): void {
    if (this.scores) {
      for (let i = 0; i < valid * this.classes; i++) this.scores[this.rows * this.classes + i] = logits[i];
      this.rows += valid;
      return;
    }
    this.ks.forEach((k, j) => this.hits[j] += countTopK(logits, this.classes, labels, valid, k));
  }

  /** Scored items: videos when the samples are views, else samples. */
  get n(): number {
    return this.samples.n / this.views;
  }

  /** The accuracy for each k (over every sample or video of the split). */
  accuracies(): number[] {
    if (!this.scores) return this.hits.map((h) => h / this.samples.n);
    if (this.rows !== this.samples.n) {
      throw new Error(`AccuracyCounter: ${this.rows} of ${this.samples.n} view rows were added`);
    }
    const V = this.views, n = this.n;
    const avg = averageViews(this.scores, this.classes, V);
    const labels = Array.from({ length: n }, (_, v) => this.samples.labels[v * V]);
    return this.ks.map((k) => countTopK(avg, this.classes, labels, n, k) / n);
  }
}
