// Classification report as a JSON-ready object and as Markdown text.
import { classificationMetrics, type ProbabilityMatrix } from './classification.js';

export interface ClassReportRow {
  name: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
  predicted: number;
  auc: number | null;
}

export interface ClassificationReport {
  classNames: string[];
  numSamples: number;
  accuracy: number;
  /** Macro (unweighted) means; `auc` is the mean of defined per-class AUCs. */
  macro: { precision: number; recall: number; f1: number; auc: number | null };
  /** Support-weighted means. */
  weighted: { precision: number; recall: number; f1: number };
  logLoss: number;
  perClass: ClassReportRow[];
  /** matrix[t][p]: true class t (rows) predicted as p (columns). */
  confusion: { labels: string[]; matrix: number[][] };
}

/** Compute a report from integer labels and N x C probabilities; `classNames` gives C. */
export function classificationReport(labels: ArrayLike<number>, probs: ProbabilityMatrix, classNames: readonly string[]): ClassificationReport {
  const m = classificationMetrics(labels, probs, classNames.length);
  const perClass = m.perClass.map((c, i) => ({ name: classNames[i], ...c }));
  const weighted = (key: 'precision' | 'recall' | 'f1') => perClass.reduce((a, c) => a + c[key] * c.support, 0) / m.numSamples;
  return {
    classNames: [...classNames],
    numSamples: m.numSamples,
    accuracy: m.accuracy,
    macro: { ...m.macro, auc: m.meanAuc },
    weighted: { precision: weighted('precision'), recall: weighted('recall'), f1: weighted('f1') },
    logLoss: m.logLoss,
    perClass,
    confusion: { labels: [...classNames], matrix: m.confusion },
  };
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

/** Markdown: a per-class table (with macro/weighted rows) and the confusion matrix. */
export function reportMarkdown(report: ClassificationReport, options: { digits?: number; title?: string } = {}): string {
  const d = options.digits ?? 4;
  const f = (x: number | null) => (x === null ? '–' : x.toFixed(d));
  const out: string[] = [];
  if (options.title) out.push(`### ${cell(options.title)}`, '');
  out.push(`Samples: ${report.numSamples} · accuracy: ${f(report.accuracy)} · macro F1: ${f(report.macro.f1)} · mean AUC: ${f(report.macro.auc)} · log-loss: ${f(report.logLoss)}`, '');
  out.push('| class | precision | recall | F1 | AUC | support | predicted |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of report.perClass) out.push(`| ${cell(r.name)} | ${f(r.precision)} | ${f(r.recall)} | ${f(r.f1)} | ${f(r.auc)} | ${r.support} | ${r.predicted} |`);
  out.push(`| **macro avg** | ${f(report.macro.precision)} | ${f(report.macro.recall)} | ${f(report.macro.f1)} | ${f(report.macro.auc)} | ${report.numSamples} | |`);
  out.push(`| **weighted avg** | ${f(report.weighted.precision)} | ${f(report.weighted.recall)} | ${f(report.weighted.f1)} | | ${report.numSamples} | |`);
  out.push('', 'Confusion matrix (rows: true class, columns: predicted):', '');
  const names = report.confusion.labels.map(cell);
  out.push(`| true \\ predicted | ${names.join(' | ')} |`, `| --- |${names.map(() => ' ---: |').join('')}`);
  report.confusion.matrix.forEach((row, t) => out.push(`| ${names[t]} | ${row.join(' | ')} |`));
  return out.join('\n') + '\n';
}
