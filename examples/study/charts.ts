/**
 * Vega-Lite specs of the study report's charts, each with its data inline, so report.html can render
 * them offline. A chart whose data is empty (no drift measured, no gates) is left out rather than drawn empty.
 */
import type { Config, TopLevelSpec } from 'vega-lite';
import type { ArmMetrics, Stat, StudyReport } from './report-types.js';
import { endpointStat, endpoints, type Endpoint } from './report-tables.js';

export interface ChartSpec {
  /** Stable id: the `data-chart` attribute of the chart's div. */
  name: string;
  title: string;
  /** One sentence on how to read it. */
  caption: string;
  /** Report section the chart belongs to: comparison | arms | gates | drift. */
  section: string;
  spec: TopLevelSpec;
}

/** Shared look: system fonts only (the page loads nothing), quiet axes. */
export const CHART_CONFIG: Config = {
  font: 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 11, titleFontWeight: 'normal', titleColor: '#444', labelColor: '#333', gridColor: '#e8e8e8', domainColor: '#999', tickColor: '#999' },
  header: { labelFontSize: 12, labelFontWeight: 'bold', titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 11, titleFontWeight: 'normal', orient: 'bottom', labelLimit: 320 },
  range: { category: ['#4c78a8', '#f58518', '#54a24b', '#b279a2', '#e45756', '#72b7b2', '#9d755d', '#bab0ac'] },
};

const INK = '#222';
const ZERO = '#999';

/** Finite numbers only: Vega-Lite draws null/NaN oddly, and the tables already show them as "—". */
const num = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v);

/** Interval bounds clipped to the metric's possible range: beyond it the t-interval carries no information. */
const clip = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

interface StatRow { arm: string; mean: number; lo: number; hi: number; ci: string }
interface SeedRow { arm: string; seed: string; value: number }

function statRows(report: StudyReport, get: (m: ArmMetrics | undefined, arm: string) => Stat | undefined, lo: number, hi: number) {
  const stats: StatRow[] = [];
  const seeds: SeedRow[] = [];
  for (const a of report.arms) {
    const s = get(a.metrics, a.name);
    if (!s) continue;
    if (num(s.mean)) {
      const [l, h] = s.ci95 ?? [s.mean, s.mean];
      stats.push({ arm: a.name, mean: s.mean, lo: clip(l, lo, hi), hi: clip(h, lo, hi), ci: s.ci95 ? `[${l.toFixed(3)}, ${h.toFixed(3)}]` : 'n/a' });
    }
    s.per_seed.forEach((v, i) => { if (num(v)) seeds.push({ arm: a.name, seed: String(a.seeds[i] ?? i), value: v }); });
  }
  return { stats, seeds };
}

/**
 * One metric per arm: per-seed points (coloured by seed), the mean as a black tick, the 95% interval as
 * a line. `floor` is where the axis starts unless a value lies below it (0.5 for AUC: chance level).
 */
function metricPerArm(report: StudyReport, name: string, title: string, caption: string, e: Endpoint, floor = 0): ChartSpec | null {
  const values = report.arms.flatMap((a) => endpointStat(a.metrics, report.rare_class, e)?.per_seed ?? []).filter(num);
  const lo = Math.min(floor, Math.floor(Math.min(...values, 1) * 10) / 10);
  const { stats, seeds } = statRows(report, (m) => endpointStat(m, report.rare_class, e), lo, 1);
  if (!stats.length && !seeds.length) return null;
  const arms = report.arms.map((a) => a.name);
  const y = { field: 'arm', type: 'nominal', sort: arms, title: null } as const;
  const x = { type: 'quantitative', scale: { domain: [lo, 1] as number[] }, title: e.label } as const;
  return {
    name, title, caption, section: 'comparison',
    spec: {
      config: CHART_CONFIG,
      width: 320,
      height: { step: 24 },
      layer: [
        {
          data: { values: stats },
          mark: { type: 'rule', color: INK, strokeWidth: 1.5 },
          encoding: { y, x: { ...x, field: 'lo' }, x2: { field: 'hi' }, tooltip: [{ field: 'arm' }, { field: 'mean', format: '.3f' }, { field: 'ci', title: '95% CI' }] },
        },
        {
          data: { values: stats },
          mark: { type: 'tick', color: INK, thickness: 3, size: 16 },
          encoding: { y, x: { ...x, field: 'mean' }, tooltip: [{ field: 'arm' }, { field: 'mean', format: '.3f' }, { field: 'ci', title: '95% CI' }] },
        },
        {
          data: { values: seeds },
          mark: { type: 'point', filled: true, size: 55, opacity: 0.8 },
          encoding: { y, x: { ...x, field: 'value' }, color: { field: 'seed', type: 'nominal', title: 'seed' }, tooltip: [{ field: 'arm' }, { field: 'seed' }, { field: 'value', format: '.3f' }] },
        },
      ],
    },
  };
}

