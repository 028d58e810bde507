/**
 * What the generator gates measure with: a classifier's class probabilities and penultimate (avgpool)
 * features for in-memory RGB images, and L2 distances between sets of such features.
 *
 * Distance used by the gates: the mean nearest-neighbour L2 distance between feature sets. No Fréchet
 * distance: with 16-91 images per set in 512 dimensions the covariances are singular, and on a PCA
 * projection (k ≤ n−1 dims) its small-sample bias depends on n and k, so values of sets of different
 * sizes could not be compared. The nearest-neighbour mean needs no covariance and reads in feature units.
 */
import * as ft from '@foliar/tensor';
import type { Tensor } from '@foliar/tensor';
import { Linear } from '@foliar/nn';
import { ResNet, Rng, evalTransform, normalizeToChw, softmaxRows, type Classifier, type ResNetFeatures, type RgbImage } from '@foliar/classifier';

export type { RgbImage } from '@foliar/classifier';

/** Probabilities and features of the same images, row i for image i. */
export interface ImageScores {
  /** N × C, row-major. */
  probabilities: Float32Array;
  /** N × dim, row-major. */
  features: Float32Array;
}

/** A classifier seen as a measuring instrument for images. */
export interface ImageScorer {
  classNames: string[];
  /** Width of a feature row. */
  dim: number;
  /** N × C class probabilities. */
  probabilities(images: RgbImage[]): Promise<Float32Array>;
  /** N × dim penultimate features. */
  features(images: RgbImage[]): Promise<Float32Array>;
  /** Both from one forward pass (optional; `scoreImages` falls back to the two calls). */
  score?(images: RgbImage[]): Promise<ImageScores>;
}

/** Probabilities and features, in one pass when the scorer offers it. */
export async function scoreImages(scorer: ImageScorer, images: RgbImage[]): Promise<ImageScores> {
  if (scorer.score) return scorer.score(images);
  return { probabilities: await scorer.probabilities(images), features: await scorer.features(images) };
}

export interface ClassifierScorerOptions {
  classNames: readonly string[];
  /** The classifier's input side (its training config's imageSize). */
  imageSize: number;
  /** Images per forward pass (default 32). */
  batchSize?: number;
}

/** The Linear head whose input is the penultimate feature vector (ResNet and TinyResNet call it `fc`). */
function headOf(model: Classifier): Linear {
  const fc = (model as Classifier & { fc?: unknown }).fc;
  if (!(fc instanceof Linear)) throw new Error('classifierScorer: the model has no Linear `fc` head (ResNet or TinyResNet expected)');
  return fc;
}

/**
 * Logits and penultimate features of one batch. ResNet hands its avgpool output back through
 * `forward(x, features)`; other classifiers (TinyResNet has no such argument) have the input of their
 * `fc` head captured for the duration of the call.
 */
function forwardWithFeatures(model: Classifier, head: Linear, x: Tensor): { logits: Tensor; features: Tensor } {
  if (model instanceof ResNet) {
    const f: ResNetFeatures = {};
    const logits = model.forward(x, f);
    // layer1 and the unflattened avgpool are freed by the caller's tidy
    return { logits, features: f.avgpool!.flatten(1) };
  }
  let captured: Tensor | null = null;
  const ownForward = Object.prototype.hasOwnProperty.call(head, 'forward');
  const original = head.forward;
  head.forward = (h: Tensor): Tensor => {
    // an alias outlives the model's own tidy(), which frees its intermediates, the head's input among them
    captured = h.alias();
    return original.call(head, h);
  };
  let logits: Tensor;
  try {
    logits = model.forward(x);
  } finally {
    if (ownForward) head.forward = original;
    else delete (head as { forward?: unknown }).forward;
  }
  if (!captured) throw new Error('classifierScorer: the model did not call its fc head');
  return { logits, features: captured };
}

/**
 * Scores images with a trained classifier exactly as evaluation feeds it: `evalTransform(imageSize)`
 * (shorter side to imageSize, centre crop), ImageNet normalization, eval mode (restored afterwards), no
 * gradients, in batches. Features are the head's input (ResNet: avgpool, 512 values).
 */
