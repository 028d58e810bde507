/**
 * The study report's tables as plain data (header, cells, tone), built once from a StudyReport and
 * rendered by both report-md.ts and report-html.ts, so the two files can never disagree on a number.
 */
import type { ArmMetrics, ArmReport, ClassMetricName, GateEntry, OverallMetricName, Stat, StudyReport } from './report-types.js';

/** How a cell should stand out: an interval that excludes 0 (up or down), a gate passed or failed. */
export type Tone = 'up' | 'down' | 'pass' | 'fail' | 'muted';

export interface Cell {
  text: string;
  /** Secondary text after the main one (a 95% interval), shown smaller in HTML. */
  sub?: string;
  tone?: Tone;
  /** Extra detail for a hover title (per-seed values). */
  title?: string;
}

export interface Table {
  head: string[];
  /** An optional header row above `head`: labels spanning columns ('' for none). Markdown, which has no spans, prefixes them to the column labels. */
  groups?: { label: string; span: number }[];
  rows: Cell[][];
  /** Indexes of the columns that hold numbers (right-aligned). */
  numeric?: number[];
}

const cell = (text: string, tone?: Tone, title?: string): Cell => ({ text, ...(tone ? { tone } : {}), ...(title ? { title } : {}) });
const DASH = '—';

// ---------------------------------------------------------------- number formatting

export function fmtNum(v: number | null | undefined, digits = 3, signed = false): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
  // tiny nonzero values (a gate's 3e-5) would read as 0.000
  if (v !== 0 && Math.abs(v) < 0.5 * 10 ** -digits) return (signed && v > 0 ? '+' : '') + v.toExponential(1);
  const s = v.toFixed(digits);
  // "-0.000" reads as a signed effect that is not there
  if (Number(s) === 0) return (signed ? '±' : '') + (0).toFixed(digits);
  return signed && v > 0 ? `+${s}` : s;
}

export function fmtShare(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? DASH : `${(v * 100).toFixed(1)}%`;
}

export function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return DASH;
  if (s < 60) return `${s.toFixed(1)} s`;
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.round(s % 60);
  return h ? `${h} h ${String(m).padStart(2, '0')} min` : `${m} min ${String(sec).padStart(2, '0')} s`;
}

/** Column indexes from..to-1. */
const cols = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);

/** True when the interval lies entirely on one side of zero. */
export function excludesZero(stat: Stat | undefined): 'up' | 'down' | null {
  const ci = stat?.ci95;
  if (!ci) return null;
  if (ci[0] > 0) return 'up';
  if (ci[1] < 0) return 'down';
  return null;
}

/** "mean [lo, hi]", with the per-seed values as a title; differences are signed and toned when the interval excludes 0. */
export function statCell(stat: Stat | undefined, diff = false): Cell {
  if (!stat || stat.mean === null) return cell(DASH, 'muted', stat ? perSeedTitle(stat) : undefined);
  const tone = diff ? excludesZero(stat) ?? undefined : undefined;
  const c = cell(fmtNum(stat.mean, 3, diff), tone, perSeedTitle(stat));
  return stat.ci95 ? { ...c, sub: `[${fmtNum(stat.ci95[0], 3, diff)}, ${fmtNum(stat.ci95[1], 3, diff)}]` } : c;
}

function perSeedTitle(stat: Stat): string {
  return `per seed: ${stat.per_seed.map((v) => fmtNum(v)).join(', ')}`;
}

// ---------------------------------------------------------------- endpoints

/** The study's primary endpoints, in table order. */
export interface Endpoint {
  label: string;
  /** The label without the class name, under a column group. */
  short: string;
  /** Key into ArmMetrics: the rare class's name or 'overall'. */
  group: 'rare' | 'overall';
  metric: ClassMetricName | OverallMetricName;
}

export function endpoints(rare: string): Endpoint[] {
  return [
    { label: `${rare} recall`, short: 'recall', group: 'rare', metric: 'recall' },
    { label: `${rare} precision`, short: 'precision', group: 'rare', metric: 'precision' },
    { label: `${rare} F1`, short: 'F1', group: 'rare', metric: 'f1' },
    { label: `${rare} AUC`, short: 'AUC', group: 'rare', metric: 'auc' },
    { label: 'balanced accuracy', short: 'balanced accuracy', group: 'overall', metric: 'balanced_accuracy' },
    { label: 'mean AUC', short: 'mean AUC', group: 'overall', metric: 'mean_auc' },
  ];
}

export function endpointStat(m: ArmMetrics | undefined, rare: string, e: Endpoint): Stat | undefined {
  const group = m?.[e.group === 'rare' ? rare : 'overall'] as Partial<Record<string, Stat>> | undefined;
  return group?.[e.metric];
}

// ---------------------------------------------------------------- tables

export function armsTable(r: StudyReport): Table {
  return {
    head: ['arm', 'what it adds', 'seeds', 'extra training images per seed'],
    rows: r.arms.map((a) => [
      cell(a.name), cell(a.description), cell(a.seeds.join(', ')),
      cell(a.extra_images ? `${a.extra_images.per_seed.join(', ')} ${a.extra_images.class_name}` : DASH, a.extra_images ? undefined : 'muted'),
    ]),
  };
}

