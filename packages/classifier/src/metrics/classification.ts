// Multi-class classification metrics from labels and predicted probabilities.

/** Probabilities as a flat row-major N*C array or as N rows of C. */
export type ProbabilityMatrix = ArrayLike<number> | readonly (ArrayLike<number>)[];

export interface ClassMetrics {
  /** Recall = per-class accuracy (TP / support); 0 when the class has no samples. */
  recall: number;
  /** TP / predicted count; 0 when the class is never predicted (sklearn's zero_division=0). */
  precision: number;
  /** Harmonic mean of precision and recall; 0 when both are 0. */
  f1: number;
  /** True samples of this class. */
  support: number;
  /** Samples predicted as this class. */
  predicted: number;
  /** One-vs-rest ROC AUC of this class's probability; null when the class has no positives or no negatives. */
  auc: number | null;
}

export interface ClassificationMetrics {
  numSamples: number;
  numClasses: number;
  accuracy: number;
  /** confusion[t][p] = samples of true class t predicted as p (argmax; ties → lowest index). */
  confusion: number[][];
  perClass: ClassMetrics[];
  /** Unweighted means over all classes (recall = balanced accuracy). */
  macro: { recall: number; precision: number; f1: number };
  /** Mean of the defined per-class AUCs (the Kaggle Plant Pathology metric); null if none is defined. */
  meanAuc: number | null;
  /** Mean negative log-probability of the true class (probabilities clipped at 1e-15). */
  logLoss: number;
}

/** Normalize the probability input to a flat Float64Array, validating its shape and values. */
export function flattenProbabilities(probs: ProbabilityMatrix, numSamples: number, numClasses?: number): { flat: Float64Array; numClasses: number } {
  const rows = probs as readonly ArrayLike<number>[];
  const nested = probs.length > 0 && typeof rows[0] === 'object';
  let C: number;
  let flat: Float64Array;
  if (nested) {
    if (rows.length !== numSamples) throw new Error(`metrics: ${rows.length} probability rows for ${numSamples} labels`);
    C = numClasses ?? rows[0].length;
    flat = new Float64Array(numSamples * C);
    rows.forEach((r, i) => {
      if (r.length !== C) throw new Error(`metrics: probability row ${i} has ${r.length} values, expected ${C}`);
      for (let c = 0; c < C; c++) flat[i * C + c] = r[c];
    });
  } else {
    const f = probs as ArrayLike<number>;
    if (numSamples === 0) throw new Error('metrics: no samples');
    C = numClasses ?? f.length / numSamples;
    if (!Number.isInteger(C) || C < 1 || f.length !== numSamples * C) {
      throw new Error(`metrics: ${f.length} probabilities do not form ${numSamples} rows of ${numClasses ?? '?'} classes`);
    }
    flat = Float64Array.from(f);
  }
  for (let i = 0; i < flat.length; i++) {
    if (!Number.isFinite(flat[i])) throw new Error(`metrics: non-finite score ${flat[i]} at sample ${Math.floor(i / C)}, class ${i % C}`);
  }
  return { flat, numClasses: C };
}

/** Row-wise argmax (first maximum wins). */
export function argmaxRows(flat: ArrayLike<number>, numClasses: number): Int32Array {
  const n = flat.length / numClasses;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < numClasses; c++) if (flat[i * numClasses + c] > flat[i * numClasses + best]) best = c;
    out[i] = best;
  }
  return out;
}

export function confusionMatrix(labels: ArrayLike<number>, predictions: ArrayLike<number>, numClasses: number): number[][] {
  if (labels.length !== predictions.length) throw new Error(`confusionMatrix: ${labels.length} labels vs ${predictions.length} predictions`);
  const m = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < labels.length; i++) {
    const t = labels[i], p = predictions[i];
    if (!(Number.isInteger(t) && t >= 0 && t < numClasses)) throw new Error(`confusionMatrix: label ${t} at sample ${i} outside [0, ${numClasses})`);
    if (!(Number.isInteger(p) && p >= 0 && p < numClasses)) throw new Error(`confusionMatrix: prediction ${p} at sample ${i} outside [0, ${numClasses})`);
    m[t][p]++;
  }
  return m;
}

/**
 * Binary ROC AUC via the Mann-Whitney U statistic: the probability that a random positive scores
 * above a random negative, ties counting 1/2 (average ranks). Null if either class is empty.
 */
export function rocAuc(scores: ArrayLike<number>, positive: ArrayLike<boolean | number>): number | null {
  const n = scores.length;
  if (positive.length !== n) throw new Error(`rocAuc: ${n} scores vs ${positive.length} targets`);
  for (let i = 0; i < n; i++) if (Number.isNaN(scores[i])) throw new Error(`rocAuc: NaN score at sample ${i}`);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let nPos = 0;
  let rankSumPos = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]] === scores[order[i]]) j++;
    const avgRank = (i + j) / 2 + 1; // 1-based average rank of the tie group
    for (let k = i; k <= j; k++) if (positive[order[k]]) { nPos++; rankSumPos += avgRank; }
    i = j + 1;
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return null;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/**
 * All metrics for integer `labels` (N) and class scores `probs` (N x C, probabilities or any
 * monotone scores; log-loss assumes probabilities). Predictions are the row argmax.
 */
export function classificationMetrics(labels: ArrayLike<number>, probs: ProbabilityMatrix, numClasses?: number): ClassificationMetrics {
  const N = labels.length;
  const { flat, numClasses: C } = flattenProbabilities(probs, N, numClasses);
  const preds = argmaxRows(flat, C);
  const confusion = confusionMatrix(labels, preds, C);
  let correct = 0;
  for (let c = 0; c < C; c++) correct += confusion[c][c];
  const column = new Float64Array(N);
  const isPos = new Uint8Array(N);
  const perClass: ClassMetrics[] = [];
  for (let c = 0; c < C; c++) {
    const tp = confusion[c][c];
    const support = confusion[c].reduce((a, b) => a + b, 0);
    let predicted = 0;
    for (let t = 0; t < C; t++) predicted += confusion[t][c];
    const recall = support === 0 ? 0 : tp / support;
    const precision = predicted === 0 ? 0 : tp / predicted;
    const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    for (let i = 0; i < N; i++) { column[i] = flat[i * C + c]; isPos[i] = labels[i] === c ? 1 : 0; }
    perClass.push({ recall, precision, f1, support, predicted, auc: rocAuc(column, isPos) });
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const aucs = perClass.map((m) => m.auc).filter((a): a is number => a !== null);
  let logLoss = 0;
  for (let i = 0; i < N; i++) logLoss -= Math.log(Math.min(1, Math.max(1e-15, flat[i * C + labels[i]])));
  return {
    numSamples: N,
    numClasses: C,
    accuracy: correct / N,
    confusion,
    perClass,
    macro: { recall: mean(perClass.map((m) => m.recall)), precision: mean(perClass.map((m) => m.precision)), f1: mean(perClass.map((m) => m.f1)) },
    meanAuc: aucs.length === 0 ? null : mean(aucs),
    logLoss: logLoss / N,
  };
}
