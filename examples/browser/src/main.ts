/**
 * The demo page (examples/browser/index.html): foliar on the page's WebGPU adapter. Classifies a
 * dropped leaf photo with a trained classifier file, generates an image with a pipeline folder, both
 * served beside the page (models/), trains the README's MLP with a live loss chart, and runs a
 * self-test against the CPU backend. Everything it does is also on `window.foliarDemo`, which
 * test/browser drives.
 */
import * as ft from '@foliar/tensor';
import { decodeImage, type RgbImage } from '@foliar/data';
import { lineChart } from '@foliar/report';
import { StableDiffusionPipeline, tensorToImages } from '@foliar/diffusion';
import { fetchModel, classifyImages, type Classifier, type ModelInfo } from '@foliar/classifier';
import { compareMatmul, compareConv, onesProduct, trainMlp, matmulGflops, type Comparison } from './checks.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const MODELS = new URL(params.get('models') ?? 'models/', location.href).href;

function status(id: string, text: string, error = false): void {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle('error', error);
}

function drawRgb(canvas: HTMLCanvasElement, img: RgbImage): void {
  canvas.width = img.width;
  canvas.height = img.height;
  const c = img.channels ?? 3;
  const rgba = new Uint8ClampedArray(img.width * img.height * 4);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += c) {
    rgba[i] = img.data[j]!;
    rgba[i + 1] = img.data[j + 1]!;
    rgba[i + 2] = img.data[j + 2]!;
    rgba[i + 3] = c === 4 ? img.data[j + 3]! : 255;
  }
  canvas.getContext('2d')!.putImageData(new ImageData(rgba, img.width, img.height), 0, 0);
}

// ---- backend ----
const ready = (async () => {
  // ?require-webgpu: no CPU fallback (what the browser test asks for)
  await ft.init({ requireWebGPU: params.has('require-webgpu') });
  const info = ft.backendInfo();
  const el = $('backend');
  el.textContent = ft.describeBackend(info);
  el.classList.toggle('cpu', info.backend === 'cpu');
  return info;
})();
ready.catch((e: Error) => {
  $('backend').textContent = `no backend: ${e.message}`;
  $('backend').classList.add('cpu');
});

// ---- classify ----
let classifier: Promise<{ model: Classifier; info: ModelInfo }> | null = null;
const loadClassifier = () => (classifier ??= ready.then(() => fetchModel(`${MODELS}classifier.safetensors`)));

async function classifyBytes(bytes: Uint8Array, name: string): Promise<{ label: string; probs: number[]; classNames: string[] }> {
  const { model, info } = await loadClassifier();
  const img = await decodeImage(bytes, { size: info.imageSize, mode: 'cover', name });
  drawRgb($('preview'), img);
  const [r] = await classifyImages(model, info, [img]);
  $('bars').innerHTML = info.classNames
    .map((c, i) => `<div class="bar"><span>${c}</span><div style="width:${Math.round(r!.probs[i]! * 200)}px"></div><span>${(r!.probs[i]! * 100).toFixed(1)}%</span></div>`)
    .join('');
  status('classify-status', `${name}: ${r!.label} (${info.arch}, ${info.imageSize}x${info.imageSize}, ${info.classNames.length} classes)`);
  return { label: r!.label, probs: r!.probs, classNames: info.classNames };
}