/** Endpoint columns grouped under the rare class's name and "overall". */
function endpointHead(rare: string, first: string): Pick<Table, 'head' | 'groups'> {
  const eps = endpoints(rare);
  const n = (g: Endpoint['group']) => eps.filter((e) => e.group === g).length;
  return { head: [first, ...eps.map((e) => e.short)], groups: [{ label: '', span: 1 }, { label: rare, span: n('rare') }, { label: '', span: n('overall') }] };
}

export function comparisonTable(r: StudyReport): Table {
  const eps = endpoints(r.rare_class);
  return {
    ...endpointHead(r.rare_class, 'arm'),
    rows: r.arms.map((a) => [cell(a.name), ...eps.map((e) => statCell(endpointStat(a.metrics, r.rare_class, e)))]),
    numeric: cols(1, eps.length + 1),
  };
}

/** Paired differences vs the baseline or vs the control, for the arms that have them (never the reference itself). */
export function diffTable(r: StudyReport, vs: 'baseline' | 'control'): Table | null {
  const eps = endpoints(r.rare_class);
  const pick = (a: ArmReport) => (vs === 'baseline' ? a.diff_vs_baseline : a.diff_vs_control);
  const arms = r.arms.filter((a) => a.name !== vs && pick(a) && Object.keys(pick(a)!).length);
  if (!arms.length) return null;
  return {
    ...endpointHead(r.rare_class, `arm − ${vs}`),
    rows: arms.map((a) => [cell(a.name), ...eps.map((e) => statCell(endpointStat(pick(a), r.rare_class, e), true))]),
    numeric: cols(1, eps.length + 1),
  };
}

export function perClassTable(r: StudyReport, arm: ArmReport): Table {
  const metrics: ClassMetricName[] = ['recall', 'precision', 'f1', 'auc'];
  const rows = r.class_names.map((c) => [cell(c === r.rare_class ? `${c} (rare)` : c), ...metrics.map((m) => statCell(arm.metrics[c]?.[m]))]);
  const overall = arm.metrics.overall;
  // balanced accuracy is the mean of the classes' recalls, mean AUC the mean of their AUCs: one row
  rows.push([cell('mean over classes'), statCell(overall?.balanced_accuracy), cell(DASH, 'muted'), cell(DASH, 'muted'), statCell(overall?.mean_auc)]);
  return { head: ['class', 'recall', 'precision', 'F1', 'AUC'], rows, numeric: [1, 2, 3, 4] };
}

export function confusionTable(r: StudyReport, arm: ArmReport): Table {
  return {
    head: ['true (rows), predicted (columns)', ...r.class_names],
    rows: arm.confusion.map((row, i) => [cell(r.class_names[i] ?? `class ${i}`), ...row.map((n, j) => cell(String(n), i === j ? undefined : n ? undefined : 'muted'))]),
    numeric: cols(1, r.class_names.length + 1),
  };
}

export function dedupTable(r: StudyReport): Table {
  const d = r.data.dedup;
  return {
    head: ['images', 'unique', 'duplicate groups', 'conflicting-label groups', 'removed'],
    rows: [[d.images, d.unique, d.duplicate_groups, d.conflicting_groups, d.removed].map((n) => cell(String(n)))],
    numeric: cols(0, 5),
  };
}

/** One row per seed and split: the count of each class and the total. */
export function splitsTable(r: StudyReport): Table {
  const rows: Cell[][] = [];
  for (const [seed, s] of Object.entries(r.data.splits)) {
    for (const split of ['train', 'val', 'test'] as const) {
      const counts = s[split];
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      rows.push([cell(seed), cell(split), ...r.class_names.map((c) => cell(counts[c] === undefined ? DASH : String(counts[c]))), cell(String(total))]);
    }
  }
  return { head: ['seed', 'split', ...r.class_names, 'total'], rows, numeric: cols(2, r.class_names.length + 3) };
}

export function instanceTable(r: StudyReport): Table {
  return {
    head: ['seed', 'DreamBooth instance images'],
    rows: Object.entries(r.instance_ids).map(([seed, ids]) => [cell(seed), cell(String(ids.length))]),
    numeric: [1],
  };
}

export function gatesTable(r: StudyReport): Table {
  // one gate's seeds together, gates in the order the pipeline reported them
  const key = (g: GateEntry) => `${g.stage}\u0000${g.name}`;
  const first = new Map<string, number>();
  r.gates.forEach((g, i) => { if (!first.has(key(g))) first.set(key(g), i); });
  const gates = [...r.gates].sort((a, b) => first.get(key(a))! - first.get(key(b))! || a.seed - b.seed);
  return {
    head: ['stage', 'gate', 'seed', 'value', 'target', 'result', 'how it is computed'],
    rows: gates.map((g) => [
      cell(g.stage), cell(g.name), cell(String(g.seed)),
      cell(fmtNum(g.value), g.value === null ? 'muted' : undefined),
      cell(g.target ? `${g.target.op.replace('>=', '≥').replace('<=', '≤')} ${fmtNum(g.target.value)}` : DASH, g.target ? undefined : 'muted'),
      g.passed === undefined ? cell('no target', 'muted') : g.passed ? cell('pass', 'pass') : cell('FAIL', 'fail'),
      cell(g.detail ?? ''),
    ]),
    numeric: [2, 3, 4],
  };
}

