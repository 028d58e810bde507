/**
 * Opens a report.html in headless Chromium (the system package, driven by playwright-core, which never
 * downloads a browser) and checks what a reader would see: every chart drawn, every image decoded, no
 * console or page error, no request leaving the file. Used by the renderer's test and on real study output.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

export interface BrowserCheckResult {
  /** Charts on the page (`.chart[data-chart]`). */
  charts: number;
  /** Images on the page (`img.report-image`). */
  images: number;
  /** Everything that went wrong, one line each; empty when the page is fine. */
  errors: string[];
  /** Console warnings (e.g. Vega-Lite dropping an encoding): not failures, but worth reading. */
  warnings: string[];
}

export interface BrowserCheckOptions {
  /** Chromium binary; default $FOLIAR_CHROMIUM or the first of /usr/bin/chromium, /usr/bin/chromium-browser. */
  executablePath?: string;
  /** How long the charts may take to render (default 30 s). */
  timeoutMs?: number;
  /** Also save a full-page screenshot (PNG) here. */
  screenshot?: string;
}

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/** The Chromium binary to use, or null when none is installed. */
export function chromiumPath(): string | null {
  const env = process.env['FOLIAR_CHROMIUM'];
  if (env) return existsSync(env) ? env : null;
  return CANDIDATES.find((p) => existsSync(p)) ?? null;
}

export async function checkReportInBrowser(htmlPath: string, opts: BrowserCheckOptions = {}): Promise<BrowserCheckResult> {
  const executablePath = opts.executablePath ?? chromiumPath();
  if (!executablePath) throw new Error(`checkReportInBrowser: no Chromium found (${CANDIDATES.join(', ')}; or set FOLIAR_CHROMIUM). On Debian: apt-get install chromium`);
  const timeout = opts.timeoutMs ?? 30_000;
  const errors: string[] = [];
  const warnings: string[] = [];
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console error: ${m.text()}`);
      else if (m.type() === 'warning') warnings.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    page.on('dialog', (d) => { errors.push(`dialog (${d.type()}): ${d.message()}`); void d.dismiss(); });
    page.on('request', (r) => {
      const url = r.url();
      if (!/^(file|data):/.test(url)) errors.push(`network request: ${url.slice(0, 200)}`);
    });
    // and make sure such a request cannot succeed, even on a machine that is online
    await page.route((url) => url.protocol !== 'file:' && url.protocol !== 'data:', (route) => route.abort());

    await page.goto(pathToFileURL(resolve(htmlPath)).href, { waitUntil: 'load', timeout });
    try {
      await page.waitForFunction(() => Array.from(document.querySelectorAll('.chart')).every((d) => d.hasAttribute('data-rendered') || d.hasAttribute('data-error')), undefined, { timeout });
    } catch {
      errors.push(`charts still not rendered after ${timeout} ms`);
    }
    const state = await page.evaluate(() => {
      const charts = Array.from(document.querySelectorAll<HTMLElement>('.chart[data-chart]')).map((d) => {
        const g = d.querySelector('svg, canvas');
        const box = g?.getBoundingClientRect();
        return {
          name: d.dataset['chart'] ?? '?',
          rendered: d.hasAttribute('data-rendered'),
          error: d.getAttribute('data-error'),
          graphic: g ? g.tagName.toLowerCase() : null,
          width: box?.width ?? 0,
          height: box?.height ?? 0,
        };
      });
      const images = Array.from(document.querySelectorAll<HTMLImageElement>('img.report-image')).map((i) => ({
        src: i.getAttribute('src')?.slice(0, 40) ?? '', alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth,
      }));
      return { charts, images, unmarked: document.querySelectorAll('.chart:not([data-chart])').length };
    });
    if (state.unmarked) errors.push(`${state.unmarked} .chart element(s) without data-chart`);
    for (const c of state.charts) {
      if (c.error !== null) errors.push(`chart ${c.name}: ${c.error}`);
      else if (!c.rendered) errors.push(`chart ${c.name}: not rendered`);
      else if (!c.graphic) errors.push(`chart ${c.name}: no svg or canvas`);
      else if (!(c.width > 0 && c.height > 0)) errors.push(`chart ${c.name}: ${c.graphic} is ${c.width}x${c.height}`);
    }
    for (const i of state.images) {
      if (!i.complete || !(i.naturalWidth > 0)) errors.push(`image "${i.alt}" (${i.src}…) did not decode`);
    }
    if (opts.screenshot) await page.screenshot({ path: opts.screenshot, fullPage: true });
    return { charts: state.charts.length, images: state.images.length, errors, warnings };
  } finally {
    await browser.close();
  }
}
