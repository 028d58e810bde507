/**
 * The study report renderers: report.html is one self-contained page whose charts really draw in
 * Chromium offline, report.md has the same tables, and hostile strings stay text.
 */
import { test, skip } from '../harness.js';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderReportHtml, writeReportHtml, jsonForScript } from '../../examples/study/report-html.js';
import { renderReportMarkdown } from '../../examples/study/report-md.js';
import { reportCharts } from '../../examples/study/charts.js';
import { sampleStudyReport, writeFixtureImages, HOSTILE, ARMS } from './fixtures.js';
import { checkReportInBrowser, chromiumPath } from './browser-check.js';

const dir = mkdtempSync(join(tmpdir(), 'foliar-report-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const images = writeFixtureImages(dir);
const report = sampleStudyReport({ images });
const EXPECTED_CHARTS = ['rare_recall', 'mean_auc', 'differences', 'confusion', 'gates', 'drift_in_domain', 'drift_probe'];

const count = (s: string, sub: string) => s.split(sub).length - 1;

test('the fixture is the study: 7 arms, 2 seeds, nulls where the pipeline makes them', () => {
  assert.equal(report.arms.map((a) => a.name), ARMS);
  const baseline = report.arms[0]!;
  assert.is(baseline.metrics['multiple_diseases']!.precision!.per_seed[1], null);
  assert.is(baseline.metrics['multiple_diseases']!.precision!.ci95, null);
  assert.ok(report.arms.find((a) => a.name === 'dreambooth')!.diff_vs_control);
  assert.is(report.arms.find((a) => a.name === 'oversample')!.diff_vs_control, undefined);
});

test('renderReportHtml: one file, libraries and data inline, nothing external', async () => {
  const html = await renderReportHtml(report, { baseDir: dir });
  // vega, vega-lite, vega-embed, the chart specs and the bootstrap: the hostile strings added none
  assert.is(count(html, '<script'), 5);
  assert.is(count(html, '</script>'), 5);
  // the markup outside the inlined scripts refers to nothing outside the page
  const markup = html.replace(/<script\b[^>]*>[\s\S]*?<\/script>/g, '<script></script>');
  assert.not.match(markup, /<link\b/i);
  assert.not.match(markup, /\b(src|href)="(?!data:|#)/i, 'only data: sources and in-page links');
  assert.not.match(markup, /url\(/i, 'no CSS url()');
  assert.not.match(markup, /https?:/i, 'no URL at all');
  assert.match(html, /Content-Security-Policy/);
  assert.ok(html.includes('a red car &lt;/script&gt;&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'), 'finding shown as escaped text');
  for (const name of EXPECTED_CHARTS) assert.ok(html.includes(`<div class="chart" data-chart="${name}"></div>`), `chart ${name}`);
  assert.is(count(html, 'class="report-image"'), 2);
  assert.is(count(html, 'src="data:image/png;base64,'), 2);
  // the inline JSON parses back to the exact specs, hostile strings included
  const json = /<script type="application\/json" id="chart-specs">([^<]*)<\/script>/.exec(html)?.[1];
  assert.ok(json, 'chart specs element');
  const specs = JSON.parse(json!) as Record<string, unknown>;
  assert.equal(Object.keys(specs), EXPECTED_CHARTS);
  assert.ok(JSON.stringify(specs).includes(JSON.stringify(HOSTILE).slice(1, -1)), "the probe prompt survives the round trip");
  assert.equal(specs, Object.fromEntries(reportCharts(report).map((c) => [c.name, JSON.parse(JSON.stringify(c.spec))])));
});

test('renderReportHtml: tables show "mean [lo, hi]", nulls as a dash, intervals that exclude 0 marked', async () => {
  const html = await renderReportHtml(report, { baseDir: dir });
  const recall = report.arms[0]!.metrics['multiple_diseases']!.recall!;
  assert.ok(html.includes(`>${recall.mean!.toFixed(3)} <span class="ci">[${recall.ci95![0].toFixed(3)}, ${recall.ci95![1].toFixed(3)}]</span></td>`));
  // the baseline's rare-class precision has one seed: a mean without an interval
  const prec = report.arms[0]!.metrics['multiple_diseases']!.precision!;
  assert.ok(html.includes(`>${prec.mean!.toFixed(3)}</td>`));
  assert.match(html, /class="num tone-(up|down)"/);
  assert.match(html, /<td class="tone-fail">FAIL<\/td>/);
  assert.match(html, /<td class="tone-pass">pass<\/td>/);
  for (const id of ['findings', 'data', 'comparison', 'arms', 'gates', 'verification', 'drift', 'timings', 'config']) assert.ok(html.includes(`<section id="${id}">`), id);
  assert.match(html, /<details><summary>resolved configuration/);
});

test('renderReportHtml: a missing image is an error that names it', async () => {
  const broken = sampleStudyReport({ images: [...images, { path: 'images/not-there.png', caption: 'gone', section: 'drift' }] });
  const err = await renderReportHtml(broken, { baseDir: dir }).then(() => null, (e: Error) => e);
  assert.ok(err, 'expected a rejection');
  assert.match(err!.message, /images\/not-there\.png/);
  assert.match(err!.message, /not found/);
});

test('jsonForScript: no "</script>", "<!--" or line separators survive, and it parses back', () => {
  const v = { s: HOSTILE, t: '<!-- <script>', u: 'a\u2028b\u2029c & >' };
  const j = jsonForScript(v);
  assert.not.match(j, /<|>|\u2028|\u2029/);
  assert.equal(JSON.parse(j), v);
});

test('writeReportHtml: atomic, next to its images, no temporary file left', async () => {
  const path = join(dir, 'report.html');
  await writeReportHtml(path, report);
  assert.ok(readFileSync(path, 'utf8').startsWith('<!doctype html>'));
  assert.equal(readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
});

test('renderReportMarkdown: the same tables, image links, bold intervals that exclude 0', () => {
  const md = renderReportMarkdown(report);
  assert.match(md, /^# Synthetic rare-class images/);
  assert.match(md, /\| arm \| multiple_diseases recall \| multiple_diseases precision \| multiple_diseases F1 \| multiple_diseases AUC \| balanced accuracy \| mean AUC \|/);
  assert.match(md, /### Paired difference vs control/);
  assert.match(md, /\*\*[+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]\*\*/);
  assert.ok(md.includes('![Training images per class (seed 0)](images/leaves.png)'));
  assert.ok(md.includes('](images/synthetic%20grid.png)'), 'a path with a space stays one link');
  assert.ok(md.includes('[seed 0](arms/baseline/seed-0/predictions.csv)'));
  assert.match(md, /\| vae \| recon_accuracy_drop\.multiple_diseases \| 1 \| 0\.062 \| ≤ 0\.050 \| \*\*FAIL\*\* \|/);
  assert.ok(md.includes('a red car \\</script\\>'), 'markup in text is escaped');
  assert.not.match(md.replace(/```json[\s\S]*?```/, ''), /(^|[^\\])<\/?script/, 'no unescaped tag outside the JSON code block');
  assert.not.match(md, /[\u2028\u2029]/);
  // every table row has as many cells as its header
  for (const block of md.split('\n\n').filter((b) => b.startsWith('| '))) {
    const cells = (l: string) => l.replace(/\\\|/g, '').split('|').length;
    const lines = block.split('\n');
    for (const l of lines) assert.is(cells(l), cells(lines[0]!), l);
  }
});

/** A report from a run that stopped early: no gates, drift, images or findings, one arm with null metrics. */
function bareReport() {
  const r = sampleStudyReport();
  const none = { mean: null, ci95: null, per_seed: [null, null] };
  return {
    ...r, gates: [], drift: [], images: [], findings: [], timings: [], instance_ids: {},
    verification: { per_seed: [], detail: '' },
    arms: [{ ...r.arms[0]!, metrics: { multiple_diseases: { recall: none } }, diff_vs_baseline: {}, confusion: [] }],
  };
}

test('a report with nothing optional renders, and says what is missing', async () => {
  const bare = bareReport();
  assert.equal(reportCharts(bare).map((c) => c.name), []);
  const html = await renderReportHtml(bare, { baseDir: dir });
  assert.match(html, /No gates were recorded/);
  assert.match(html, /No drift was measured/);
  assert.not.match(html, /data-chart=/);
  const md = renderReportMarkdown(bare);
  assert.match(md, /No findings were recorded/);
});

const chromiumMissing = `Chromium not found (${process.env['FOLIAR_CHROMIUM'] ?? '/usr/bin/chromium'}; Debian: apt-get install chromium, or scripts/setup.sh)`;

test('report.html in headless Chromium: charts drawn, images decoded, no errors, offline', async () => {
  // a failure instead where CI or FOLIAR_REQUIRE_BROWSER=1 require the browser check
  if (!chromiumPath()) skip(chromiumMissing, 'browser');
  const path = join(dir, 'report.html');
  await writeReportHtml(path, report);
  const screenshot = process.env['FOLIAR_REPORT_SCREENSHOT'];
  const r = await checkReportInBrowser(path, { timeoutMs: 30_000, ...(screenshot ? { screenshot } : {}) });
  assert.equal(r.errors, []);
  assert.is(r.charts, EXPECTED_CHARTS.length);
  assert.is(r.images, 2);
  assert.equal(r.warnings, [], 'the chart specs draw without Vega-Lite warnings');
  assert.ok(existsSync(path));
});

test('the browser check catches a broken chart and an external image', async () => {
  if (!chromiumPath()) skip(chromiumMissing, 'browser');
  const html = (await renderReportHtml(report, { baseDir: dir }))
    .replace('data-chart="gates"', 'data-chart="no_such_chart"')
    .replace('</main>', '<img class="report-image" alt="external" src="http://192.0.2.1/x.png"></main>');
  const path = join(dir, 'broken.html');
  writeFileSync(path, html);
  const r = await checkReportInBrowser(path, { timeoutMs: 30_000 });
  assert.ok(r.errors.some((e) => /chart no_such_chart: no chart named no_such_chart/.test(e)), r.errors.join('\n'));
  assert.ok(r.errors.some((e) => /image "external"/.test(e)), r.errors.join('\n'));
  assert.ok(r.errors.some((e) => /192\.0\.2\.1/.test(e)), 'the blocked request is reported');
});

test.run();