export function verificationTable(r: StudyReport): Table {
  return {
    head: ['seed', 'scored', 'accepted', 'accepted share', 'threshold', 'mean rare probability'],
    rows: r.verification.per_seed.map((v) => [
      cell(String(v.seed)), cell(String(v.scored)), cell(String(v.accepted)),
      cell(fmtShare(v.scored ? v.accepted / v.scored : null)), cell(fmtNum(v.threshold)), cell(fmtNum(v.mean_rare_probability)),
    ]),
    numeric: cols(0, 6),
  };
}

const arrow = (a: number | null | undefined, b: number | null | undefined) => `${fmtShare(a)} → ${fmtShare(b)}`;

export function driftInDomainTable(r: StudyReport): Table | null {
  const rows = r.drift.filter((d) => d.kind === 'in_domain');
  if (!rows.length) return null;
  return {
    head: ['seed', 'model', 'prompt', 'samples', 'prompted class, before → after', `${r.rare_class}, before → after`],
    rows: rows.map((d) => [
      cell(String(d.seed)), cell(d.variant), cell(d.prompt), cell(String(d.samples)),
      cell(arrow(d.prompted_share_before, d.prompted_share_after)), cell(arrow(d.rare_share_before, d.rare_share_after)),
    ]),
    numeric: [0, 3, 4, 5],
  };
}

export function driftProbeTable(r: StudyReport): Table | null {
  const rows = r.drift.filter((d) => d.kind === 'probe');
  if (!rows.length) return null;
  return {
    head: ['seed', 'model', 'prompt', 'samples', 'distance base → fine-tuned', 'reference (base seed vs seed)', 'ratio'],
    rows: rows.map((d) => {
      const ratio = d.feature_distance != null && d.reference_distance ? d.feature_distance / d.reference_distance : null;
      return [
        cell(String(d.seed)), cell(d.variant), cell(d.prompt), cell(String(d.samples)),
        cell(fmtNum(d.feature_distance)), cell(fmtNum(d.reference_distance)), cell(fmtNum(ratio, 2)),
      ];
    }),
    numeric: [0, 3, 4, 5, 6],
  };
}

export function timingsTable(r: StudyReport): Table {
  const rows = r.timings.map((t) => [
    cell(t.stage), cell(t.seed === null ? DASH : String(t.seed), t.seed === null ? 'muted' : undefined),
    cell(fmtSeconds(t.seconds), undefined, `${t.seconds.toFixed(1)} s`), cell(t.cached ? 'cached' : 'ran', t.cached ? 'muted' : undefined),
  ]);
  const ran = r.timings.filter((t) => !t.cached).reduce((a, t) => a + t.seconds, 0);
  const all = r.timings.reduce((a, t) => a + t.seconds, 0);
  rows.push([cell('total (this run / including cached)'), cell(''), cell(`${fmtSeconds(ran)} / ${fmtSeconds(all)}`), cell('')]);
  return { head: ['stage', 'seed', 'time', 'cached'], rows, numeric: [1, 2] };
}

/** An ISO timestamp as "2025-12-04 03:14 UTC"; anything else as it is. */
export function fmtDate(s: string): string {
  const d = /^\d{4}-\d\d-\d\dT/.test(s) ? new Date(s) : null;
  return d && !Number.isNaN(d.getTime()) ? `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC` : s;
}

/** The header's facts, label → value. */
export function headerFacts(r: StudyReport): [string, string][] {
  return [
    ['profile', r.profile],
    ['created', fmtDate(r.created)],
    ['adapter', r.adapter],
    ['fine-tuning method', r.method],
    ['seeds', r.seeds.join(', ')],
    ['rare class', r.rare_class],
    ['classes', r.class_names.join(', ')],
  ];
}

/** Image sections in reading order; anything else follows in order of appearance. */
export const IMAGE_SECTIONS = ['data', 'arms', 'gates', 'verification', 'drift', 'training'] as const;

/** Sections whose images sit inside the report section of the same name; the others get "More images". */
export const SECTIONS_WITH_IMAGES: ReadonlySet<string> = new Set(['data', 'arms', 'gates', 'verification', 'drift']);

export function imagesBySection(r: StudyReport): Map<string, StudyReport['images']> {
  const out = new Map<string, StudyReport['images']>();
  for (const s of IMAGE_SECTIONS) out.set(s, []);
  for (const img of r.images) {
    if (!out.has(img.section)) out.set(img.section, []);
    out.get(img.section)!.push(img);
  }
  return out;
}
