import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { classificationMetrics, rocAuc, confusionMatrix, argmaxRows, classificationReport, reportMarkdown } from '../../packages/classifier/src/metrics/index.js';

const close = (a: number | null, b: number, tol = 1e-12, what = '') => {
  assert.ok(a !== null && Math.abs(a - b) <= tol, `${what}: expected ${b}, got ${a}`);
};

// Hand-worked example (see comments for the arithmetic).
const labels = [0, 0, 1, 1, 2, 2];
const probs = [
  [0.7, 0.2, 0.1], // -> 0
  [0.3, 0.4, 0.3], // -> 1
  [0.2, 0.5, 0.3], // -> 1
  [0.6, 0.3, 0.1], // -> 0
  [0.1, 0.1, 0.8], // -> 2
  [0.2, 0.5, 0.3], // -> 1
];

test('confusion, accuracy, precision/recall/F1 on a hand-worked example', () => {
  const m = classificationMetrics(labels, probs);
  assert.equal(m.confusion, [[1, 1, 0], [1, 1, 0], [0, 1, 1]]);
  close(m.accuracy, 0.5);
  [0.5, 0.5, 0.5].forEach((r, c) => close(m.perClass[c].recall, r, 1e-12, `recall ${c}`));
  [0.5, 1 / 3, 1].forEach((p, c) => close(m.perClass[c].precision, p, 1e-12, `precision ${c}`));
  [0.5, 0.4, 2 / 3].forEach((f, c) => close(m.perClass[c].f1, f, 1e-12, `f1 ${c}`));
  assert.equal(m.perClass.map((c) => c.support), [2, 2, 2]);
  assert.equal(m.perClass.map((c) => c.predicted), [2, 3, 1]);
  close(m.macro.recall, 0.5);
  close(m.macro.precision, (0.5 + 1 / 3 + 1) / 3);
  close(m.macro.f1, (0.5 + 0.4 + 2 / 3) / 3);
  const ll = -(Math.log(0.7) + Math.log(0.3) + Math.log(0.5) + Math.log(0.3) + Math.log(0.8) + Math.log(0.3)) / 6;
  close(m.logLoss, ll, 1e-12, 'logLoss');
});

test('one-vs-rest AUC with ties (Mann-Whitney, ties count 1/2)', () => {
  const m = classificationMetrics(labels, probs);
  // class 0: positives 0.7, 0.3 vs negatives 0.2, 0.6, 0.1, 0.2 -> (4 + 3) / 8
  close(m.perClass[0].auc, 7 / 8, 1e-12, 'auc0');
  // class 1: positives 0.5, 0.3 vs 0.2, 0.4, 0.1, 0.5 -> (3 + 0.5 tie) + 2 = 5.5 / 8
  close(m.perClass[1].auc, 5.5 / 8, 1e-12, 'auc1');
  // class 2: positives 0.8, 0.3 vs 0.1, 0.3, 0.3, 0.1 -> 4 + (1 + .5 + .5 + 1) = 7 / 8
  close(m.perClass[2].auc, 7 / 8, 1e-12, 'auc2');
  close(m.meanAuc, (7 / 8 + 5.5 / 8 + 7 / 8) / 3);
  // all scores tied -> 0.5
  close(rocAuc([0.3, 0.3, 0.3, 0.3], [1, 0, 1, 0]), 0.5);
});

test('rocAuc equals brute-force pair counting on random scores with many ties', () => {
  let s = 12345;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296);
  for (let trial = 0; trial < 20; trial++) {
    const n = 5 + Math.floor(rand() * 60);
    const scores = Array.from({ length: n }, () => Math.floor(rand() * 5) / 4);
    const pos = Array.from({ length: n }, () => rand() < 0.4);
    if (!pos.some(Boolean) || pos.every(Boolean)) continue;
    let num = 0, den = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      if (!pos[i] || pos[j]) continue;
      den++;
      num += scores[i] > scores[j] ? 1 : scores[i] === scores[j] ? 0.5 : 0;
    }
    close(rocAuc(scores, pos), num / den, 1e-12, `trial ${trial}`);
  }
});

