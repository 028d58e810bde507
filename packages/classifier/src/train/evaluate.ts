// Inference over a loader: class probabilities for every image, then the classification report.
import { tensor, noGrad, type Tensor } from '@foliar/tensor';
import { Progress } from '@foliar/report';
import type { DataLoader } from '../data/loader.js';
import type { LabeledItem } from '../data/layouts.js';
import { classificationReport, type ClassificationReport } from '../metrics/report.js';
import type { Classifier } from './model.js';

/** Row-wise softmax of N x C logits, in f64 (stable: max subtracted). */
export function softmaxRows(logits: ArrayLike<number>, numClasses: number): Float32Array {
  const n = logits.length / numClasses;
  const out = new Float32Array(logits.length);
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    for (let c = 0; c < numClasses; c++) max = Math.max(max, logits[i * numClasses + c]!);
    let sum = 0;
    const e = new Float64Array(numClasses);
    for (let c = 0; c < numClasses; c++) sum += e[c] = Math.exp(logits[i * numClasses + c]! - max);
    for (let c = 0; c < numClasses; c++) out[i * numClasses + c] = e[c]! / sum;
  }
  return out;
}

/** Logits of one batch of CHW images, in eval mode without gradients; read back to the host. */
export async function logitsOf(model: Classifier, images: Float32Array, n: number, height: number, width: number): Promise<Float32Array> {
  const x = tensor(images, { shape: [n, 3, height, width] });
  let y: Tensor | null = null;
  try {
    y = noGrad(() => model.forward(x));
    return (await y.data()) as Float32Array;
  } finally {
    x.dispose();
    y?.dispose();
  }
}

export interface Predictions {
  /** N x C probabilities, row-major. */
  probs: Float32Array;
  labels: Int32Array;
  /** Dataset index of each row. */
  indices: Int32Array;
  seconds: number;
}

/** Runs the model (switched to eval mode, then restored) over every batch of `loader`. */
export async function predictLoader(model: Classifier, loader: DataLoader, numClasses: number, opts: { label?: string; progress?: boolean } = {}): Promise<Predictions> {
  const wasTraining = model.training;
  model.eval();
  const t0 = performance.now();
  const n = loader.dataset.length;
  const probs = new Float32Array(n * numClasses);
  const labels = new Int32Array(n);
  const indices = new Int32Array(n);
  const bar = opts.progress === false ? null : new Progress({ total: n, label: opts.label ?? 'eval', unit: 'img/s' });
  let k = 0;
  try {
    for await (const b of loader.epoch(0)) {
      const logits = await logitsOf(model, b.images, b.size, b.height, b.width);
      if (logits.length !== b.size * numClasses) throw new Error(`model returned ${logits.length} logits for ${b.size} images x ${numClasses} classes`);
      probs.set(softmaxRows(logits, numClasses), k * numClasses);
      labels.set(b.labels, k);
      indices.set(b.indices, k);
      k += b.size;
      bar?.update(k);
    }
  } finally {
    bar?.stop();
    model.train(wasTraining);
  }
  return { probs: probs.subarray(0, k * numClasses), labels: labels.subarray(0, k), indices: indices.subarray(0, k), seconds: (performance.now() - t0) / 1000 };
}

export interface Evaluation extends Predictions {
  report: ClassificationReport;
}

export async function evaluate(model: Classifier, loader: DataLoader, classNames: readonly string[], opts: { label?: string; progress?: boolean } = {}): Promise<Evaluation> {
  const p = await predictLoader(model, loader, classNames.length, opts);
  return { ...p, report: classificationReport(p.labels, p.probs, classNames) };
}

/** An evaluation whose rows are tied to the dataset items they scored. */
export interface ItemEvaluation extends Evaluation {
  /** Item id of each row (aligned with `labels` and the rows of `probs`). */
  ids: string[];
  /** Item path of each row. */
  paths: string[];
}

/**
 * Ties each row of `ev` to its item: `items` must be the list the loader's dataset was opened
 * on (rows carry dataset indices, so the loader's order does not matter).
 */
export function withItems(ev: Evaluation, items: readonly LabeledItem[]): ItemEvaluation {
  const ids: string[] = [], paths: string[] = [];
  ev.indices.forEach((idx, row) => {
    const it = items[idx];
    if (!it) throw new Error(`evaluation row ${row} has dataset index ${idx}, outside the ${items.length} items given`);
    if (it.label !== ev.labels[row]) throw new Error(`evaluation row ${row}: label ${ev.labels[row]} differs from item "${it.id}"'s ${it.label}: not the items the loader was built on`);
    ids.push(it.id);
    paths.push(it.path);
  });
  return { ...ev, ids, paths };
}
