/**
 * Trains the study's generator for the procedural leaves once — the VAE, then the base text-to-image
 * model, exactly the study's pretraining stages (examples/study/pretrain.ts: a pool rendered from a
 * generator seed the study never uses, never the rare class) — and exports it as the embedded default
 * (models/procedural-generator: f16 weights and a manifest naming this command, the profile, the adapter
 * and the date). Profiles with `embeddedGenerator` (quick) then start from it, as the study started from
 * a downloaded Stable Diffusion. Stages are cached and resumable under --out.
 *
 *   npm run pretrain-generator -- [--profile gpu64] [--out runs/study-gpu64] [--export models/procedural-generator]
 *
 * gpu64 (ten times quick's generator training) is sized for a machine with a GPU (scripts/gpu); the
 * profile exported must have the image size and latent layout of the profile that will use it.
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ft from '@foliar/tensor';
import { reportCliError } from '@foliar/nn';
import { studyProfile } from './study/profiles.js';
import { StageRunner } from './study/stages.js';
import { loadStudyData, studySplits } from './study/data.js';
import { pretrainGenerator } from './study/pretrain.js';
import { exportGenerator, embeddedGeneratorDir } from './study/embedded-generator.js';

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      profile: { type: 'string', default: 'gpu64' },
      out: { type: 'string' },
      export: { type: 'string' },
      class: { type: 'string', default: 'multiple_diseases' },
      'class-prompt': { type: 'string', default: 'a photo of a leaf' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (args.help) {
    console.log('usage: npm run pretrain-generator -- [--profile gpu64] [--out runs/study-<profile>] [--export models/procedural-generator]');
    return;
  }
  // the profile trains its own generator here, whatever it would do in the study
  const P = { ...studyProfile(args.profile), embeddedGenerator: false };
  const out = resolve(args.out ?? join('runs', `study-${P.name}`));
  const backend = await ft.init();
  console.log(`generator pretraining, profile ${P.name}, on ${backend.describe()}; stages in ${out}`);
  const data = await loadStudyData(P, null);
  const common = data.set.classNames.filter((c) => c !== args.class);
  const prompt = (c: string) => `a photo of a ${c.replace(/_/g, ' ')} leaf`;
  const runner = new StageRunner(out);
  const pre = await pretrainGenerator({ runner, profile: P, data, splits: studySplits(P, data.set), photographs: false, common, classPrompt: args['class-prompt']!, promptOf: prompt });
  const command = `npm run pretrain-generator -- --profile ${P.name}`;
  const dir = await exportGenerator({ vae: pre.vae, base: pre.base, poolKey: pre.pool.key, profile: P, command, adapter: backend.describe().split(';')[0]!, dir: args.export ? resolve(args.export) : embeddedGeneratorDir() });
  console.log(`embedded generator written to ${dir} (VAE ${pre.vae.value.steps} steps, final loss ${pre.vae.value.finalLoss?.toFixed(4)}; base ${pre.base.value.steps} steps, final loss ${pre.base.value.finalLoss?.toFixed(4)})`);
  ft.shutdown();
}

main().catch((e: unknown) => {
  reportCliError('pretrain-generator', e);
  process.exit(1);
});
