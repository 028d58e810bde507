/**
 * Statistics over seeds: the Student-t quantile against printed tables and closed forms, means and
 * 95% intervals against numbers computed by hand, paired differences, and the per-arm metrics.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tQuantile975, summarize, pairedDifference, armMetrics } from '../../packages/classifier/src/metrics/index.js';

const close = (a: number | null | undefined, b: number, tol: number, what: string) =>
  assert.ok(a !== null && a !== undefined && Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

test('tQuantile975 matches the t table to 1e-3 for df 1..30 and the closed forms', () => {
  // two-sided 95% critical values (Student's t table, df = 1..30)
  const table = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
  ];
  table.forEach((t, i) => close(tQuantile975(i + 1), t, 1e-3, `df=${i + 1}`));
  close(tQuantile975(40), 2.021, 1e-3, 'df=40');
  close(tQuantile975(60), 2.000, 1e-3, 'df=60');
  close(tQuantile975(120), 1.980, 1e-3, 'df=120');
  // closed forms: Cauchy (df 1) tan(0.475π), df 2: (2p-1)/sqrt(2p(1-p)) with p = 0.975
  close(tQuantile975(1), Math.tan(0.475 * Math.PI), 1e-9, 'df=1 closed form');
  close(tQuantile975(2), 0.95 / Math.sqrt(2 * 0.975 * 0.025), 1e-9, 'df=2 closed form');
  close(tQuantile975(1e9), 1.959964, 1e-5, 'large df → normal');
  close(tQuantile975(Infinity), 1.959964, 1e-6, 'df=∞');
  // monotone decreasing in df, fractional df in between
  const t25 = tQuantile975(2.5);
  assert.ok(t25 < tQuantile975(2) && t25 > tQuantile975(3), `df=2.5 gives ${t25}`);
  assert.throws(() => tQuantile975(0), /degrees of freedom/);
  assert.throws(() => tQuantile975(NaN), /degrees of freedom/);
});

test('summarize: mean and t-interval by hand; nulls left out; too few values give no interval', () => {
  // values 0.5, 0.7, 0.6: mean 0.6, sd = sqrt(((-.1)^2+(.1)^2+0)/2) = 0.1, half = 4.303 * 0.1 / sqrt(3)
  const s = summarize([0.5, null, 0.7, 0.6]);
  close(s.mean, 0.6, 1e-12, 'mean');
  const half = (4.302652729911275 * 0.1) / Math.sqrt(3);
  close(s.ci95![0], 0.6 - half, 1e-9, 'ci low');
  close(s.ci95![1], 0.6 + half, 1e-9, 'ci high');
  assert.equal(s.per_seed, [0.5, null, 0.7, 0.6]);
  // two values 1 and 3: mean 2, sd sqrt(2), half = 12.706 * sqrt(2) / sqrt(2) = 12.706
  const two = summarize([1, 3]);
  close(two.ci95![0], 2 - 12.706204736174707, 1e-9, 'n=2 low');
  close(two.ci95![1], 2 + 12.706204736174707, 1e-9, 'n=2 high');
  // identical values: zero-width interval
  assert.equal(summarize([0.25, 0.25, 0.25]).ci95, [0.25, 0.25]);
  assert.equal(summarize([0.4, null]), { mean: 0.4, ci95: null, per_seed: [0.4, null] });
  assert.equal(summarize([null, null]), { mean: null, ci95: null, per_seed: [null, null] });
  assert.equal(summarize([]), { mean: null, ci95: null, per_seed: [] });
  assert.throws(() => summarize([0.1, NaN]), /value 1/);
});

test('pairedDifference: per-seed a − b, null where either is null, lengths must match', () => {
  const arm = [0.30, 0.50, null, 0.45, 0.40];
  const base = [0.20, 0.35, 0.30, null, 0.30];
  const d = pairedDifference(arm, base);
  // defined differences 0.10, 0.15, 0.10: mean 0.35/3; deviations -1/60, +1/30, -1/60 →
  // squares 1/3600, 4/3600, 1/3600 → variance (6/3600) / 2 = 1/1200
  const per = d.per_seed;
  assert.is(per.length, 5);
  close(per[0], 0.1, 1e-12, 'seed 0');
  close(per[1], 0.15, 1e-12, 'seed 1');
  assert.is(per[2], null);
  assert.is(per[3], null);
  close(per[4], 0.1, 1e-12, 'seed 4');
  close(d.mean, 0.35 / 3, 1e-12, 'mean');
  const half = (4.302652729911275 * Math.sqrt(1 / 1200)) / Math.sqrt(3);
  close(d.ci95![0], 0.35 / 3 - half, 1e-9, 'ci low');
  close(d.ci95![1], 0.35 / 3 + half, 1e-9, 'ci high');
  assert.throws(() => pairedDifference([1, 2], [1]), /2 values vs 1/);
});

test('armMetrics: per-class recall/precision/F1/AUC and overall balanced accuracy and mean AUC', () => {
  const names = ['a', 'b', 'c'];
  // 6 samples; rows are probabilities for a, b, c
  const labels = [0, 0, 1, 1, 1, 2];
  const probs = [
    0.8, 0.1, 0.1, // a → a
    0.3, 0.6, 0.1, // a → b
    0.2, 0.7, 0.1, // b → b
    0.1, 0.8, 0.1, // b → b
    0.5, 0.4, 0.1, // b → a
    0.1, 0.2, 0.7, // c → c
  ];
  const m = armMetrics(labels, probs, names);
  // a: TP 1 of support 2, predicted a twice (rows 0, 4) → recall 0.5, precision 0.5, F1 0.5
  close(m.a!.recall, 0.5, 1e-12, 'a recall');
  close(m.a!.precision, 0.5, 1e-12, 'a precision');
  close(m.a!.f1, 0.5, 1e-12, 'a f1');
  // b: TP 2 of 3, predicted b three times (rows 1, 2, 3) → 2/3 each
  close(m.b!.recall, 2 / 3, 1e-12, 'b recall');
  close(m.b!.precision, 2 / 3, 1e-12, 'b precision');
  // AUC of a: positives score 0.8, 0.3; negatives 0.2, 0.1, 0.5, 0.1 → pairs won: 0.8 beats 4, 0.3 beats 3 → 7/8
  close(m.a!.auc, 7 / 8, 1e-12, 'a auc');
  // AUC of b: positives 0.7, 0.8, 0.4; negatives 0.1, 0.6, 0.2 → 0.7: 3, 0.8: 3, 0.4: 2 → 8/9
  close(m.b!.auc, 8 / 9, 1e-12, 'b auc');
  close(m.c!.auc, 1, 1e-12, 'c auc');
  close(m.overall!.balanced_accuracy, (0.5 + 2 / 3 + 1) / 3, 1e-12, 'balanced accuracy');
  close(m.overall!.mean_auc, (7 / 8 + 8 / 9 + 1) / 3, 1e-12, 'mean auc');
  assert.equal(Object.keys(m).sort(), ['a', 'b', 'c', 'overall']);
  assert.equal(Object.keys(m.a!).sort(), ['auc', 'f1', 'precision', 'recall']);
  assert.equal(Object.keys(m.overall!).sort(), ['balanced_accuracy', 'mean_auc']);

  // a class absent from the test labels: recall, F1 and AUC undefined (null), left out of the means
  const m2 = armMetrics([0, 0, 1], [0.9, 0.05, 0.05, 0.2, 0.7, 0.1, 0.6, 0.3, 0.1], names);
  assert.is(m2.c!.recall, null);
  assert.is(m2.c!.f1, null);
  assert.is(m2.c!.auc, null);
  assert.is(m2.c!.precision, 0);
  // a: 1 of 2 right (row 1 goes to b), b: 0 of 1 (row 2 goes to a)
  close(m2.overall!.balanced_accuracy, (0.5 + 0) / 2, 1e-12, 'balanced accuracy over present classes');
  assert.throws(() => armMetrics([0], [1], ['overall']), /overall/);
});

test.run();
