/**
 * foliar in a real browser: the demo page (examples/browser), bundled by esbuild from the sources,
 * served on localhost with its model files beside it, driven in Debian's headless Chromium (WebGPU on
 * SwiftShader here: 4-lane subgroups, no f16). Checks that the backend is WebGPU, matmul and conv
 * against the CPU backend at awkward sizes (and all-ones products, which a kernel written for more
 * subgroup lanes than the adapter has gets wrong), the MLP's loss falling, a tiny generation and a
 * classification equal to Node's, and takes a screenshot. Without Chromium, or with no WebGPU in it,
 * the tests skip, and fail where FOLIAR_REQUIRE_BROWSER=1 (CI).
 */
import { test, skip } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, cpSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { decodeImage } from '@foliar/data';
import { StableDiffusionPipeline, tensorToImages } from '@foliar/diffusion';
import { loadTrainedModel, classifyImages } from '@foliar/classifier';
import { buildBrowser, prepareModels, serveStatic, chromiumPath, launchChromium, DIST } from '../../examples/browser/harness.js';

const site = mkdtempSync(join(tmpdir(), 'foliar-browser-'));
let server: Awaited<ReturnType<typeof serveStatic>> | null = null;
let browser: Awaited<ReturnType<typeof launchChromium>> | null = null;
let page: import('playwright-core').Page | null = null;
const pageErrors: string[] = [];
let unavailable: string | null = null;
const GEN = { prompt: 'a leaf with rust', steps: 2, seed: 3, size: 32, guidance: 1 };

test.after(async () => {
  await browser?.close();
  await server?.close();
  rmSync(site, { recursive: true, force: true });
});

let failed: Error | null = null;

