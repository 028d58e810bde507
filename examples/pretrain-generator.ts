/**
 * Trains the study's generator for the procedural leaves once — the VAE, then the base text-to-image
 * model, exactly the study's pretraining stages (examples/study/pretrain.ts: a pool rendered from a
 * generator seed the study never uses, never the rare class) — and exports it as the embedded default
 * (models/procedural-generator: f16 weights and a manifest naming this command, the profile, the adapter
 * and the date). Profiles with `embeddedGenerator` (quick) then start from it, as the study started from
 * a downloaded Stable Diffusion. Stages are cached and resumable under --out.
 *
 *   npm run pretrain-generator -- [--profile gpu64] [--out runs/study-gpu64] [--export models/procedural-generator]
 *        [--vae '{"latentChannels":16}'] [--base '{"steps":2000}'] [--vae-decoder '{"steps":800}'] [--stop-after vae|vae-decoder] [--gates] [--gates-seed 1] [--deadline 500] [--data <photographs>]
 *
 *   e.g. a perceptual term through a ResNet18 trained on the pretraining pool only:
 *        --vae '{"perceptualWeight":1,"perceptualLayers":["stem","layer1"],"perceptualClassifier":{"epochs":3}}'
 *
 * --vae / --base change the profile's recipe (the manifest records the recipe used); --vae-decoder adds a
 * decoder fine-tune after the base model (steps, and batch / lr defaulting to the VAE's; perceptualWeight /
 * perceptualLayers give the fine-tune its own perceptual term, e.g. ["stem","layer1","layer2"]): the encoder and
 * so the latents stay, the base model is not retrained, the generator decodes with the new decoder
 * (--stop-after vae-decoder trains it without the base model, e.g. beside it); --stop-after vae
 * trains only the VAE, so several recipes can be compared on their gate before a base model is trained
 * (scripts/gpu/generator-sweep.sh); --gates measures the issue-11 gates that need no DreamBooth (the VAE's
 * reconstruction gate, the base model's conditioning score) with seed 0's gate classifier, on seed 0's
 * validation images only, into <out>/generator-gates.json and two grids (--gates-seed <seed>: another seed of
 * the profile, its own gate classifier and validation images; the file keeps each seed's entries); --deadline stops training
 * (checkpoint written, nothing exported) that many seconds after the start; --gates-checkpoint
 * <base stage>/checkpoints/checkpoint-<step> trains nothing and measures the base model's conditioning
 * gate at that checkpoint (its EMA weights when the recipe keeps them) as stage base_model@<step>, with
 * conditioning-step-<step>.png (decoding with the recipe's fine-tuned decoder when it has one): a long run can be watched, or measured before it ends, from a second
 * process while it trains; with --export that checkpoint is exported as the generator (manifest: the command,
 * the checkpoint and its step), e.g. to tune DreamBooth on it with FOLIAR_EMBEDDED_GENERATOR.
 *
 * --data <dataset folder> pretrains on the photographs as `npm run study -- --data` does (the same pool, splits
 * and stage keys): with --out <the study's --out>, --gates / --gates-checkpoint measure the study's own
 * generator stages while the study runs.
 *
 * gpu64 (ten times quick's generator training) is sized for a machine with a GPU (scripts/gpu); the
 * profile exported must have the image size and latent layout of the profile that will use it.
 */
import { join, resolve } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as ft from '@foliar/tensor';
import { reportCliError, readCheckpointState } from '@foliar/nn';
import { loadTrainedModel, type ProtocolSplit } from '@foliar/classifier';
import type { RgbImage } from '@foliar/data';
import { loadVAE, loadTrainingCheckpoint, StableDiffusionPipeline } from '@foliar/diffusion';
import { studyProfile, type StudyProfile } from './study/profiles.js';
import { StageRunner, hashOf } from './study/stages.js';
import { loadStudyData, studySplits, imagesOf, itemsOf, type StudyData } from './study/data.js';
import { pretrainGenerator, pretrainPool, pretrainVAE, pretrainDecoder, perceptualRecipe, decoderPerceptualRecipe, promptWords, PERCEPTUAL_VAE_KEYS, type PretrainOptions } from './study/pretrain.js';
import { studyBasePipeline, studyBaseMethod } from './study/generator.js';
import { exportGenerator, embeddedGeneratorDir } from './study/embedded-generator.js';
import { classifierBaseConfig, splitStage } from './study/arms.js';
import { trainGateClassifier } from './study/scorer.js';
import { classifierScorer, type ImageScorer } from './study/features.js';
import { vaeGate, lostRows, conditioningGate, generatorFromPipeline } from './study/gates.js';
import { labelledGrid } from './study/grids.js';
import type { GateEntry } from './study/report-types.js';
import { writeFileAtomic } from '@foliar/tensor';