async function onFile(file: File): Promise<void> {
  try {
    status('classify-status', `classifying ${file.name}…`);
    await classifyBytes(new Uint8Array(await file.arrayBuffer()), file.name);
  } catch (e) {
    status('classify-status', (e as Error).message, true);
  }
}
const drop = $('drop');
drop.addEventListener('click', () => $<HTMLInputElement>('file').click());
$<HTMLInputElement>('file').addEventListener('change', (ev) => {
  const f = (ev.target as HTMLInputElement).files?.[0];
  if (f) void onFile(f);
});
drop.addEventListener('dragover', (ev) => {
  ev.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (ev) => {
  ev.preventDefault();
  drop.classList.remove('over');
  const f = ev.dataTransfer?.files[0];
  if (f) void onFile(f);
});

// ---- generate ----
let pipeline: Promise<StableDiffusionPipeline> | null = null;
const loadPipeline = () => (pipeline ??= ready.then(() => StableDiffusionPipeline.fromPretrained(`${MODELS}pipeline`)));

async function generate(o: { prompt: string; steps?: number; seed?: number; size?: number; guidance?: number }): Promise<{ ms: number; loadMs: number; width: number; height: number; pixels: number[] }> {
  const t0 = performance.now();
  const pipe = await loadPipeline();
  const t1 = performance.now();
  status('generate-status', `generating (${o.steps ?? 4} steps)…`);
  const r = await pipe.generate({
    prompt: o.prompt, numInferenceSteps: o.steps ?? 4, seed: o.seed ?? 0, guidanceScale: o.guidance ?? 1,
    ...(o.size ? { height: o.size, width: o.size } : {}),
    onStep: ({ step, total }) => status('generate-status', `step ${step + 1}/${total}`),
  });
  const [img] = await tensorToImages(r.images);
  await ft.getBackend().sync();
  const ms = performance.now() - t1;
  r.images.dispose();
  r.latents.dispose();
  drawRgb($('generated'), img!);
  status('generate-status', `"${o.prompt}": ${img!.width}x${img!.height} in ${(ms / 1000).toFixed(2)} s (+ ${((t1 - t0) / 1000).toFixed(2)} s loading models/pipeline/)`);
  return { ms, loadMs: t1 - t0, width: img!.width, height: img!.height, pixels: Array.from(img!.data) };
}
$('gen').addEventListener('click', () => {
  const btn = $<HTMLButtonElement>('gen');
  btn.disabled = true;
  generate({ prompt: $<HTMLInputElement>('prompt').value })
    .catch((e: Error) => status('generate-status', e.message, true))
    .finally(() => (btn.disabled = false));
});

// ---- train ----
function drawChart(points: [number, number][]): void {
  const canvas = $<HTMLCanvasElement>('chart');
  const chart = lineChart({ series: [{ name: 'loss', points }], title: 'MLP training loss (spiral, AdamW)', xLabel: 'step', yLabel: 'cross-entropy', width: canvas.width, height: canvas.height });
  drawRgb(canvas, chart);
}

async function train(steps = 200): Promise<{ losses: [number, number][]; ms: number; accuracy: number }> {
  await ready;
  const points: [number, number][] = [];
  const r = await trainMlp({
    steps, every: 5,
    onLoss: async (step, loss) => {
      points.push([step, loss]);
      drawChart(points);
      status('train-status', `step ${step}: loss ${loss.toFixed(4)}`);
      await new Promise((res) => requestAnimationFrame(() => res(null))); // let the chart paint
    },
  });
  status('train-status', `${steps} steps in ${(r.ms / 1000).toFixed(1)} s: loss ${r.losses[0]![1].toFixed(3)} → ${r.losses.at(-1)![1].toFixed(3)}, train accuracy ${(r.accuracy * 100).toFixed(1)}%`);
  return r;
}
$('train-btn').addEventListener('click', () => {
  const btn = $<HTMLButtonElement>('train-btn');
  btn.disabled = true;
  train().catch((e: Error) => status('train-status', e.message, true)).finally(() => (btn.disabled = false));
});

// ---- self-test ----
const MATMUL_SIZES: [number, number, number][] = [[33, 33, 33], [257, 129, 65], [1, 257, 33], [100, 7, 257]];
const ONES_SIZES = [8, 33, 64, 257];
const CONVS = [
  { n: 1, c: 3, h: 33, w: 33, k: 8, kernel: 3, padding: 1 },
  { n: 2, c: 5, h: 17, w: 31, k: 7, kernel: 3, stride: 2, padding: 1 },
  { n: 1, c: 16, h: 9, w: 9, k: 33, kernel: 1 },
];

async function selfTest(): Promise<{ backend: ft.BackendInfo; comparisons: Comparison[]; ones: Awaited<ReturnType<typeof onesProduct>>[] }> {
  const backend = await ready;
  const comparisons: Comparison[] = [];
  const ones: Awaited<ReturnType<typeof onesProduct>>[] = [];
  const table = $('selftest-table');
  table.innerHTML = '<tr><th>check</th><th>max |webgpu − cpu|</th><th></th></tr>';
  const row = (what: string, diff: string, ok: boolean) => table.insertAdjacentHTML('beforeend', `<tr><td>${what}</td><td>${diff}</td><td>${ok ? '✓' : '✗ FAIL'}</td></tr>`);
  for (const n of ONES_SIZES) {
    const r = await onesProduct(n);
    ones.push(r);
    row(`ones ${n}x${n} · ones = ${n}`, `min ${r.min}, max ${r.max}`, r.ok);
  }
  for (const [m, k, n] of MATMUL_SIZES) {
    const r = await compareMatmul(m, k, n);
    comparisons.push(r);
    row(r.what, r.maxAbsDiff.toExponential(2), r.ok);
  }
  for (const c of CONVS) {
    const r = await compareConv(c);
    comparisons.push(r);
    row(r.what, r.maxAbsDiff.toExponential(2), r.ok);
  }
  const bad = comparisons.filter((c) => !c.ok).length + ones.filter((o) => !o.ok).length;
  status('selftest-status', bad ? `${bad} check(s) failed` : 'all checks pass', bad > 0);
  return { backend, comparisons, ones };
}
$('selftest-btn').addEventListener('click', () => {
  selfTest().catch((e: Error) => status('selftest-status', e.message, true));
});

declare global {
  interface Window {
    foliarDemo: typeof api;
  }
}
const api = { ready, selfTest, train, generate, classifyBytes, matmulGflops, memory: () => ft.memory() };
window.foliarDemo = api;
