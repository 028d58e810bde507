// Run report: report.json, report.md and PNG charts (confusion matrix, per-class bars, loss and
// accuracy curves), and the per-image test predictions (test-predictions.csv).
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { writeFileAtomic } from '@foliar/tensor';
import { heatmap, barChart, lineChart, encodePng, type LineSeries } from '@foliar/report';
import { reportMarkdown, type ClassificationReport } from '../metrics/report.js';
import type { EpochRecord } from './checkpoint.js';
import type { ItemEvaluation } from './evaluate.js';

export interface RunReport {
  title: string;
  /** Which images were scored, e.g. "test (held-out)". */
  split: string;
  /** Epoch whose weights were evaluated (1-based), when known. */
  epoch?: number;
  report: ClassificationReport;
  history?: EpochRecord[];
  /** Per-step training loss [step, loss], for the loss chart. */
  stepLoss?: [number, number][];
  /** Anything else worth keeping (timing, data description, config). */
  extra?: Record<string, unknown>;
}

export interface WrittenReport {
  json: string;
  markdown: string;
  charts: string[];
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** The per-class table printed at the end of a run (plain text, aligned). */
export function perClassTable(report: ClassificationReport): string {
  const w = Math.max(5, ...report.perClass.map((r) => r.name.length));
  const head = `${'class'.padEnd(w)}  support  accuracy(recall)  precision     F1     AUC`;
  const rows = report.perClass.map((r) =>
    `${r.name.padEnd(w)}  ${String(r.support).padStart(7)}  ${pct(r.recall).padStart(16)}  ${pct(r.precision).padStart(9)}  ${r.f1.toFixed(3).padStart(5)}  ${r.auc === null ? '    –' : r.auc.toFixed(3).padStart(6)}`,
  );
  const foot = `${'all'.padEnd(w)}  ${String(report.numSamples).padStart(7)}  ${pct(report.accuracy).padStart(16)}  ${pct(report.macro.precision).padStart(9)}  ${report.macro.f1.toFixed(3).padStart(5)}  ${report.macro.auc === null ? '    –' : report.macro.auc.toFixed(3).padStart(6)}  (accuracy; macro P/F1; mean AUC)`;
  const names = report.confusion.labels;
  const cw = Math.max(6, ...names.map((n) => n.length));
  const conf = [
    `confusion (rows true, columns predicted):`,
    `${''.padEnd(w)}  ${names.map((n) => n.padStart(cw)).join(' ')}`,
    ...report.confusion.matrix.map((row, i) => `${names[i]!.padEnd(w)}  ${row.map((v) => String(v).padStart(cw)).join(' ')}`),
  ];
  return [head, ...rows, foot, '', ...conf].join('\n');
}

function historyMarkdown(history: EpochRecord[]): string {
  const f = (x: number | null, d = 4) => (x === null || !Number.isFinite(x) ? '–' : x.toFixed(d));
  const out = ['| epoch | lr | train loss | train acc | val loss | val acc | val macro F1 | val mean AUC | img/s | s | live buffers | peak MiB |', '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'];
  for (const h of history) {
    out.push(`| ${h.epoch} | ${h.lr.toExponential(2)} | ${f(h.trainLoss)} | ${f(h.trainAccuracy)} | ${f(h.valLoss)} | ${f(h.valAccuracy)} | ${f(h.valMacroF1)} | ${f(h.valMeanAuc)} | ${h.imagesPerSecond.toFixed(1)} | ${h.seconds.toFixed(0)} | ${h.liveBuffers} | ${(h.peakBytes / 2 ** 20).toFixed(0)} |`);
  }
  return out.join('\n');
}

/** Writes report.json, report.md and the charts into `dir` (created if needed). */
export async function writeRunReport(dir: string, r: RunReport): Promise<WrittenReport> {
  await mkdir(dir, { recursive: true });
  const rep = r.report;
  const charts: string[] = [];
  const png = async (name: string, img: Parameters<typeof encodePng>[0]) => {
    const p = join(dir, name);
    await writeFileAtomic(p, encodePng(img));
    charts.push(p);
  };
  await png('confusion.png', heatmap({
    matrix: rep.confusion.matrix, rowLabels: rep.confusion.labels, colLabels: rep.confusion.labels,
    title: `Confusion matrix (${r.split}), row-normalized`, xLabel: 'predicted', yLabel: 'true', normalize: true,
  }));
  await png('per-class.png', barChart({
    labels: rep.perClass.map((c) => c.name),
    groups: [
      { name: 'accuracy (recall)', values: rep.perClass.map((c) => c.recall) },
      { name: 'precision', values: rep.perClass.map((c) => c.precision) },
      { name: 'F1', values: rep.perClass.map((c) => c.f1) },
      { name: 'ROC AUC', values: rep.perClass.map((c) => c.auc ?? 0) },
    ],
    title: `Per-class metrics (${r.split})`, yMax: 1,
  }));
  const h = r.history ?? [];
  if (h.length > 0) {
    const series: LineSeries[] = [];
    if (r.stepLoss && r.stepLoss.length > 1) {
      const perEpoch = h[0]!.steps || 1;
      series.push({ name: 'train (per step)', points: r.stepLoss.map(([s, l]) => [s / perEpoch, l] as [number, number]) });
    }
    series.push({ name: 'train (epoch mean)', points: h.map((e) => [e.epoch, e.trainLoss] as [number, number]), smoothing: 0 });
    series.push({ name: 'val', points: h.map((e) => [e.epoch, e.valLoss] as [number, number]), smoothing: 0 });
    await png('loss.png', lineChart({ series, title: 'Cross-entropy loss', xLabel: 'epoch', yLabel: 'loss', smoothing: r.stepLoss ? 0.8 : 0 }));
    await png('accuracy.png', lineChart({
      series: [
        { name: 'train', points: h.map((e) => [e.epoch, e.trainAccuracy] as [number, number]) },
        { name: 'val', points: h.map((e) => [e.epoch, e.valAccuracy] as [number, number]) },
        { name: 'val macro F1', points: h.map((e) => [e.epoch, e.valMacroF1] as [number, number]) },
        ...(h.every((e) => e.valMeanAuc !== null) ? [{ name: 'val mean AUC', points: h.map((e) => [e.epoch, e.valMeanAuc!] as [number, number]) }] : []),
      ],
      title: 'Accuracy', xLabel: 'epoch', yLabel: 'accuracy', yRange: [0, 1],
    }));
  }
  const md = [
    `# ${r.title}`,
    '',
    `Evaluated on: **${r.split}**${r.epoch !== undefined ? ` · weights of epoch ${r.epoch}` : ''}`,
    '',
    'Per-class accuracy is the recall of each class. The Kaggle Plant Pathology 2020 metric is the mean of the per-class ROC AUCs (one-vs-rest).',
    '',
    reportMarkdown(rep),
    '',
    ...(h.length ? ['## Training history', '', historyMarkdown(h), ''] : []),
    '## Charts',
    '',
    ...charts.map((c) => `![${c.split('/').pop()}](${c.split('/').pop()})`),
    '',
  ].join('\n');
  const mdPath = join(dir, 'report.md');
  await writeFileAtomic(mdPath, md);
  const jsonPath = join(dir, 'report.json');
  const json = { title: r.title, split: r.split, epoch: r.epoch ?? null, ...rep, history: h, ...(r.extra ? { extra: r.extra } : {}) };
  await writeFileAtomic(jsonPath, JSON.stringify(json, null, 2) + '\n');
  return { json: jsonPath, markdown: mdPath, charts };
}

export const TEST_PREDICTIONS_FILE = 'test-predictions.csv';

const csvField = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
// 9 significant digits identify a float32 exactly, so metrics recomputed from the file match
const prob = (v: number) => String(Number(v.toPrecision(9)));

/**
 * `id,path,label,predicted,p_<class>…`: one row per scored image, labels and predictions as class
 * names (predicted = argmax, first maximum on ties, as the report counts it).
 */
export function testPredictionsCsv(ev: ItemEvaluation, classNames: readonly string[]): string {
  const C = classNames.length;
  if (ev.probs.length !== ev.ids.length * C) throw new Error(`testPredictionsCsv: ${ev.probs.length} probabilities for ${ev.ids.length} rows x ${C} classes`);
  const lines = [['id', 'path', 'label', 'predicted', ...classNames.map((c) => `p_${c}`)].map(csvField).join(',')];
  for (let i = 0; i < ev.ids.length; i++) {
    const row = ev.probs.subarray(i * C, (i + 1) * C);
    let arg = 0;
    for (let c = 1; c < C; c++) if (row[c]! > row[arg]!) arg = c;
    lines.push([csvField(ev.ids[i]!), csvField(ev.paths[i]!), csvField(classNames[ev.labels[i]!]!), csvField(classNames[arg]!), ...Array.from(row, prob)].join(','));
  }
  return lines.join('\n') + '\n';
}

/** Writes `<dir>/test-predictions.csv` atomically (a crash never leaves half a file); returns its path. */
export async function writeTestPredictions(dir: string, ev: ItemEvaluation, classNames: readonly string[]): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, TEST_PREDICTIONS_FILE);
  await writeFileAtomic(path, testPredictionsCsv(ev, classNames));
  return path;
}