// optional VAE recipe keys, absent from the profiles' defaults; the perceptual ones: examples/study/pretrain.ts
const OPTIONAL_VAE: readonly string[] = ['cropSize', 'gradientWeight', 'channelsPerGroup', 'lowPassWeight', 'initialLogvar', ...PERCEPTUAL_VAE_KEYS];
const OPTIONAL_BASE: readonly string[] = ['emaDecay', 'wordTokens', 'genericEvery', 'emptyEvery', 'textTime', 'zeroSnr', 'snrGamma'];

/** A JSON object of profile overrides from the command line, keys checked against the profile's section. */
function overrides<K extends 'vae' | 'base'>(P: StudyProfile, key: K, json: string | undefined): void {
  if (!json) return;
  let o: unknown;
  try {
    o = JSON.parse(json);
  } catch (e) {
    throw new Error(`--${key}: not JSON (${(e as Error).message}): ${json}`);
  }
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new Error(`--${key}: expected a JSON object, got ${json}`);
  const section = P[key] as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(o)) {
    // optional knobs (cropSize, gradientWeight) are absent from the defaults but allowed
    const optional = key === 'vae' ? OPTIONAL_VAE : OPTIONAL_BASE;
    const known = k in section || optional.includes(k);
    if (!known) throw new Error(`--${key}: unknown setting "${k}" (settings: ${[...Object.keys(section), ...optional].join(', ')})`);
    section[k] = v;
  }
}

/**
 * --vae-decoder: the decoder fine-tune's steps (required), batch and lr (default: the VAE's), and optionally
 * its own perceptualWeight / perceptualLayers (default: the VAE's term; checked by perceptualRecipe).
 */