/** `p`, or a failure after `s` seconds: a kernel that never finishes (a lost device) must fail the test, not hang it. */
async function within<T>(s: number, what: string, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer from the page after ${s} s (a kernel that never finishes, a lost device?)${pageErrors.length ? `; page errors: ${pageErrors.join('; ')}` : ''}`)), s * 1000);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The page, loaded once; a skip (a failure in CI) when Chromium or its WebGPU is missing. */
async function demo(): Promise<import('playwright-core').Page> {
  if (page) return page;
  if (unavailable) skip(unavailable, 'browser');
  if (failed) throw failed;
  try {
    return await openDemo();
  } catch (e) {
    if (!unavailable) failed = e as Error; // set up once: later tests report the same failure at once
    throw e;
  }
}

async function openDemo(): Promise<import('playwright-core').Page> {
  const exe = chromiumPath();
  if (!exe) skip((unavailable = 'no Chromium (apt-get install chromium, or set FOLIAR_CHROMIUM)'), 'browser');
  buildBrowser();
  cpSync(DIST, site, { recursive: true });
  ft.setBackend(ft.cpuBackend());
  await prepareModels(join(site, 'models'));
  server = await serveStatic(site);
  browser = await launchChromium(exe!);
  const p = await browser.context.newPage();
  p.on('pageerror', (e) => pageErrors.push(e.message));
  p.on('console', (m) => {
    // a 404 answer is also reported here; only those of GET requests count (below)
    if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) pageErrors.push(m.text());
  });
  // HEAD requests that find nothing are how weight files are looked for (a URL cannot be listed)
  p.on('response', (r) => {
    if (r.status() >= 400 && r.request().method() !== 'HEAD') pageErrors.push(`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`);
  });
  // nothing may leave localhost
  await p.route((u) => u.hostname !== '127.0.0.1', (r) => r.abort());
  await p.goto(`${server.url}index.html?require-webgpu`);
  const hasGpu = await p.evaluate(() => 'gpu' in navigator);
  if (!hasGpu) skip((unavailable = 'Chromium exposes no navigator.gpu (--enable-unsafe-webgpu had no effect)'), 'browser');
  await p.waitForFunction(() => 'foliarDemo' in window, undefined, { timeout: 60_000 }).catch((e: Error) => {
    throw new Error(`the demo page did not start: ${pageErrors.join('; ') || e.message}`);
  });
  try {
    await within(120, 'init()', p.evaluate(() => window.foliarDemo.ready));
  } catch (e) {
    skip((unavailable = `no WebGPU adapter in Chromium: ${(e as Error).message.split('\n')[0]}`), 'browser');
  }
  return (page = p);
}

test('build:browser bundles every package with no Node built-in, no stub, no external', () => {
  const out = buildBrowser();
  for (const p of ['tensor', 'data', 'report', 'nn', 'diffusion', 'classifier']) {
    assert.match(out, new RegExp(`@foliar/${p}: \\d+ KiB`), `@foliar/${p} bundled`);
    const js = readFileSync(join(DIST, 'check', `${p}.js`), 'utf8');
    assert.not.match(js, /from\s*["'](node:|fs|path|crypto|zlib|sharp|webgpu|cli-progress)["']/, `${p}: no Node import left in the bundle`);
  }
  assert.ok(existsSync(join(DIST, 'app.js')) && existsSync(join(DIST, 'index.html')), 'demo page built');
});

test('the page runs on WebGPU (the adapter reported in one place), not the CPU fallback', async () => {
  const info = await (await demo()).evaluate(() => window.foliarDemo.ready);
  assert.is(info.backend, 'webgpu');
  assert.is(info.platform, 'browser');
  assert.ok(info.adapter, 'adapter info');
  const shown = await (await demo()).textContent('#backend');
  assert.match(shown ?? '', /^webgpu on /, 'the header says which backend and adapter');
  console.log(`  browser adapter: ${shown}`);
});

test('matmul and conv on the browser WebGPU match the CPU backend at awkward sizes; ones·ones = n', async () => {
  const r = await within(240, 'self-test', (await demo()).evaluate(() => window.foliarDemo.selfTest()));
  for (const o of r.ones) assert.ok(o.ok, `ones ${o.n}x${o.n} product gave ${o.min}..${o.max}, expected ${o.n}`);
  for (const c of r.comparisons) assert.ok(c.ok, `${c.what}: max |webgpu - cpu| ${c.maxAbsDiff} (scale ${c.maxAbs})`);
  assert.ok(r.comparisons.some((c) => c.what.startsWith('conv2d')), 'conv checked');
  assert.is(pageErrors.length, 0, pageErrors.join('\n'));
});

test("the README's MLP trains in the browser: its loss falls", async () => {
  const r = await within(240, 'MLP training', (await demo()).evaluate(() => window.foliarDemo.train(100)));
  const first = r.losses[0]![1], last = r.losses.at(-1)![1];
  assert.ok(Number.isFinite(last) && last < first * 0.9, `loss ${first} -> ${last}`);
});

test('a tiny pipeline folder served beside the page generates the image Node generates', async () => {
  const gen = GEN;
  const r = await within(300, 'generation', (await demo()).evaluate((g) => window.foliarDemo.generate(g), gen));
  assert.is(r.width, 32);
  // the same folder, seed and settings in Node, on the CPU reference backend
  ft.setBackend(ft.cpuBackend());
  const pipe = await StableDiffusionPipeline.fromPretrained(join(site, 'models/pipeline'));
  const out = await pipe.generate({ prompt: gen.prompt, numInferenceSteps: gen.steps, seed: gen.seed, guidanceScale: gen.guidance, height: gen.size, width: gen.size });
  const [img] = await tensorToImages(out.images);
  pipe.dispose();
  let maxDiff = 0, sum = 0;
  for (let i = 0; i < img!.data.length; i++) {
    const d = Math.abs(img!.data[i]! - r.pixels[i]!);
    maxDiff = Math.max(maxDiff, d);
    sum += d;
  }
  assert.is(r.pixels.length, img!.data.length);
  assert.ok(maxDiff <= 2 && sum / img!.data.length < 0.5, `browser vs Node pixels: max diff ${maxDiff}/255, mean ${(sum / img!.data.length).toFixed(3)}`);
});

test('a classifier file served beside the page classifies a leaf PNG as Node does', async () => {
  const p = await demo();
  const r = await within(120, 'classification', p.evaluate(async () => {
    const bytes = new Uint8Array(await (await fetch('models/sample-leaf.png')).arrayBuffer());
    return window.foliarDemo.classifyBytes(bytes, 'sample-leaf.png');
  }));
  ft.setBackend(ft.cpuBackend());
  const { model, info } = await loadTrainedModel(join(site, 'models/classifier.safetensors'));
  const img = await decodeImage(join(site, 'models/sample-leaf.png'), { size: info.imageSize });
  const [node] = await classifyImages(model, info, [img]);
  model.dispose();
  assert.is(r.classNames.length, 4);
  assert.ok(Math.abs(r.probs.reduce((a, b) => a + b, 0) - 1) < 1e-4, 'probabilities sum to 1');
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(r.probs[i]! - node!.probs[i]!) < 1e-3, `class ${i}: browser ${r.probs[i]} vs Node ${node!.probs[i]}`);
  assert.is(r.label, node!.label);
});

test('screenshot of the page after the runs', async () => {
  const p = await demo();
  const file = join(site, 'screenshot.png');
  await p.screenshot({ path: file, fullPage: true });
  const png = readFileSync(file);
  assert.ok(png.length > 10_000, `screenshot ${png.length} bytes`);
  const out = process.env['FOLIAR_BROWSER_SCREENSHOT'];
  if (out) writeFileSync(out, png);
  assert.is(pageErrors.length, 0, pageErrors.join('\n'));
});

test.run();
