/**
 * Which difference between originals and a VAE's reconstructions moves the gate classifier (issue 11,
 * docs/generator-recipe.md)? Scores seed 0's validation images of the quick profile's procedural
 * leaves as they are, reconstructed, blurred, with noise, and with low and high frequencies swapped
 * between original and reconstruction. Validation images only; nothing here is tuned on them.
 * It also prints the instrument's accuracy and mean AUC on all of seed 0's validation images.
 *
 *   node --conditions=foliar-source --import tsx scripts/vae-diagnosis.ts <vae-dir> <gate-classifier-checkpoint> [grid.png]
 *   node --conditions=foliar-source --import tsx scripts/vae-diagnosis.ts <vae-dir> --train-gate <run-dir> [grid.png]
 *   … --data <dataset folder>: the photographs' seed-0 split instead (as `npm run study -- --data`; with
 *   --train-gate <the study's --out> the gate classifier is the study's own seed-0 stage, trained or reused)
 *
 * --seed N: seed N's validation split (and with --train-gate its gate classifier stage); default 0.
 * Two rows are controls at the reconstruction's own error: each original with Gaussian noise of the same
 * mean squared error as its reconstruction, and each original blurred to its reconstruction's PSNR. A
 * class the instrument loses to those as often as to the VAE is lost to the instrument's fragility at
 * that error, not to what the VAE in particular removes.
 *
 * --train-gate uses the quick profile's gate classifier stage of that seed under <run-dir> (the folder of
 * `npm run pretrain-generator -- --out`), training it first when that stage is not cached there;
 * --gate '<json>' changes that profile's gate classifier settings (e.g. '{"degrade":{…}}').
 */
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import * as ft from '@foliar/tensor';
import { loadTrainedModel, classificationMetrics, type TrainConfig } from '@foliar/classifier';
import { loadVAE } from '@foliar/diffusion';
import type { RgbImage } from '@foliar/data';
import { studyProfile } from '../examples/study/profiles.js';
import { loadStudyData, studySplits, imagesOf } from '../examples/study/data.js';
import { classifierScorer, predictedClasses } from '../examples/study/features.js';
import { vaeGate } from '../examples/study/gates.js';
import { labelledGrid } from '../examples/study/grids.js';
import { StageRunner } from '../examples/study/stages.js';
import { trainGateClassifier } from '../examples/study/scorer.js';
import { classifierBaseConfig, splitStage } from '../examples/study/arms.js';

const { values: flags, positionals } = parseArgs({ options: { 'train-gate': { type: 'string' }, gate: { type: 'string' }, data: { type: 'string' }, seed: { type: 'string', default: '0' } }, allowPositionals: true });
const trainGate = flags['train-gate'];
const [vaeDir, ...rest] = positionals;
const checkpointArg = trainGate === undefined ? rest.shift() : undefined;
const gridFile = rest.shift();
if (!vaeDir || (trainGate === undefined && !checkpointArg) || rest.length) {
  console.error("usage: scripts/vae-diagnosis.ts <vae-dir> (<gate-classifier-checkpoint> | --train-gate <run-dir> [--gate '<json>']) [grid.png]");
  process.exit(2);
}
await ft.init();
const P = studyProfile('quick');
const data = await loadStudyData(P, flags.data ? resolve(flags.data) : null);
const seedArg = Number(flags.seed);
if (!P.seeds.includes(seedArg)) {
  console.error(`--seed ${flags.seed}: not a seed of the quick profile (${P.seeds.join(', ')})`);
  process.exit(2);
}
const split = studySplits(P, data.set)[P.seeds.indexOf(seedArg)]!;
let checkpoint = checkpointArg!;
if (trainGate !== undefined) {
  const runner = new StageRunner(trainGate);
  // --gate: settings merged over the profile's gateClassifier (candidates compared on validation only)
  // ("degrade": null removes the profile's degradations: the control without them)
  const gate = flags.gate === undefined ? {} : (JSON.parse(flags.gate) as Partial<TrainConfig> & { degrade?: TrainConfig['degrade'] | null });
  const { degrade, ...settings } = { ...P.gateClassifier, ...gate };
  const inst = await trainGateClassifier(runner, split.seed, classifierBaseConfig(P, data), degrade === null ? settings : { ...settings, degrade }, split, [splitStage(split, runner.runDir)]);
  checkpoint = inst.value.checkpoint;
  console.log(`gate classifier ${inst.key} (${inst.cached ? 'cached' : `trained in ${inst.value.seconds.toFixed(0)} s`}): ${checkpoint}`);
}
const items = split.val.items.slice(0, P.gates.vaeImages);
const names = [...data.set.classNames];
const scorer = classifierScorer((await loadTrainedModel(checkpoint)).model, { classNames: names, imageSize: P.imageSize });
{
  // the instrument's own quality on every validation image (the stage's figure is the trainer's, on the same images)
  const val = split.val.items;
  const m = classificationMetrics(val.map((it) => it.label), await scorer.probabilities(await imagesOf(data, val)), names.length);
  console.log(`instrument on ${val.length} validation images: accuracy ${m.accuracy.toFixed(3)}, mean AUC ${m.meanAuc?.toFixed(3) ?? '–'}`);
}
const vae = await loadVAE(vaeDir);
const g = await vaeGate({ vae, scorer, images: await imagesOf(data, items), labels: items.map((it) => it.label), seed: 0 });
vae.dispose();
const O = g.originals, R = g.reconstructions;