function decoderSettings(P: StudyProfile, json: string): NonNullable<StudyProfile['vaeDecoder']> {
  let o: unknown;
  try {
    o = JSON.parse(json);
  } catch (e) {
    throw new Error(`--vae-decoder: not JSON (${(e as Error).message}): ${json}`);
  }
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new Error(`--vae-decoder: expected a JSON object, got ${json}`);
  const d: Record<string, unknown> = { batch: P.vae.batch, lr: P.vae.lr, ...P.vaeDecoder, ...o };
  const keys = ['steps', 'batch', 'lr', 'perceptualWeight', 'perceptualLayers'];
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw new Error(`--vae-decoder: unknown setting "${k}" (settings: ${keys.join(', ')})`);
  const int = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v > 0;
  if (!int(d.steps)) throw new Error(`--vae-decoder: "steps" must be a positive integer, got ${JSON.stringify(d.steps)}`);
  if (!int(d.batch)) throw new Error(`--vae-decoder: "batch" must be a positive integer, got ${JSON.stringify(d.batch)}`);
  if (!(typeof d.lr === 'number' && d.lr > 0 && Number.isFinite(d.lr))) throw new Error(`--vae-decoder: "lr" must be a positive number, got ${JSON.stringify(d.lr)}`);
  const own = Object.fromEntries(['perceptualWeight', 'perceptualLayers'].filter((k) => d[k] !== undefined).map((k) => [k, d[k]]));
  const settings = { steps: d.steps as number, batch: d.batch as number, lr: d.lr, ...own } as NonNullable<StudyProfile['vaeDecoder']>;
  if (Object.keys(own).length) {
    // the same checks as the VAE's own term; the decoder's term needs the pool classifier, so the VAE must have one
    if (!perceptualRecipe(P)) throw new Error('--vae-decoder: perceptualWeight / perceptualLayers need a VAE recipe with a perceptual term (its pool classifier)');
    decoderPerceptualRecipe({ ...P, vaeDecoder: settings });
  }
  return settings;
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      profile: { type: 'string', default: 'gpu64' },
      out: { type: 'string' },
      export: { type: 'string' },
      class: { type: 'string', default: 'multiple_diseases' },
      'class-prompt': { type: 'string', default: 'a photo of a leaf' },
      vae: { type: 'string' },
      base: { type: 'string' },
      'vae-decoder': { type: 'string' },
      'stop-after': { type: 'string' },
      gates: { type: 'boolean', default: false },
      deadline: { type: 'string' },
      'gates-checkpoint': { type: 'string' },
      'gates-seed': { type: 'string' },
      data: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (args.help) {
    console.log('usage: npm run pretrain-generator -- [--profile gpu64] [--out runs/study-<profile>] [--export models/procedural-generator]');
    return;
  }
  // the profile trains its own generator here, whatever it would do in the study
  const P = { ...studyProfile(args.profile), embeddedGenerator: false };
  overrides(P, 'vae', args.vae);
  overrides(P, 'base', args.base);
  const gatesIndex = gatesSeedIndex(P, args['gates-seed']);
  if (args['vae-decoder']) P.vaeDecoder = decoderSettings(P, args['vae-decoder']);
  perceptualRecipe(P); // checks the perceptual keys now, not after the gate classifier has trained
  const stopAfter = args['stop-after'];
  if (stopAfter !== undefined && stopAfter !== 'vae' && stopAfter !== 'vae-decoder') throw new Error(`--stop-after: "vae" or "vae-decoder", got "${stopAfter}"`);
  if (stopAfter === 'vae-decoder' && !P.vaeDecoder) throw new Error('--stop-after vae-decoder needs --vae-decoder (the fine-tune to run)');
  const stop = new AbortController();
  if (args.deadline !== undefined) {
    const s = Number(args.deadline);
    if (!(s > 0)) throw new Error(`--deadline: seconds > 0, got "${args.deadline}"`);
    setTimeout(() => stop.abort(), s * 1000).unref();
  }
  const out = resolve(args.out ?? join('runs', `study-${P.name}`));
  const backend = await ft.init();
  console.log(`generator pretraining, profile ${P.name} (VAE ${JSON.stringify(P.vae)}; base ${JSON.stringify(P.base)}), on ${backend.describe()}; stages in ${out}`);
  // --data: the photographs (as `npm run study -- --data`): the pool, split and stage keys are the study's own,
  // so --out <the study's run folder> reuses (or trains) its generator stages
  const dataDir = args.data ? resolve(args.data) : null;
  const data = await loadStudyData(P, dataDir);
  const common = data.set.classNames.filter((c) => c !== args.class);
  const prompt = (c: string) => `a photo of a ${c.replace(/_/g, ' ')} leaf`;
  const runner = new StageRunner(out);
  const splits = studySplits(P, data.set);
  const opts: PretrainOptions = { runner, profile: P, data, splits, photographs: dataDir !== null, common, classPrompt: args['class-prompt']!, promptOf: prompt, signal: stop.signal };
  const gatesFile = join(out, 'generator-gates.json');
  const gates: GateEntry[] = existsSync(gatesFile) ? (JSON.parse(readFileSync(gatesFile, 'utf8')) as { gates: GateEntry[] }).gates : [];
  const saveGates = async (stage: string, entries: GateEntry[]) => {
    // one seed's stage replaces that seed's entries of the stage only (--gates-seed)
    const kept = gates.filter((g) => g.stage !== stage || g.seed !== split.seed);
    gates.length = 0;
    gates.push(...kept, ...entries);
    await writeFileAtomic(gatesFile, JSON.stringify({ profile: P.name, vae: P.vae, base: P.base, gates }, null, 2) + '\n');
  };
  // the gates' instrument: seed 0's (or --gates-seed's) class-balanced classifier (trained on that seed's
  // training split, chosen on its validation)
  let scorer: ImageScorer | null = null;
  const split = splits[gatesIndex]!;
  if (args.gates || args['gates-checkpoint']) {
    const inst = await trainGateClassifier(runner, split.seed, classifierBaseConfig(P, data), P.gateClassifier, split, [splitStage(split, runner.runDir)], stop.signal);
    scorer = classifierScorer((await loadTrainedModel(inst.value.checkpoint)).model, { classNames: [...data.set.classNames], imageSize: P.imageSize });
  }
  if (stopAfter) {
    const pool = await pretrainPool(opts);
    let vae = await pretrainVAE(opts, pool);
    // the decoder fine-tune does not depend on the base model: it can train beside it
    if (stopAfter === 'vae-decoder') vae = await pretrainDecoder(opts, pool, vae);
    if (scorer) await measureVae(P, vae.value.model, scorer, data, split, out, saveGates);
    console.log(`VAE trained (${vae.value.steps} steps, final loss ${vae.value.finalLoss?.toFixed(4)}): ${vae.value.model}`);
    ft.shutdown();
    return;
  }
  /** The conditioning gate of a base-model pipeline (disposed after), its grid beside real images. */
  const measureConditioning = async (pipe: StableDiffusionPipeline, stage: string, grid: string): Promise<void> => {
    const gen = generatorFromPipeline(pipe, { steps: P.gates.steps, guidance: P.synthetic.guidance, batchSize: P.synthetic.batch, height: P.imageSize, width: P.imageSize });
    const samples = new Map<string, RgbImage[]>();
    try {
      const entries = await conditioningGate({ generate: gen.generate, scorer: scorer!, prompts: Object.fromEntries(common.map((c) => [c, prompt(c)])), samples: P.gates.conditioningSamples, seed: split.seed, stage, onSamples: (c, imgs) => samples.set(c, imgs.slice(0, 8)) });
      await saveGates(stage, entries);
      for (const e of entries) console.log(`  ${e.name} = ${e.value?.toFixed(3)}`);
    } finally {
      gen.dispose();
    }
    const rows: { label: string; images: RgbImage[] }[] = [];
    for (const c of common) rows.push({ label: `real ${c}`, images: await imagesOf(data, itemsOf(split.train, c).slice(0, 8)) }, { label: `base: ${prompt(c)}`, images: samples.get(c) ?? [] });
    labelledGrid(rows, join(out, gridName(P, split, grid)));
  };
  const at = args['gates-checkpoint'];
  if (at !== undefined) {
    // nothing trains: the VAE stage must be cached already (the base stage's run trained it)
    const pool = await pretrainPool(opts);
    // the generator's own decoder when the recipe fine-tunes one (the latents are the VAE's either way)
    const trainedVae = await pretrainVAE(opts, pool);
    const vae = P.vaeDecoder ? await pretrainDecoder(opts, pool, trainedVae) : trainedVae;
    const words = P.base.wordTokens ? promptWords(opts.classPrompt, data.set.classNames.map(prompt)) : undefined;
    const state = await readCheckpointState(resolve(at));
    const step = state.step;
    const pipe = await studyBasePipeline(P, vae.value.model, 0, words);
    if (P.vaeDecoder) console.log(`decoding with the fine-tuned decoder ${vae.value.model}`);
    const weights = P.base.emaDecay ? 'ema' : 'trained';
    const saved = join(out, 'checkpoint-pipelines', `step-${step}`);
    try {
      await loadTrainingCheckpoint(pipe, studyBaseMethod(), resolve(at), { weights });
      // kept whole (diffusers layout) for --export: the gate disposes the pipeline
      if (args.export) await pipe.save(saved);
    } catch (e) {
      pipe.dispose();
      throw e;
    }
    console.log(`base model at step ${step} (${weights} weights of ${at}): conditioning gate`);
    await measureConditioning(pipe, `base_model@${step}`, `conditioning-step-${step}.png`);
    if (args.export) {
      // the checkpoint as a generator: its stage key names the checkpoint's own identity (path and step)
      const base = { key: hashOf({ checkpoint: resolve(at), step, weights }), dir: saved, value: { model: saved, steps: step, finalLoss: state.losses.at(-1) ?? null, peakBytes: 0 }, seconds: 0, cached: true };
      const command = `npm run pretrain-generator -- --profile ${P.name}${args.base ? ` --base '${args.base}'` : ''} --gates-checkpoint ${at} (${weights} weights at step ${step})`;
      const dir = await exportGenerator({ vae, base, poolKey: pool.key, profile: { ...P, base: { ...P.base, steps: step } }, command, adapter: backend.describe().split(';')[0]!, dir: resolve(args.export) });
      console.log(`the checkpoint's generator written to ${dir}`);
    }
    ft.shutdown();
    return;
  }
  const pre = await pretrainGenerator(opts);
  if (scorer) {
    await measureVae(P, pre.vae.value.model, scorer, data, split, out, saveGates);
    await measureConditioning(await StableDiffusionPipeline.fromPretrained(pre.base.value.model), 'base_model', 'conditioning.png');
  }
  const command = `npm run pretrain-generator -- --profile ${P.name}${args.vae ? ` --vae '${args.vae}'` : ''}${args.base ? ` --base '${args.base}'` : ''}${args['vae-decoder'] ? ` --vae-decoder '${args['vae-decoder']}'` : ''}`;
  const dir = await exportGenerator({ vae: pre.vae, base: pre.base, poolKey: pre.pool.key, profile: P, command, adapter: backend.describe().split(';')[0]!, dir: args.export ? resolve(args.export) : embeddedGeneratorDir() });
  console.log(`embedded generator written to ${dir} (VAE ${pre.vae.value.steps} steps, final loss ${pre.vae.value.finalLoss?.toFixed(4)}; base ${pre.base.value.steps} steps, final loss ${pre.base.value.finalLoss?.toFixed(4)})`);
  ft.shutdown();
}