export function classifierScorer(model: Classifier, opts: ClassifierScorerOptions): ImageScorer {
  const head = headOf(model);
  const C = head.outFeatures, D = head.inFeatures, S = opts.imageSize;
  if (opts.classNames.length !== C) throw new Error(`classifierScorer: ${opts.classNames.length} class names for a model with ${C} outputs`);
  if (!Number.isInteger(S) || S < 1) throw new RangeError(`classifierScorer: imageSize must be a positive integer, got ${S}`);
  const bs = opts.batchSize ?? 32;
  if (!Number.isInteger(bs) || bs < 1) throw new RangeError(`classifierScorer: batchSize must be a positive integer, got ${bs}`);
  const prepare = evalTransform(S);
  const noRandomness = new Rng(0); // evalTransform draws nothing
  const backend = head.weight.backend;

  async function score(images: RgbImage[]): Promise<ImageScores> {
    const n = images.length;
    const probabilities = new Float32Array(n * C), features = new Float32Array(n * D);
    const wasTraining = model.training;
    model.eval();
    try {
      for (let start = 0; start < n; start += bs) {
        const chunk = images.slice(start, start + bs);
        const per = 3 * S * S;
        const x = new Float32Array(chunk.length * per);
        chunk.forEach((img, k) => normalizeToChw(prepare(img, noRandomness), x, k * per));
        const input = ft.tensor(x, { shape: [chunk.length, 3, S, S], backend });
        let out: { logits: Tensor; features: Tensor } | null = null;
        try {
          out = ft.noGrad(() => ft.tidy(() => forwardWithFeatures(model, head, input)));
          probabilities.set(softmaxRows(await out.logits.dataF32(), C), start * C);
          features.set(await out.features.dataF32(), start * D);
        } finally {
          input.dispose();
          out?.logits.dispose();
          out?.features.dispose();
        }
      }
    } finally {
      model.train(wasTraining);
    }
    return { probabilities, features };
  }

  return {
    classNames: [...opts.classNames],
    dim: D,
    score,
    probabilities: async (images) => (await score(images)).probabilities,
    features: async (images) => (await score(images)).features,
  };
}

// ---------------------------------------------------------------- predictions

/** Index of the largest probability of each row (the first one on ties, as argmax does). */
export function predictedClasses(probabilities: ArrayLike<number>, numClasses: number): Int32Array {
  const n = probabilities.length / numClasses;
  if (!Number.isInteger(n)) throw new RangeError(`predictedClasses: ${probabilities.length} values are not rows of ${numClasses}`);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < numClasses; c++) if (probabilities[i * numClasses + c]! > probabilities[i * numClasses + best]!) best = c;
    out[i] = best;
  }
  return out;
}

/** Share of predictions equal to `cls` (0 for no predictions). */
export function classShare(predicted: ArrayLike<number>, cls: number): number {
  if (predicted.length === 0) return 0;
  let k = 0;
  for (let i = 0; i < predicted.length; i++) if (predicted[i] === cls) k++;
  return k / predicted.length;
}

/** Column `cls` of an N × C probability matrix. */
export function classColumn(probabilities: ArrayLike<number>, numClasses: number, cls: number): number[] {
  const n = probabilities.length / numClasses;
  return Array.from({ length: n }, (_, i) => probabilities[i * numClasses + cls]!);
}

/** Index of `name` in the scorer's classes, or a clear error. */
export function classIndex(scorer: ImageScorer, name: string): number {
  const i = scorer.classNames.indexOf(name);
  if (i < 0) throw new Error(`class "${name}" is not one of the scorer's classes (${scorer.classNames.join(', ')})`);
  return i;
}

// ---------------------------------------------------------------- distances

function checkRows(what: string, x: ArrayLike<number>, n: number, dim: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${what}: need at least one row, got ${n}`);
  if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`${what}: dim must be a positive integer, got ${dim}`);
  if (x.length !== n * dim) throw new RangeError(`${what}: ${x.length} values for ${n} rows of ${dim}`);
}

function rowDistance(a: ArrayLike<number>, i: number, b: ArrayLike<number>, j: number, dim: number): number {
  let s = 0;
  for (let k = 0; k < dim; k++) {
    const d = a[i * dim + k]! - b[j * dim + k]!;
    s += d * d;
  }
  return Math.sqrt(s);
}

/** For each row of `a`, the L2 distance to its nearest row of `b`. */
export function nearestNeighbourDistances(a: ArrayLike<number>, na: number, b: ArrayLike<number>, nb: number, dim: number): Float64Array {
  checkRows('nearestNeighbourDistances (a)', a, na, dim);
  checkRows('nearestNeighbourDistances (b)', b, nb, dim);
  const out = new Float64Array(na);
  for (let i = 0; i < na; i++) {
    let best = Infinity;
    for (let j = 0; j < nb; j++) best = Math.min(best, rowDistance(a, i, b, j, dim));
    out[i] = best;
  }
  return out;
}

/** Mean over the rows of `a` of the L2 distance to the nearest row of `b` (not symmetric). */
export function meanNearestNeighbourDistance(a: ArrayLike<number>, na: number, b: ArrayLike<number>, nb: number, dim: number): number {
  return mean(nearestNeighbourDistances(a, na, b, nb, dim));
}

/** Mean L2 distance between row i of `a` and row i of `b`. */
export function pairedDistance(a: ArrayLike<number>, b: ArrayLike<number>, n: number, dim: number): number {
  checkRows('pairedDistance (a)', a, n, dim);
  checkRows('pairedDistance (b)', b, n, dim);
  let s = 0;
  for (let i = 0; i < n; i++) s += rowDistance(a, i, b, i, dim);
  return s / n;
}

export function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return xs.length ? s / xs.length : NaN;
}