test('perfect and inverted classifiers', () => {
  const y = [0, 1, 1, 0, 1];
  const perfect = y.map((t) => (t === 1 ? [0.1, 0.9] : [0.8, 0.2]));
  const p = classificationMetrics(y, perfect);
  close(p.accuracy, 1);
  close(p.meanAuc, 1);
  close(p.macro.f1, 1);
  const inverted = perfect.map(([a, b]) => [b, a]);
  const q = classificationMetrics(y, inverted);
  close(q.accuracy, 0);
  close(q.perClass[0].auc, 0);
  close(q.perClass[1].auc, 0);
  close(q.macro.f1, 0);
});

test('a class with no predictions and a class with no samples', () => {
  // class 2 is never predicted; class 3 has no samples
  const y = [0, 1, 2, 2];
  const pr = [[0.6, 0.1, 0.2, 0.1], [0.1, 0.6, 0.2, 0.1], [0.5, 0.1, 0.3, 0.1], [0.1, 0.5, 0.3, 0.1]];
  const m = classificationMetrics(y, pr);
  assert.is(m.perClass[2].predicted, 0);
  assert.is(m.perClass[2].precision, 0);
  assert.is(m.perClass[2].recall, 0);
  assert.is(m.perClass[2].f1, 0);
  // class 2 scores: positives 0.3, 0.3 vs negatives 0.2, 0.2 -> AUC 1 even though never argmax
  close(m.perClass[2].auc, 1);
  assert.is(m.perClass[3].support, 0);
  assert.is(m.perClass[3].auc, null);
  // mean AUC over the 3 defined classes: class0 pos .6 vs .1,.5,.1 -> 1; class1 pos .6 vs .1,.1,.5 -> 1
  close(m.meanAuc, 1);
  close(m.accuracy, 0.5);
});

test('flat Float32Array input, argmax ties and validation errors', () => {
  const flat = new Float32Array([0.5, 0.5, 0.2, 0.8]);
  assert.equal([...argmaxRows(flat, 2)], [0, 1]);
  const m = classificationMetrics([0, 1], flat, 2);
  close(m.accuracy, 1);
  assert.throws(() => classificationMetrics([0, 1], new Float32Array(3), 2), /do not form 2 rows/);
  assert.throws(() => classificationMetrics([0, 5], flat, 2), /label 5 at sample 1/);
  assert.throws(() => classificationMetrics([0, 1], [[0.5, 0.5], [0.2]]), /row 1 has 1 values/);
  assert.throws(() => classificationMetrics([0, 1], [0.5, NaN, 0.2, 0.8], 2), /non-finite score NaN at sample 0, class 1/);
  assert.equal(confusionMatrix([1, 1, 0], [1, 0, 0], 2), [[1, 0], [1, 1]]);
});

test('classificationReport JSON and Markdown', () => {
  const names = ['healthy', 'rust|x', 'scab'];
  const r = classificationReport(labels, probs, names);
  assert.is(r.numSamples, 6);
  assert.equal(r.perClass.map((c) => c.name), names);
  close(r.macro.auc, 0.8125);
  close(r.weighted.f1, (0.5 + 0.4 + 2 / 3) / 3); // equal supports -> weighted = macro
  assert.equal(JSON.parse(JSON.stringify(r)).confusion.matrix, [[1, 1, 0], [1, 1, 0], [0, 1, 1]]);
  const md = reportMarkdown(r, { digits: 3, title: 'val' });
  assert.ok(md.includes('| healthy | 0.500 | 0.500 | 0.500 | 0.875 | 2 | 2 |'), md);
  assert.ok(md.includes('rust\\|x'), 'pipe in class name escaped');
  assert.ok(md.includes('| scab | 0 | 1 | 1 |'), md);
  assert.ok(md.includes('**macro avg** | 0.611 | 0.500 | 0.522 | 0.813'), md);
  // every table row has the same number of cells as its header
  for (const block of md.split('\n\n')) {
    const rows = block.split('\n').filter((l) => l.startsWith('|'));
    if (rows.length === 0) continue;
    const cells = (l: string) => l.replace(/\\\|/g, '').split('|').length;
    rows.forEach((l) => assert.is(cells(l), cells(rows[0]), l));
  }
});

test.run();