/** Which of the profile's splits the gates use: seed 0's, or --gates-seed's (one of the profile's seeds). */
function gatesSeedIndex(P: StudyProfile, arg: string | undefined): number {
  if (arg === undefined) return 0;
  const i = P.seeds.indexOf(Number(arg));
  if (!/^\d+$/.test(arg) || i < 0) throw new Error(`--gates-seed ${arg}: not a seed of the ${P.name} profile (${P.seeds.join(', ')})`);
  return i;
}

/** A gates grid's file name: seed 0's keep their names, another --gates-seed's carry the seed. */
function gridName(P: StudyProfile, split: ProtocolSplit, file: string): string {
  return split.seed === P.seeds[0] ? file : file.replace(/\.png$/, `-seed${split.seed}.png`);
}

/** The VAE gate on the first validation images of the gates' seed, a reconstruction grid beside it. */
async function measureVae(
  P: StudyProfile, model: string, scorer: ImageScorer, data: StudyData, split: ProtocolSplit, out: string,
  save: (stage: string, e: GateEntry[]) => Promise<void>,
): Promise<void> {
  const vae = await loadVAE(model);
  try {
    const items = split.val.items.slice(0, P.gates.vaeImages);
    const labels = items.map((it) => it.label);
    const r = await vaeGate({ vae, scorer, images: await imagesOf(data, items), labels, seed: split.seed });
    await save('vae', r.entries);
    labelledGrid([{ label: 'validation originals', images: r.originals.slice(0, 8) }, { label: 'reconstructions', images: r.reconstructions.slice(0, 8) }], join(out, gridName(P, split, 'vae-reconstructions.png')));
    const lost = lostRows(r, labels, scorer.classNames);
    const lostFile = join(out, gridName(P, split, 'vae-lost.png'));
    if (lost.length) labelledGrid(lost, lostFile);
    console.log(`  seed ${split.seed}: the round trip loses ${r.lost.length} of ${labels.length} images${lost.length ? ` (${lostFile})` : ''}`);
    for (const e of r.entries) if (/drop|psnr/.test(e.name)) console.log(`  ${e.name} = ${e.value?.toFixed(3)}`);
  } finally {
    vae.dispose();
  }
}

main().catch((e: unknown) => {
  reportCliError('pretrain-generator', e);
  process.exit(1);
});
