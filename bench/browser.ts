/**
 * foliar in Chromium next to foliar in Node, on this machine: matmul GFLOP/s and the tiny pipeline's
 * generation time (the demo page's own functions, examples/browser/src/checks.ts and main.ts, run in
 * headless Chromium's WebGPU and in Node's). Writes bench/results/latest-browser.md.
 *   npm run bench:browser   (node --conditions=foliar-source --import tsx bench/browser.ts)
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { StableDiffusionPipeline, tensorToImages } from '@foliar/diffusion';
import { buildBrowser, prepareModels, serveStatic, chromiumPath, launchChromium, DIST, ROOT } from '../examples/browser/harness.js';
import { matmulGflops } from '../examples/browser/src/checks.js';

const SIZES = [256, 512];
const GEN = { prompt: 'a leaf with rust', steps: 4, seed: 3, size: 64, guidance: 7.5 };
const RUNS = 2; // the first generation compiles the pipelines; the second is the warm figure

type Row = { what: string; node: string; browser: string };
const rows: Row[] = [];
const fmt = (v: number, d = 2) => v.toFixed(d);

await ft.init();
const nodeBackend = ft.describeBackend();
const site = mkdtempSync(join(tmpdir(), 'foliar-bench-browser-'));
buildBrowser();
cpSync(DIST, site, { recursive: true });
await prepareModels(join(site, 'models'));

// Node
const nodeMm: { n: number; gflops: number; ms: number }[] = [];
for (const n of SIZES) nodeMm.push(await matmulGflops(n, 5));
const nodeGen: number[] = [];
{
  const pipe = await StableDiffusionPipeline.fromPretrained(join(site, 'models/pipeline'));
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const r = await pipe.generate({ prompt: GEN.prompt, numInferenceSteps: GEN.steps, seed: GEN.seed, guidanceScale: GEN.guidance, height: GEN.size, width: GEN.size });
    await tensorToImages(r.images);
    nodeGen.push(performance.now() - t0);
    r.images.dispose();
    r.latents.dispose();
  }
  pipe.dispose();
}

// Chromium
const exe = chromiumPath();
if (!exe) throw new Error('no Chromium (apt-get install chromium)');
const server = await serveStatic(site);
const browser = await launchChromium(exe);
let browserBackend = '', browserMm: { n: number; gflops: number; ms: number }[] = [];
const browserGen: number[] = [];
let browserColdFirst = 0, tunedFamilies = 0;
try {
  const page = await browser.context.newPage();
  const open = async () => {
    await page.goto(`${server.url}index.html?require-webgpu`);
    await page.waitForFunction(() => 'foliarDemo' in window);
    await page.evaluate(() => window.foliarDemo.ready);
  };
  // first visit: no tuning cache yet, so each kernel family measures its variants in the background
  // while the first generation also compiles every pipeline; the choices land in localStorage
  await open();
  browserBackend = (await page.textContent('#backend')) ?? '';
  browserColdFirst = (await page.evaluate((g) => window.foliarDemo.generate(g), GEN)).ms;
  await page.evaluate(() => window.foliarDemo.matmulGflops(256, 1));
  // wait until the background measurements stop adding entries (at most 3 minutes)
  let last = -1;
  for (let waited = 0; waited < 180; waited += 15) {
    const n = await page.evaluate(() => Object.keys(JSON.parse(localStorage.getItem('foliar.tuning') ?? '{}')).length);
    if (n === last) break;
    last = n;
    await page.waitForTimeout(15_000);
  }
  tunedFamilies = last;
  // a later visit: variants from localStorage; the first generation still compiles the pipelines
  await open();
  browserMm = await page.evaluate(async (sizes) => {
    const out = [];
    for (const n of sizes) out.push(await window.foliarDemo.matmulGflops(n, 5));
    return out;
  }, SIZES);
  for (let i = 0; i < RUNS; i++) browserGen.push((await page.evaluate((g) => window.foliarDemo.generate(g), GEN)).ms);
} finally {
  await browser.close();
  await server.close();
  rmSync(site, { recursive: true, force: true });
}

SIZES.forEach((n, i) => rows.push({ what: `matmul ${n}×${n}×${n}, GFLOP/s (median of 5, with readback)`, node: fmt(nodeMm[i]!.gflops), browser: fmt(browserMm[i]!.gflops) }));
rows.push({ what: `tiny pipeline, ${GEN.size}×${GEN.size}, ${GEN.steps} DDIM steps, guidance ${GEN.guidance}: first run of a first visit (kernel variants measured meanwhile), s`, node: '–', browser: fmt(browserColdFirst / 1000) });
rows.push({ what: `the same: first run (pipelines compiled; variants from the tuning cache: a file in Node, localStorage in the browser), s`, node: fmt(nodeGen[0]! / 1000), browser: fmt(browserGen[0]! / 1000) });
rows.push({ what: `the same, second run (pipelines compiled), s`, node: fmt(nodeGen[1]! / 1000), browser: fmt(browserGen[1]! / 1000) });

const md = `# foliar in the browser next to Node (${new Date().toISOString().slice(0, 10)})

\`npm run bench:browser\` (bench/browser.ts): the demo page's own functions (examples/browser/src/checks.ts
\`matmulGflops\`, main.ts \`generate\`) in headless Chromium and the same code in Node, one after the other on
this machine (2 cores, no GPU; other jobs were running, so read the ratio rather than the absolute figures).

- Node: ${nodeBackend}
- Chromium: ${browserBackend} (${(await import('node:child_process')).execFileSync(exe, ['--version'], { encoding: 'utf8' }).trim()})

| case | Node | Chromium |
| --- | ---: | ---: |
${rows.map((r) => `| ${r.what} | ${r.node} | ${r.browser} |`).join('\n')}

Node read its kernel choices from its tuning cache file; the page, on its second visit, from the
${tunedFamilies} choices its first visit measured and kept in localStorage.
The tiny pipeline is createTinyPipeline's SD1.x-shaped folder (random weights, byte-level tokenizer),
served beside the page and loaded with \`StableDiffusionPipeline.fromPretrained(url)\`; a run is text
encoding, the UNet steps (batch 2 with guidance) and the VAE decode, image read back.
Chromium's WebGPU here is SwiftShader (4-lane subgroups, no f16), which Chromium uses where it finds
no GPU; it is never given Mesa's lavapipe, which Node's Dawn uses.
`;
writeFileSync(join(ROOT, 'bench/results/latest-browser.md'), md);
console.log(md);
ft.shutdown();
process.exit(0);
