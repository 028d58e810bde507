/**
 * report.html: the study report as one self-contained page. Tables come from report-tables.ts (the
 * same as report.md), charts are Vega-Lite specs from charts.ts rendered in the browser by the inlined
 * vega/vega-lite/vega-embed builds, images are data: URIs. The page loads nothing: a Content-Security-
 * Policy forbids every fetch, so a chart or style that tried would fail visibly instead of going online.
 */
import { dirname } from 'node:path';
import { writeFileAtomic } from '@foliar/tensor';
import type { ReportImage, StudyReport } from './report-types.js';
import { reportCharts, type ChartSpec } from './charts.js';
import { inlineImage, vegaScripts, type InlineImage } from './report-assets.js';
import * as T from './report-tables.js';

export interface RenderHtmlOptions {
  /** Folder the report's image paths are relative to (the folder report.html is written to). */
  baseDir: string;
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => ESC[c]!);

/**
 * JSON for a <script type="application/json"> element: "<" ">" "&" as \u escapes (valid JSON, and no
 * "</script>" or "<!--" can form), U+2028/2029 escaped too so the text is also a valid JS literal.
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

// ---------------------------------------------------------------- pieces

function table(t: T.Table, cls = ''): string {
  const numeric = (i: number) => t.numeric?.includes(i) ?? false;
  const groups = t.groups ? `<tr class="groups">${t.groups.map((g) => `<th colspan="${g.span}"${g.label ? '' : ' class="empty"'}>${escapeHtml(g.label)}</th>`).join('')}</tr>` : '';
  const head = groups + `<tr>${t.head.map((h, i) => `<th${numeric(i) ? ' class="num"' : ''}>${escapeHtml(h)}</th>`).join('')}</tr>`;
  const body = t.rows.map((row) => `<tr>${row.map((c, i) => {
    const classes = [numeric(i) ? 'num' : '', c.tone ? `tone-${c.tone}` : ''].filter(Boolean).join(' ');
    const sub = c.sub ? ` <span class="ci">${escapeHtml(c.sub)}</span>` : '';
    return `<td${classes ? ` class="${classes}"` : ''}${c.title ? ` title="${escapeHtml(c.title)}"` : ''}>${escapeHtml(c.text)}${sub}</td>`;
  }).join('')}</tr>`).join('\n');
  return `<div class="table-wrap"><table${cls ? ` class="${cls}"` : ''}><thead>${head}</thead>\n<tbody>\n${body}\n</tbody></table></div>`;
}

function chart(c: ChartSpec): string {
  return `<figure class="chart-box"><figcaption><strong>${escapeHtml(c.title)}</strong> ${escapeHtml(c.caption)}</figcaption>`
    + `<div class="chart" data-chart="${escapeHtml(c.name)}"></div></figure>`;
}

function imageGrid(images: ReportImage[], inlined: Map<string, InlineImage>): string {
  if (!images.length) return '';
  return `<div class="image-grid">${images.map((img) => {
    const data = inlined.get(img.path)!;
    // small images (a few 64 px leaves) are shown enlarged with sharp pixels rather than as thumbnails
    const small = data.width > 0 && data.width < 320;
    const size = data.width && data.height ? ` width="${data.width}" height="${data.height}"` : '';
    return `<figure class="image${small ? ' small' : ''}"><img class="report-image" src="${data.src}" alt="${escapeHtml(img.caption)}"${size}>`
      + `<figcaption>${escapeHtml(img.caption)} <span class="path">${escapeHtml(img.path)}</span></figcaption></figure>`;
  }).join('\n')}</div>`;
}

function section(id: string, title: string, body: string): string {
  return `<section id="${id}">\n<h2>${escapeHtml(title)}</h2>\n${body}\n</section>`;
}

const para = (s: string, cls = '') => (s ? `<p${cls ? ` class="${cls}"` : ''}>${escapeHtml(s)}</p>` : '');

const TONE_LEGEND = '<p class="legend"><span class="tone-up">green</span>: the 95% interval lies above 0, '
  + '<span class="tone-down">red</span>: below 0; uncoloured intervals include 0. Hover a cell for the per-seed values.</p>';

// ---------------------------------------------------------------- page

/** Renders the whole page; images (relative to opts.baseDir) are read and inlined. */
export async function renderReportHtml(report: StudyReport, opts: RenderHtmlOptions): Promise<string> {
  const [scripts, inlined] = await Promise.all([vegaScripts(), inlineImages(report, opts.baseDir)]);
  const charts = reportCharts(report);
  const chartsOf = (s: string) => charts.filter((c) => c.section === s).map(chart).join('\n');
  const images = T.imagesBySection(report);
  const imagesOf = (s: string) => {
    const list = images.get(s) ?? [];
    return list.length ? `<h3>Images</h3>\n${imageGrid(list, inlined)}` : '';
  };

  const header = `<header>
<h1>${escapeHtml(report.title)}</h1>
<dl class="facts">${T.headerFacts(report).map(([k, v]) => `<div><dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd></div>`).join('')}</dl>
</header>`;

  const findings = section('findings', 'Findings', report.findings.length
    ? `<ul class="findings">${report.findings.map((f) => `<li>${escapeHtml(f)}</li>`).join('\n')}</ul>`
    : para('No findings were recorded.', 'muted'));

  const instanceLists = Object.entries(report.instance_ids).map(([seed, ids]) =>
    `<details><summary>seed ${escapeHtml(seed)}: ${ids.length} instance image ids</summary><p class="ids">${escapeHtml(ids.join(', '))}</p></details>`).join('\n');
  const data = section('data', 'Data and protocol', [
    para(`Source: ${report.data.source}`),
    '<h3>Deduplication (decoded-pixel hash)</h3>', table(T.dedupTable(report), 'compact'),
    '<h3>Split sizes per seed</h3>', table(T.splitsTable(report), 'compact'),
    '<h3>What the generators trained on</h3>', para(report.data.generator_data, 'prose'),
    '<h3>DreamBooth instance images</h3>', table(T.instanceTable(report), 'compact'), instanceLists,
    imagesOf('data'),
  ].join('\n'));

  const vsBaseline = T.diffTable(report, 'baseline');
  const vsControl = T.diffTable(report, 'control');
  const comparison = section('comparison', 'Main comparison', [
    para(`Every arm on the primary endpoints: mean over seeds [95% t-interval]. The rare class is ${report.rare_class}.`),
    '<h3>Arms</h3>', table(T.armsTable(report)),
    '<h3>Primary endpoints</h3>', table(T.comparisonTable(report), 'endpoints'),
    vsBaseline ? `<h3>Paired difference vs baseline</h3>\n${table(vsBaseline, 'endpoints')}` : '',
    vsControl ? `<h3>Paired difference vs control</h3>\n${para('The control adds as many images from the base model, which never saw the rare class: the difference to it is what the DreamBooth images add beyond rebalancing.', 'muted')}\n${table(vsControl, 'endpoints')}` : '',
    vsBaseline || vsControl ? TONE_LEGEND : '',
    `<div class="charts">${chartsOf('comparison')}</div>`,
  ].join('\n'));

  const arms = section('arms', 'Per-arm results', [
    `<div class="charts">${chartsOf('arms')}</div>`,
    `<div class="arm-grid">${report.arms.map((a) => `<article class="arm">
<h3>${escapeHtml(a.name)}</h3>${para(a.description, 'muted')}
${table(T.perClassTable(report, a), 'compact')}
<details><summary>confusion matrix (counts summed over seeds)</summary>${table(T.confusionTable(report, a), 'compact')}</details>
${Object.keys(a.predictions).length ? `<p class="files">predictions: ${Object.entries(a.predictions).map(([s, p]) => `seed ${escapeHtml(s)} <code>${escapeHtml(p)}</code>`).join(', ')}</p>` : ''}
</article>`).join('\n')}</div>`,
    imagesOf('arms'),
  ].join('\n'));

  const gates = section('gates', 'Gates', report.gates.length
    ? [table(T.gatesTable(report), 'gates'), `<div class="charts">${chartsOf('gates')}</div>`, imagesOf('gates')].join('\n')
    : para('No gates were recorded.', 'muted') + imagesOf('gates'));

  const verification = section('verification', 'Verification of the synthetic images', [
    para(report.verification.detail, 'prose'),
    report.verification.per_seed.length ? table(T.verificationTable(report), 'compact') : para('No synthetic images were scored.', 'muted'),
    imagesOf('verification'),
  ].join('\n'));

  const inDomain = T.driftInDomainTable(report);
  const probe = T.driftProbeTable(report);
  const drift = section('drift', 'Drift of the fine-tuned models', [
    inDomain ? `<h3>In-domain prompts</h3>\n${table(inDomain)}` : '',
    probe ? `<h3>Unrelated (probe) prompts</h3>\n${table(probe)}` : '',
    inDomain || probe ? '' : para('No drift was measured.', 'muted'),
    `<div class="charts">${chartsOf('drift')}</div>`,
    imagesOf('drift'),
  ].join('\n'));

  const others = [...images].filter(([s, list]) => !T.SECTIONS_WITH_IMAGES.has(s) && list.length);
  const otherImages = others.length
    ? section('images', 'More images', others.map(([s, list]) => `<h3>${escapeHtml(s)}</h3>\n${imageGrid(list, inlined)}`).join('\n'))
    : '';

  const timings = section('timings', 'Timings', table(T.timingsTable(report), 'compact'));
  const config = section('config', 'Configuration',
    `<details><summary>resolved configuration of every stage (JSON)</summary><pre class="config">${escapeHtml(JSON.stringify(report.config, null, 2))}</pre></details>`);

  const toc = [['findings', 'Findings'], ['data', 'Data'], ['comparison', 'Comparison'], ['arms', 'Arms'], ['gates', 'Gates'],
    ['verification', 'Verification'], ['drift', 'Drift'], ...(others.length ? [['images', 'Images']] : []), ['timings', 'Timings'], ['config', 'Config']];
  const specs = Object.fromEntries(charts.map((c) => [c.name, c.spec]));

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data:">
<meta name="generator" content="foliar study (${scripts.map((s) => `${s.name} ${s.version}`).join(', ')})">
<title>${escapeHtml(report.title)}</title>
<style>${CSS}</style>
</head>
<body>
${header}
<nav class="toc">${toc.map(([id, label]) => `<a href="#${id}">${label}</a>`).join('')}</nav>
<main>
${findings}
${data}
${comparison}
${arms}
${gates}
${verification}
${drift}
${otherImages}
${timings}
${config}
</main>
<footer>Self-contained page: charts drawn by ${scripts.map((s) => `${s.name} ${s.version}`).join(', ')}, inlined; nothing is loaded from the network.</footer>
${scripts.map((s) => `<script>/* ${s.name} ${s.version} */\n${s.code}\n</script>`).join('\n')}
<script type="application/json" id="chart-specs">${jsonForScript(specs)}</script>
<script>${BOOT}</script>
</body>
</html>
`;
}

/** Renders the report next to its images (baseDir = the file's folder) and writes it atomically. */
export async function writeReportHtml(path: string, report: StudyReport): Promise<void> {
  await writeFileAtomic(path, await renderReportHtml(report, { baseDir: dirname(path) }));
}

async function inlineImages(report: StudyReport, baseDir: string): Promise<Map<string, InlineImage>> {
  const paths = [...new Set(report.images.map((i) => i.path))];
  const data = await Promise.all(paths.map((p) => inlineImage(baseDir, p)));
  return new Map(paths.map((p, i) => [p, data[i]!]));
}

/**
 * Embeds every chart; marks each div data-rendered="1" when drawn, or writes the error into it and sets
 * data-error, so a reader (and the browser test) can tell a broken chart from a slow one.
 */
const BOOT = `(function () {
  var specs = JSON.parse(document.getElementById('chart-specs').textContent);
  function fail(div, msg) {
    div.textContent = 'This chart could not be drawn: ' + msg;
    div.setAttribute('data-error', msg);
    div.classList.add('chart-error');
  }
  document.querySelectorAll('.chart[data-chart]').forEach(function (div) {
    var name = div.getAttribute('data-chart');
    if (typeof vegaEmbed !== 'function') return fail(div, 'vega-embed did not load');
    if (!specs[name]) return fail(div, 'no chart named ' + name);
    vegaEmbed(div, specs[name], { mode: 'vega-lite', renderer: 'svg', actions: false }).then(
      function () { div.setAttribute('data-rendered', '1'); },
      function (e) { fail(div, String((e && e.message) || e)); });
  });
})();`;

const CSS = `
:root { --ink: #1f2328; --muted: #667085; --line: #d9dee5; --soft: #f5f7fa; --accent: #2f6f4f;
  --up-bg: #e3f4e8; --up: #17643a; --down-bg: #fde7e7; --down: #a42a2a; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header, main, footer, nav.toc { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 28px; }
h1 { font-size: 26px; margin: 0 0 12px; line-height: 1.25; }
h2 { font-size: 20px; margin: 40px 0 12px; padding-bottom: 6px; border-bottom: 2px solid var(--accent); }
h3 { font-size: 15px; margin: 22px 0 8px; }
.facts { display: flex; flex-wrap: wrap; gap: 8px; margin: 0; }
.facts div { background: var(--soft); border-radius: 6px; padding: 5px 12px; min-width: 0; max-width: 100%; }
.facts dt { font-size: 11px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.facts dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
nav.toc { position: sticky; top: 0; z-index: 2; background: rgba(255,255,255,.95); border-bottom: 1px solid var(--line);
  display: flex; flex-wrap: wrap; gap: 2px 14px; padding-top: 8px; padding-bottom: 8px; margin-top: 18px; font-size: 13px; }
nav.toc a { color: var(--accent); text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
section { scroll-margin-top: 48px; }
p { margin: 8px 0; }
.prose { white-space: pre-line; max-width: 80ch; }
.muted { color: var(--muted); }
ul.findings { padding-left: 20px; max-width: 90ch; }
ul.findings li { margin: 6px 0; }
.table-wrap { overflow-x: auto; margin: 6px 0 10px; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; border-bottom: 1px solid #c4cbd4; white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
tbody tr:hover td { background: #fafbfc; }
table.compact th, table.compact td { padding: 3px 8px; }
table.endpoints th, table.endpoints td { padding: 5px 8px; }
tr.groups th { text-align: center; border-bottom: 1px solid #c4cbd4; font-size: 12px; color: var(--muted); }
tr.groups th.empty { border-bottom-color: transparent; }
td .ci { font-size: 11.5px; color: var(--muted); font-weight: normal; }
td.tone-up .ci, td.tone-down .ci { color: inherit; }
table.gates td:last-child { color: var(--muted); font-size: 12px; min-width: 240px; }
table.gates td:nth-child(6) { white-space: nowrap; }
td.tone-up, span.tone-up { background: var(--up-bg); color: var(--up); font-weight: 600; }
td.tone-down, span.tone-down { background: var(--down-bg); color: var(--down); font-weight: 600; }
span.tone-up, span.tone-down { padding: 0 4px; border-radius: 3px; }
td.tone-pass { color: var(--up); font-weight: 600; }
td.tone-fail { color: #fff; background: var(--down); font-weight: 700; }
td.tone-muted { color: #98a2b3; }
.legend { font-size: 12px; color: var(--muted); }
.charts { display: flex; flex-wrap: wrap; gap: 18px; margin-top: 14px; }
figure { margin: 0; }
/* as wide as its chart (the caption wraps to it), so two narrow charts sit side by side */
.chart-box { border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; width: min-content; min-width: min(100%, 380px); max-width: 100%; overflow-x: auto; }
.chart-box figcaption { font-size: 12.5px; color: var(--muted); margin-bottom: 8px; }
.chart-box figcaption strong { display: block; color: var(--ink); font-size: 14px; }
.chart { min-height: 40px; }
.chart-error { color: var(--down); background: var(--down-bg); padding: 8px; border-radius: 4px; }
.arm-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(500px, 1fr)); gap: 16px; margin-top: 16px; }
.arm table.compact td .ci { display: block; }
.arm { border: 1px solid var(--line); border-radius: 8px; padding: 4px 14px 10px; min-width: 0; }
.arm h3 { margin-top: 10px; }
details { margin: 6px 0; }
summary { cursor: pointer; color: var(--accent); font-size: 13px; }
.files, .ids { font-size: 12px; color: var(--muted); overflow-wrap: anywhere; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 12px; }
pre.config { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 12px; overflow: auto; max-height: 640px; }
.image-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 16px; }
.image img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; background: var(--soft); }
.image.small img { width: 100%; max-width: 320px; image-rendering: pixelated; }
.image figcaption { font-size: 13px; margin-top: 4px; }
.image .path { display: block; color: var(--muted); font-size: 11px; overflow-wrap: anywhere; }
footer { color: var(--muted); font-size: 12px; margin-top: 48px; padding-bottom: 32px; border-top: 1px solid var(--line); padding-top: 10px; }
@media print { nav.toc { display: none; } details { display: block; } .chart-box, .arm, figure.image { break-inside: avoid; } }
`;
