/**
 * report.md: the study report as Markdown, with the same tables as report.html (both come from
 * report-tables.ts) and links to the images instead of charts.
 */
import type { ReportImage, StudyReport } from './report-types.js';
import * as T from './report-tables.js';

/**
 * Characters that would start Markdown or HTML markup, backslash-escaped. Brackets stay readable
 * ("0.12 [0.05, 0.19]"): only "](", which would make a link, is broken up.
 */
const mdEsc = (s: string) => s.replace(/([\\`*<>|])/g, '\\$1').replace(/\]\(/g, ']\\(');
/** One line: every kind of line break becomes a space (a list item or table row must not end early). */
const oneLine = (s: string) => s.replace(/[\r\n\u2028\u2029]+/g, ' ');
/** A paragraph: escaped, and a line that starts like a heading, quote or list item escaped too; its line breaks kept. */
const mdText = (s: string) => mdEsc(s.replace(/[\u2028\u2029]/g, '\n')).replace(/^(\s*)([#>+-])/gm, '$1\\$2').replace(/\r?\n/g, '  \n');
const mdInline = (s: string) => mdText(oneLine(s));

/** A table cell's text: escaped, on one line; intervals that exclude 0 in bold, failed gates too. */
function mdCell(c: T.Cell): string {
  const text = mdEsc(oneLine(c.sub ? `${c.text} ${c.sub}` : c.text));
  return c.tone === 'up' || c.tone === 'down' || c.tone === 'fail' ? `**${text}**` : text;
}

function mdTable(t: T.Table): string {
  const numeric = (i: number) => t.numeric?.includes(i) ?? false;
  // no column spans in Markdown: a group's label goes in front of each of its columns
  const group = (t.groups ?? []).flatMap((g) => new Array<string>(g.span).fill(g.label));
  const head = `| ${t.head.map((h, i) => mdCell({ text: group[i] ? `${group[i]} ${h}` : h })).join(' | ')} |`;
  const rule = `| ${t.head.map((_, i) => (numeric(i) ? '---:' : '---')).join(' | ')} |`;
  return [head, rule, ...t.rows.map((r) => `| ${r.map(mdCell).join(' | ')} |`)].join('\n');
}

/** Markdown link target: spaces and parentheses would end it early. */
const mdPath = (p: string) => p.split('/').map(encodeURIComponent).join('/');

function images(list: ReportImage[] | undefined): string[] {
  const alt = (s: string) => mdInline(s).replace(/[[\]]/g, '\\$&');
  return (list ?? []).map((i) => `![${alt(i.caption)}](${mdPath(i.path)})\n*${mdInline(i.caption)}*\n`);
}

export function renderReportMarkdown(report: StudyReport): string {
  const out: string[] = [];
  const push = (...lines: (string | null | undefined | false)[]) => { for (const l of lines) if (l !== null && l !== undefined && l !== false) out.push(l); };
  const imgs = T.imagesBySection(report);

  push(`# ${mdInline(report.title)}`, '', ...T.headerFacts(report).map(([k, v]) => `- **${k}**: ${mdInline(v)}`), '');

  push('## Findings', '', ...(report.findings.length ? report.findings.map((f) => `- ${mdInline(f)}`) : ['No findings were recorded.']), '');

  push('## Data and protocol', '', `Source: ${mdInline(report.data.source)}`, '',
    '### Deduplication (decoded-pixel hash)', '', mdTable(T.dedupTable(report)), '',
    '### Split sizes per seed', '', mdTable(T.splitsTable(report)), '',
    '### What the generators trained on', '', mdText(report.data.generator_data), '',
    '### DreamBooth instance images', '', mdTable(T.instanceTable(report)), '', ...images(imgs.get('data')));

  push('## Main comparison', '', `Mean over seeds [95% t-interval]; the rare class is ${mdInline(report.rare_class)}.`, '',
    '### Arms', '', mdTable(T.armsTable(report)), '',
    '### Primary endpoints', '', mdTable(T.comparisonTable(report)), '');
  const vsBaseline = T.diffTable(report, 'baseline');
  const vsControl = T.diffTable(report, 'control');
  if (vsBaseline) push('### Paired difference vs baseline', '', mdTable(vsBaseline), '');
  if (vsControl) push('### Paired difference vs control', '', mdTable(vsControl), '');
  if (vsBaseline || vsControl) push('Intervals in **bold** exclude 0.', '');

  push('## Per-arm results', '');
  for (const a of report.arms) {
    push(`### ${mdInline(a.name)}`, '', mdText(a.description), '', mdTable(T.perClassTable(report, a)), '',
      'Confusion matrix (counts summed over seeds):', '', mdTable(T.confusionTable(report, a)), '');
    const preds = Object.entries(a.predictions);
    if (preds.length) push(`Predictions: ${preds.map(([s, p]) => `[seed ${s}](${mdPath(p)})`).join(', ')}`, '');
  }
  push(...images(imgs.get('arms')));

  push('## Gates', '', report.gates.length ? mdTable(T.gatesTable(report)) : 'No gates were recorded.', '', ...images(imgs.get('gates')));

  push('## Verification of the synthetic images', '', mdText(report.verification.detail), '',
    report.verification.per_seed.length ? mdTable(T.verificationTable(report)) : 'No synthetic images were scored.', '', ...images(imgs.get('verification')));

  const inDomain = T.driftInDomainTable(report);
  const probe = T.driftProbeTable(report);
  push('## Drift of the fine-tuned models', '');
  if (inDomain) push('### In-domain prompts', '', mdTable(inDomain), '');
  if (probe) push('### Unrelated (probe) prompts', '', mdTable(probe), '');
  if (!inDomain && !probe) push('No drift was measured.', '');
  push(...images(imgs.get('drift')));

  const others = [...imgs].filter(([s, list]) => !T.SECTIONS_WITH_IMAGES.has(s) && list.length);
  if (others.length) {
    push('## More images', '');
    for (const [s, list] of others) push(`### ${mdInline(s)}`, '', ...images(list));
  }

  push('## Timings', '', mdTable(T.timingsTable(report)), '');
  // a fence longer than any backtick run inside the JSON, so no string can close it
  const json = JSON.stringify(report.config, null, 2).replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
  const fence = '`'.repeat(Math.max(3, ...[...json.matchAll(/`+/g)].map((m) => m[0].length + 1)));
  push('## Configuration', '', '<details><summary>resolved configuration of every stage (JSON)</summary>', '', `${fence}json`, json, fence, '', '</details>', '');
  return out.join('\n');
}