/** Separable Gaussian blur, edges clamped; float output. */
function blur(im: RgbImage, sigma: number): Float32Array {
  const r = Math.ceil(sigma * 3), k: number[] = [];
  for (let i = -r; i <= r; i++) k.push(Math.exp(-(i * i) / (2 * sigma * sigma)));
  const sum = k.reduce((a, b) => a + b, 0);
  const w = k.map((v) => v / sum);
  const { width: W, height: H } = im;
  const tmp = new Float32Array(W * H * 3), out = new Float32Array(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) {
    let a = 0;
    for (let i = -r; i <= r; i++) a += w[i + r]! * im.data[(y * W + Math.min(W - 1, Math.max(0, x + i))) * 3 + c]!;
    tmp[(y * W + x) * 3 + c] = a;
  }
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) {
    let a = 0;
    for (let i = -r; i <= r; i++) a += w[i + r]! * tmp[(Math.min(H - 1, Math.max(0, y + i)) * W + x) * 3 + c]!;
    out[(y * W + x) * 3 + c] = a;
  }
  return out;
}
const image = (like: RgbImage, f: (i: number) => number): RgbImage => ({ width: like.width, height: like.height, data: Uint8Array.from(like.data, (_, i) => Math.max(0, Math.min(255, Math.round(f(i))))) });

// a fixed-seed noise source, so the row is the same on every run
let s = 12345;
const uniform = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) - 0.5;

let originalPred: Int32Array | null = null;
/** Accuracy per class, and the images lost: right as originals, wrong here (the VAE gate's count). */
async function row(label: string, xs: RgbImage[]): Promise<void> {
  const pred = predictedClasses(await scorer.probabilities(xs), names.length);
  originalPred ??= pred;
  const cells = names.map((n, c) => {
    const idx = items.map((it, i) => (it.label === c ? i : -1)).filter((i) => i >= 0);
    const lost = idx.filter((i) => originalPred![i] === c && pred[i] !== c).length;
    return `${n} ${idx.length ? (idx.filter((i) => pred[i] === c).length / idx.length).toFixed(2) : '–'} (${lost} lost)`;
  });
  console.log(`| ${label} | ${cells.join(' | ')} |`);
}
const mse = (a: ArrayLike<number>, b: ArrayLike<number>) => { let e = 0; for (let i = 0; i < a.length; i++) e += (a[i]! - b[i]!) ** 2; return e / a.length; };
// standard normal draws from the fixed-seed source (Box-Muller)
const gauss = () => { const u = uniform() + 0.5 || 1e-12, v = uniform() + 0.5; return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v); };
/** The σ whose blur of `o` has (within 2%) the mean squared error `target` (bisection: error grows with σ). */
function blurToError(o: RgbImage, target: number): Float32Array {
  let lo = 0.05, hi = 6, best = blur(o, hi);
  for (let it = 0; it < 14; it++) {
    const mid = (lo + hi) / 2, b = blur(o, mid), e = mse(b, o.data);
    if (e > target) { hi = mid; best = b; } else lo = mid;
    if (Math.abs(e - target) < 0.02 * target) return b;
  }
  return best;
}
console.log(`PSNR ${g.psnr.toFixed(2)} dB over ${O.length} validation images; accuracy per class:`);
await row('originals', O);
await row('reconstructions', R);
for (const sigma of [1, 1.5, 2]) await row(`originals, blur σ ${sigma}`, O.map((o) => { const b = blur(o, sigma); return image(o, (i) => b[i]!); }));
await row("original's low-pass (σ 1) + reconstruction's high-pass", O.map((o, k) => { const b = blur(o, 1), rb = blur(R[k]!, 1); return image(o, (i) => b[i]! + R[k]!.data[i]! - rb[i]!); }));
await row("reconstruction's low-pass + original's high-pass", O.map((o, k) => { const b = blur(o, 1), rb = blur(R[k]!, 1); return image(o, (i) => rb[i]! + o.data[i]! - b[i]!); }));
await row('originals + uniform noise (std 4)', O.map((o) => image(o, (i) => o.data[i]! + uniform() * 13.86)));
await row("control: originals + Gaussian noise of the reconstruction's error", O.map((o, k) => { const sd = Math.sqrt(mse(R[k]!.data, o.data)); return image(o, (i) => o.data[i]! + sd * gauss()); }));
await row("control: originals blurred to the reconstruction's PSNR", O.map((o, k) => { const b = blurToError(o, mse(R[k]!.data, o.data)); return image(o, (i) => b[i]!); }));
if (gridFile) {
  const pick = (c: string) => items.map((it, i) => (names[it.label] === c ? i : -1)).filter((i) => i >= 0).slice(0, 4);
  const idx = [...pick('rust'), ...pick('scab')];
  labelledGrid([{ label: 'originals', images: idx.map((i) => O[i]!) }, { label: 'reconstructions', images: idx.map((i) => R[i]!) }], gridFile);
}
ft.shutdown();