/** Paired differences vs baseline and vs control of three endpoints, one panel each, with a zero rule. */
function differences(report: StudyReport): ChartSpec | null {
  const rare = report.rare_class;
  const eps = endpoints(rare).filter((e) => ['recall', 'f1', 'balanced_accuracy'].includes(e.metric));
  const rows: Record<string, string | number>[] = [];
  for (const a of report.arms) {
    for (const [vs, m] of [['vs baseline', a.name === 'baseline' ? undefined : a.diff_vs_baseline], ['vs control', a.name === 'control' ? undefined : a.diff_vs_control]] as const) {
      if (!m) continue;
      for (const e of eps) {
        const s = endpointStat(m, rare, e);
        if (!s) continue;
        if (num(s.mean)) {
          const [l, h] = s.ci95 ?? [s.mean, s.mean];
          rows.push({ kind: 'stat', endpoint: e.label, arm: a.name, vs, mean: s.mean, lo: clip(l, -1, 1), hi: clip(h, -1, 1), ci: s.ci95 ? `[${l.toFixed(3)}, ${h.toFixed(3)}]` : 'n/a' });
        }
        s.per_seed.forEach((v, i) => { if (num(v)) rows.push({ kind: 'seed', endpoint: e.label, arm: a.name, vs, value: v, seed: String(a.seeds[i] ?? i) }); });
      }
    }
  }
  if (!rows.length) return null;
  const arms = report.arms.map((a) => a.name).filter((n) => rows.some((r) => r['arm'] === n));
  const y = { field: 'arm', type: 'nominal', sort: arms, title: null } as const;
  const yOffset = { field: 'vs', type: 'nominal', sort: ['vs baseline', 'vs control'] as string[] } as const;
  const color = { field: 'vs', type: 'nominal', title: 'paired difference', sort: ['vs baseline', 'vs control'] as string[], scale: { range: ['#4c78a8', '#f58518'] as string[] } } as const;
  // each panel on its own scale (balanced accuracy moves far less than the rare class's recall); the
  // data are already clipped to [-1, 1]
  const x = { type: 'quantitative', title: 'difference (arm − reference)', scale: { zero: true, nice: true } } as const;
  const tip = [{ field: 'arm' }, { field: 'vs' }, { field: 'mean', format: '+.3f' }, { field: 'ci', title: '95% CI' }] as const;
  return {
    name: 'differences',
    title: 'Paired differences vs baseline and vs control',
    caption: 'Mean of the per-seed differences (tick), its 95% interval (line, clipped to [−1, 1]) and each seed (dot); each panel has its own scale. An interval that does not cross the dashed zero line is an effect the seeds agree on.',
    section: 'comparison',
    spec: {
      config: CHART_CONFIG,
      data: { values: rows },
      facet: { column: { field: 'endpoint', type: 'nominal', sort: eps.map((e) => e.label), title: null } },
      resolve: { scale: { x: 'independent' } },
      spec: {
        width: 230,
        height: { step: 17 },
        layer: [
          { transform: [{ aggregate: [{ op: 'count', as: 'n' }] }], mark: { type: 'rule', color: ZERO, strokeDash: [4, 3] }, encoding: { x: { datum: 0, type: 'quantitative' } } },
          { transform: [{ filter: "datum.kind === 'stat'" }], mark: { type: 'rule', strokeWidth: 1.5 }, encoding: { y, yOffset, color, x: { ...x, field: 'lo' }, x2: { field: 'hi' }, tooltip: [...tip] } },
          { transform: [{ filter: "datum.kind === 'stat'" }], mark: { type: 'tick', thickness: 3, size: 12 }, encoding: { y, yOffset, color, x: { ...x, field: 'mean' }, tooltip: [...tip] } },
          { transform: [{ filter: "datum.kind === 'seed'" }], mark: { type: 'point', size: 28, opacity: 0.9 }, encoding: { y, yOffset, color, x: { ...x, field: 'value' }, tooltip: [{ field: 'arm' }, { field: 'vs' }, { field: 'seed' }, { field: 'value', format: '+.3f' }] } },
        ],
      },
    },
  };
}

