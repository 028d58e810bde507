/**
 * The Node side of the browser demo, shared by its scripts (prepare-models.ts, serve.ts), the
 * browser test (test/browser) and the browser benchmark (bench/browser.ts): building the bundle,
 * writing the model files the page loads, a static file server, and Debian's Chromium with WebGPU.
 */
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join, resolve, sep } from 'node:path';
import * as ft from '@foliar/tensor';
import { AdamW } from '@foliar/nn';
import { encodePng } from '@foliar/report';
import { createTinyPipeline } from '@foliar/diffusion';
import { buildModel, saveModelFile, renderLeaf, LEAF_CLASSES, normalizeToChw, type LeafLabel } from '@foliar/classifier';

export const ROOT = resolve(import.meta.dirname, '../..');
export const DIST = join(ROOT, 'examples/browser/dist');

/** Runs scripts/build-browser.mjs (esbuild); throws with its report when a package does not bundle. */
export function buildBrowser(): string {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/build-browser.mjs')], { cwd: ROOT, encoding: 'utf8' });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.status !== 0) throw new Error(`browser build failed:\n${out}`);
  return out;
}

/** The classifier the page loads: input size and class names. */
export const DEMO_CLASSIFIER = { arch: 'tiny' as const, imageSize: 32, classNames: [...LEAF_CLASSES] };
/** The tiny pipeline's seed (createTinyPipeline: SD1.x-shaped, random weights, byte-level tokenizer). */
export const DEMO_PIPELINE_SEED = 0;

/** A procedural leaf as PNG bytes, at the classifier's size. */
export function sampleLeafPng(label: LeafLabel = 'rust', seed = 7, size = DEMO_CLASSIFIER.imageSize): Uint8Array {
  return encodePng(renderLeaf({ label, seed, width: size, height: size }));
}

/**
 * Writes `<dir>/classifier.safetensors` (the tiny ResNet, trained for `trainSteps` AdamW steps on
 * procedural leaves when > 0, else as initialised), `<dir>/pipeline/` (a tiny diffusers folder) and
 * `<dir>/sample-leaf.png`. Uses the current backend (call ft.init first for the GPU).
 */
export async function prepareModels(dir: string, opts: { trainSteps?: number; log?: (s: string) => void } = {}): Promise<void> {
  mkdirSync(dir, { recursive: true });
  ft.manualSeed(0);
  const { arch, imageSize: S, classNames } = DEMO_CLASSIFIER;
  const model = buildModel(arch, classNames.length);
  const steps = opts.trainSteps ?? 0;
  if (steps > 0) {
    const opt = new AdamW(model.parameters(), { lr: 3e-3, weightDecay: 1e-4 });
    const B = 32;
    model.train();
    for (let step = 0; step < steps; step++) {
      const x = new Float32Array(B * 3 * S * S);
      const y = new Int32Array(B);
      for (let i = 0; i < B; i++) {
        const c = (step * B + i) % classNames.length;
        y[i] = c;
        normalizeToChw(renderLeaf({ label: classNames[c] as LeafLabel, seed: 1000 + step * B + i, width: S, height: S }), x, i * 3 * S * S);
      }
      const loss = ft.tidy(() => {
        const l = ft.crossEntropy(model.forward(ft.tensor(x, { shape: [B, 3, S, S] })), ft.tensor(y));
        l.backward();
        return l;
      });
      opt.step();
      opt.zeroGrad();
      if (step % 20 === 0 || step === steps - 1) opts.log?.(`classifier step ${step}: loss ${(await loss.item()).toFixed(4)}`);
      loss.dispose();
    }
    model.eval();
  }
  await saveModelFile(join(dir, 'classifier.safetensors'), model, { arch, classNames, imageSize: S });
  model.dispose();
  const pipe = createTinyPipeline({ seed: DEMO_PIPELINE_SEED });
  await pipe.save(join(dir, 'pipeline'));
  pipe.dispose();
  writeFileSync(join(dir, 'sample-leaf.png'), sampleLeafPng());
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.map': 'application/json',
  '.json': 'application/json', '.txt': 'text/plain; charset=utf-8', '.png': 'image/png', '.safetensors': 'application/octet-stream',
};

/** Serves `root` on 127.0.0.1 (GET and HEAD, no listing, nothing outside root). */
export async function serveStatic(root: string, port = 0): Promise<{ url: string; server: Server; close: () => Promise<void> }> {
  const base = resolve(root);
  const server = createServer((req, res) => {
    void (async () => {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      let file = resolve(base, `.${path}`);
      if (file !== base && !file.startsWith(base + sep)) return void res.writeHead(403).end();
      try {
        if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
        const body = await readFile(file);
        res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-length': body.length, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      } catch {
        res.writeHead(404).end();
      }
    })();
  });
  await new Promise<void>((ok) => server.listen(port, '127.0.0.1', ok));
  const addr = server.address() as { port: number };
  return { url: `http://127.0.0.1:${addr.port}/`, server, close: () => new Promise((ok) => server.close(() => ok())) };
}

const CHROMIUMS = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/** The Chromium binary: $FOLIAR_CHROMIUM or the first installed of the usual paths; null when none. */
export function chromiumPath(): string | null {
  const env = process.env['FOLIAR_CHROMIUM'];
  if (env) return existsSync(env) ? env : null;
  return CHROMIUMS.find((p) => existsSync(p)) ?? null;
}

/**
 * Headless Chromium with WebGPU (SwiftShader on a machine without a GPU), in a fresh profile, with
 * the background services that would reach the network turned off. Close with the returned close().
 */
export async function launchChromium(executablePath: string) {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'foliar-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--enable-unsafe-webgpu', '--no-sandbox', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic', '--disable-dev-shm-usage',
    ],
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