/** Confusion matrices summed over seeds, one panel per arm; colour is the share of the true class's images. */
function confusion(report: StudyReport): ChartSpec | null {
  const rows: { arm: string; true: string; predicted: string; count: number; share: number }[] = [];
  const cls = report.class_names;
  for (const a of report.arms) {
    a.confusion.forEach((row, i) => {
      const total = row.reduce((s, n) => s + n, 0);
      row.forEach((n, j) => rows.push({ arm: a.name, true: cls[i] ?? `class ${i}`, predicted: cls[j] ?? `class ${j}`, count: n, share: total ? n / total : 0 }));
    });
  }
  if (!rows.length) return null;
  const x = { field: 'predicted', type: 'nominal', sort: cls, title: 'predicted', axis: { labelAngle: -40 } } as const;
  const y = { field: 'true', type: 'nominal', sort: cls, title: 'true' } as const;
  return {
    name: 'confusion',
    title: 'Confusion matrices (summed over seeds)',
    caption: 'Rows are the true class, columns the prediction; the number is the count of test images, the shade the share of that row.',
    section: 'arms',
    spec: {
      config: CHART_CONFIG,
      data: { values: rows },
      columns: 4,
      facet: { field: 'arm', type: 'nominal', sort: report.arms.map((a) => a.name), title: null },
      spec: {
        width: { step: 34 },
        height: { step: 34 },
        layer: [
          { mark: 'rect', encoding: { x, y, color: { field: 'share', type: 'quantitative', scale: { scheme: 'blues', domain: [0, 1] }, title: 'share of row', legend: { format: '.0%' } }, tooltip: [{ field: 'arm' }, { field: 'true' }, { field: 'predicted' }, { field: 'count' }, { field: 'share', format: '.1%' }] } },
          { mark: { type: 'text', fontSize: 11 }, encoding: { x, y, text: { field: 'count', type: 'quantitative' }, color: { condition: { test: 'datum.share > 0.55', value: 'white' }, value: INK } } },
        ],
      },
    },
  };
}

/** Every gate's value per seed against its target (a black tick), one panel per gate with its own scale. */
function gates(report: StudyReport): ChartSpec | null {
  const drawable = report.gates.filter((g) => num(g.value) || g.target);
  if (!drawable.length) return null;
  const rows = drawable.map((g) => ({
    gate: `${g.stage} · ${g.name}`,
    seed: `seed ${g.seed}`,
    value: num(g.value) ? g.value : null,
    // every row carries a finite rule position (the value where there is no target, drawn invisible),
    // so a panel without targets does not give its independent scale an empty, infinite extent
    rule_x: g.target ? g.target.value : num(g.value) ? g.value : 0,
    has_target: g.target !== undefined,
    target_text: g.target ? `${g.target.op} ${g.target.value}` : 'none',
    status: g.passed === undefined ? 'no target' : g.passed ? 'pass' : 'fail',
  }));
  const y = { field: 'seed', type: 'nominal', title: null } as const;
  return {
    name: 'gates',
    title: 'Gates against their targets',
    caption: 'Each panel is one gate on its own scale: the bar is the measured value per seed, the black tick the target. Missing bars are values that could not be computed.',
    section: 'gates',
    spec: {
      config: CHART_CONFIG,
      data: { values: rows },
      columns: 3,
      facet: { field: 'gate', type: 'nominal', title: null, sort: [...new Set(rows.map((r) => r.gate))], header: { labelFontSize: 11, labelLimit: 0 } },
      resolve: { scale: { x: 'independent' } },
      spec: {
        width: 230,
        height: { step: 20 },
        layer: [
          {
            transform: [{ filter: 'isValid(datum.value)' }],
            mark: { type: 'bar', height: { band: 0.7 } },
            encoding: {
              y, x: { field: 'value', type: 'quantitative', title: null, scale: { zero: true, nice: true } },
              color: { field: 'status', type: 'nominal', title: 'result', scale: { domain: ['pass', 'fail', 'no target'], range: ['#54a24b', '#e45756', '#9e9e9e'] } },
              tooltip: [{ field: 'gate' }, { field: 'seed' }, { field: 'value', format: '.4f' }, { field: 'target_text', title: 'target' }, { field: 'status', title: 'result' }],
            },
          },
          {
            mark: { type: 'tick', color: INK, thickness: 2.5, size: 18 },
            encoding: { y, x: { field: 'rule_x', type: 'quantitative' }, opacity: { condition: { test: 'datum.has_target', value: 1 }, value: 0 } },
          },
        ],
      },
    },
  };
}

/**
 * Bars per prompt, one per group (before/after, or measure vs reference), mean over seeds with a dot
 * per seed, faceted by fine-tuned variant: the layout both drift charts share.
 */
function promptBars(o: {
  name: string; title: string; caption: string;
  rows: Record<string, string | number>[];
  group: string; groups: string[]; groupTitle: string | null; colours: string[];
  value: string; valueTitle: string; format: string; axis?: Record<string, unknown>; domain?: [number, number];
}): ChartSpec {
  const y = { field: 'prompt', type: 'nominal', title: null, axis: { labelLimit: 240 } } as const;
  const yOffset = { field: o.group, type: 'nominal', sort: o.groups } as const;
  const color = { field: o.group, type: 'nominal', sort: o.groups, title: o.groupTitle, scale: { range: o.colours } } as const;
  const x = { aggregate: 'mean', field: o.value, type: 'quantitative', title: o.valueTitle, ...(o.domain ? { scale: { domain: o.domain } } : {}), ...(o.axis ? { axis: o.axis } : {}) };
  return {
    name: o.name,
    title: o.title,
    caption: o.caption,
    section: 'drift',
    spec: {
      config: CHART_CONFIG,
      data: { values: o.rows },
      facet: { column: { field: 'variant', type: 'nominal', title: null } },
      spec: {
        width: 240,
        height: { step: 34 },
        layer: [
          { mark: { type: 'bar', height: { band: 0.8 } }, encoding: { y, yOffset, color, x, tooltip: [{ field: 'prompt' }, { field: o.group }, { aggregate: 'mean', field: o.value, format: o.format, title: 'mean' }] } },
          { mark: { type: 'point', filled: true, size: 26, color: INK }, encoding: { y, yOffset, x: { field: o.value, type: 'quantitative' }, tooltip: [{ field: 'prompt' }, { field: o.group }, { field: 'seed' }, { field: o.value, format: o.format }] } },
        ],
      },
    } as ChartSpec['spec'],
  };
}

/** In-domain prompts: share of samples classified as the prompted class before vs after fine-tuning. */
function driftInDomain(report: StudyReport): ChartSpec | null {
  const rows: Record<string, string | number>[] = [];
  for (const d of report.drift) {
    if (d.kind !== 'in_domain') continue;
    for (const [phase, v] of [['before', d.prompted_share_before], ['after', d.prompted_share_after]] as const) {
      if (num(v)) rows.push({ variant: d.variant, prompt: d.prompt, phase, share: v, seed: String(d.seed) });
    }
  }
  if (!rows.length) return null;
  return promptBars({
    name: 'drift_in_domain',
    title: 'Drift: other classes still look like themselves?',
    caption: 'Share of samples of an in-domain prompt that the classifier assigns to the prompted class, before and after fine-tuning (bar: mean over seeds, dot: one seed). A drop means the fine-tuned model forgot that class.',
    rows, group: 'phase', groups: ['before', 'after'], groupTitle: 'fine-tuning', colours: ['#9ecae9', '#4c78a8'],
    value: 'share', valueTitle: 'share of the prompted class', format: '.1%', domain: [0, 1], axis: { format: '.0%' },
  });
}

/** Off-domain probe prompts: feature distance of base vs fine-tuned samples, against the base model's seed-to-seed distance. */
function driftProbe(report: StudyReport): ChartSpec | null {
  const rows: Record<string, string | number>[] = [];
  for (const d of report.drift) {
    if (d.kind !== 'probe') continue;
    for (const [measure, v] of [['base → fine-tuned', d.feature_distance], ['reference: base, seed vs seed', d.reference_distance]] as const) {
      if (num(v)) rows.push({ variant: d.variant, prompt: d.prompt, measure, distance: v, seed: String(d.seed) });
    }
  }
  if (!rows.length) return null;
  return promptBars({
    name: 'drift_probe',
    title: 'Drift: unrelated prompts',
    caption: 'Feature distance between the base and the fine-tuned model\'s samples of the same prompt and seed, next to the distance between two seeds of the base model. Far above the reference means fine-tuning changed what unrelated prompts draw.',
    rows, group: 'measure', groups: ['base → fine-tuned', 'reference: base, seed vs seed'], groupTitle: null, colours: ['#f58518', '#bab0ac'],
    value: 'distance', valueTitle: 'feature distance', format: '.3f',
  });
}

/** Every chart of the report that has data, in page order. */
export function reportCharts(report: StudyReport): ChartSpec[] {
  const eps = endpoints(report.rare_class);
  const byMetric = (m: string) => eps.find((e) => e.metric === m)!;
  const charts = [
    metricPerArm(report, 'rare_recall', `${report.rare_class} recall per arm`,
      'Black tick: mean over seeds; line: 95% t-interval (clipped to [0, 1]); dots: each seed.', byMetric('recall')),
    metricPerArm(report, 'mean_auc', 'Mean AUC per arm (the Kaggle metric)',
      'Mean of the classes\' one-vs-rest ROC AUC; the axis starts at chance level (0.5). Black tick: mean over seeds; line: 95% t-interval; dots: each seed.', byMetric('mean_auc'), 0.5),
    differences(report),
    confusion(report),
    gates(report),
    driftInDomain(report),
    driftProbe(report),
  ];
  return charts.filter((c): c is ChartSpec => c !== null);
}
