/**
 * Crash test of `foliar-diffuse dreambooth` (issue 14, item 6): the real CLI as a child process (CPU
 * backend, a tiny pipeline from --tiny-config, 16 px procedural leaves) is SIGKILLed at seeded random
 * points — inside checkpoint folder writes, between a temp file and its rename, half-way through a
 * log line, during class-image generation and validation, at random moments — and continued with
 * `--resume latest` until it finishes. Then, against an uninterrupted run of the same command:
 *   1. every file is bit-identical: final/ (adapter or pipeline, EMA weights), each kept checkpoint
 *      (trained tensors, optimizer, EMA, state.json with the losses), class images and seeds.jsonl,
 *      validation grids, loss.png; train.jsonl has the same records (timing and memory fields aside);
 *   2. (the classifier's best-epoch check has no DreamBooth counterpart: it keeps no best weights);
 *   3. no temp file (`*.tmp-<pid>-*`) or partial checkpoint folder (`*.partial-<pid>`) remains;
 *   4. train.jsonl has each step once, in order, and no torn line.
 * CI: 2 configs x FOLIAR_CRASH_CASES (default 1) seeded schedules of up to 5 kills, plus 8 directed
 * sequences (10 runs, about 30 children, 1.5-2.5 min on two cores); FOLIAR_CRASH_CASES=<n> for a soak.
 */
import { test } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, readFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { repoRoot, prng } from '../helpers.js';
import { leafImages } from '../diffusion/fixtures.js';
import { runChild, traceCounts, crashAndResume, killAt, diffRunDirs, strayPaths, stripKeys, jsonl, firstDifference, caseCount, type CrashRunResult } from './harness.js';

const cli = join(repoRoot, 'packages', 'diffusion', 'src', 'cli', 'main.ts');
const tmp = mkdtempSync(join(tmpdir(), 'foliar-crash-db-'));
test.after(() => {
  if (!process.env.FOLIAR_CRASH_KEEP) rmSync(tmp, { recursive: true, force: true });
});
const tinyCfg = join(tmp, 'tiny.json');
const leaves = join(tmp, 'leaves');

test.before(async () => {
  writeFileSync(tinyCfg, JSON.stringify({
    unet: { block_out_channels: [8, 16], norm_num_groups: 4, layers_per_block: 1, attention_head_dim: 4, sample_size: 8, cross_attention_dim: 16 },
    vae: { block_out_channels: [8, 16], norm_num_groups: 4, sample_size: 16 },
    textEncoder: { hidden_size: 16, num_hidden_layers: 2, intermediate_size: 24, num_attention_heads: 2, max_position_embeddings: 16 },
  }));
  mkdirSync(leaves, { recursive: true });
  const imgs = leafImages(3, 24, 'rust');
  for (let i = 0; i < imgs.length; i++) {
    const img = imgs[i]!;
    await sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: 3 } }).toFile(join(leaves, `leaf-${i}.png`));
  }
});

const common = () => ['--backend', 'cpu', 'dreambooth', '--model', 'tiny', '--tiny-config', tinyCfg, '--resolution', '16', '--no-progress', '--instance-dir', leaves, '--instance-prompt', 'a photo of a sks leaf'];
const CONFIGS: { name: string; steps: number; flags: string[] }[] = [
  // LoRA with prior preservation (class images made by the base model first), EMA, validation grids
  {
    name: 'lora-prior-ema', steps: 8,
    flags: ['--method', 'lora', '--rank', '2', '--max-train-steps', '8', '--checkpointing-steps', '2', '--checkpoints-total-limit', '2',
      '--class-prompt', 'a photo of a leaf', '--num-class-images', '2', '--class-inference-steps', '2', '--ema-decay', '0.9',
      '--validation-steps', '4', '--validation-prompt', 'a leaf', '--validation-inference-steps', '2'],
  },
  // full fine-tuning with gradient accumulation and a cosine schedule; one checkpoint kept; final/ is a whole pipeline
  {
    name: 'full-accum-cosine', steps: 6,
    flags: ['--method', 'full', '--max-train-steps', '6', '--gradient-accumulation-steps', '2', '--lr', '1e-3', '--lr-scheduler', 'cosine', '--lr-warmup-steps', '2',
      '--checkpointing-steps', '2', '--checkpoints-total-limit', '1', '--seed', '3'],
  },
];
const OP_FILTERS = ['', 'checkpoints/', 'state.json', 'final/', 'train.jsonl', 'class_images/', 'validation/', 'loss.png'];
const CASES = caseCount(1);
const KILLS = 5;

const stepRecord = (r: Record<string, unknown>) => stripKeys(r);

function compareFile(rel: string, a: string, b: string): string | null {
  if (rel === 'train.jsonl') {
    const x = jsonl(a, stepRecord), y = jsonl(b, stepRecord);
    if (y.bad) return `${y.bad} line(s) that do not parse`;
    return firstDifference(x.records, y.records);
  }
  // the continuing invocations add --resume latest to the options recorded
  if (rel === 'config.json') return firstDifference(stripKeys(JSON.parse(readFileSync(a, 'utf8')), new Set(['resume', 'out'])), stripKeys(JSON.parse(readFileSync(b, 'utf8')), new Set(['resume', 'out'])));
  return null;
}

function checkpointed(dir: string): number {
  const d = join(dir, 'checkpoints');
  if (!existsSync(d)) return 0;
  return Math.max(0, ...readdirSync(d).map((n) => /^checkpoint-(\d+)$/.exec(n)).filter((m) => m).map((m) => Number(m![1])));
}

let totalCases = 0, totalKills = 0, totalChildren = 0, randomCases = 0, randomKills = 0;
const where = new Map<string, number>();

interface Reference { dir: string; ms: number; ops: Map<string, number> }
const refs = new Map<string, Reference>();

/** The uninterrupted run of a config (once), with the hook counting its file operations. */
async function reference(cfg: (typeof CONFIGS)[number]): Promise<Reference> {
  const have = refs.get(cfg.name);
  if (have) return have;
  const dir = join(tmp, `${cfg.name}-ref`);
  const trace = join(tmp, `${cfg.name}.trace`);
  const r0 = await runChild(cli, [...common(), ...cfg.flags, '--out', dir], { root: dir, trace });
  assert.is(r0.code, 0, r0.output);
  console.log(`  ${cfg.name}: uninterrupted ${cfg.steps} steps, ${(r0.ms / 1000).toFixed(1)} s`);
  const ref = { dir, ms: r0.ms, ops: traceCounts(trace, OP_FILTERS) };
  refs.set(cfg.name, ref);
  return ref;
}

const runArgs = (cfg: (typeof CONFIGS)[number], root: string) => ({
  script: cli, root,
  start: [...common(), ...cfg.flags, '--out', root],
  resume: [...common(), ...cfg.flags, '--out', root, '--resume', 'latest'],
});

function record(tag: string, res: CrashRunResult, random = false): void {
  totalCases++;
  totalKills += res.kills.length;
  if (random) {
    randomCases++;
    randomKills += res.kills.length;
  }
  totalChildren += res.children;
  for (const k of res.kills) {
    const w = k.startsWith('timer') ? 'timer' : /\(([\w.]+) /.exec(k)?.[1] ?? k;
    where.set(w, (where.get(w) ?? 0) + 1);
  }
  console.log(`  ${tag}: ${res.kills.length} kill(s), ${res.children} processes, ${(res.ms / 1000).toFixed(1)} s`);
  for (const k of res.kills) console.log(`    killed at ${k}`);
}

/** The checks of a finished run against the uninterrupted one. */
async function checkRun(cfg: (typeof CONFIGS)[number], ref: Reference, root: string, tag: string): Promise<void> {
  // 3. nothing a killed writer left behind
  assert.equal(strayPaths(root), [], `${tag}: stray temporary files or partial folders`);
  // 1. every file equal to the uninterrupted run's
  const diffs = await diffRunDirs(ref.dir, root, compareFile);
  assert.equal(diffs, [], `${tag}: differs from the uninterrupted run:\n${diffs.join('\n')}`);
  // 4. each step once, in order
  const log = jsonl(join(root, 'train.jsonl'));
  assert.is(log.bad, 0, `${tag}: torn log lines left`);
  assert.equal((log.records as { step: number }[]).map((r) => r.step), Array.from({ length: cfg.steps }, (_, i) => i + 1), `${tag}: step records`);
}

for (const [ci, cfg] of CONFIGS.entries()) {
  test(`dreambooth: ${cfg.name}: ${CASES} runs killed up to ${KILLS} times each at seeded random points end bit-identical to an uninterrupted run`, async () => {
    const ref = await reference(cfg);
    for (let c = 0; c < CASES; c++) {
      const root = join(tmp, `${cfg.name}-case${c}`);
      const res = await crashAndResume({
        ...runArgs(cfg, root), rng: prng(7000 + 100 * ci + c), kills: KILLS, reference: ref,
        progress: () => checkpointed(root) / cfg.steps,
      });
      const tag = `${cfg.name} case ${c}`;
      record(tag, res, true);
      await checkRun(cfg, ref, root, `${tag} (kills: ${res.kills.join('; ') || 'none'})`);
      rmSync(root, { recursive: true, force: true });
    }
  });
}

/** Kill points random schedules reach rarely, each a sequence of FOLIAR_CRASH_AT values (see kill-hook.ts). */
const DIRECTED: { name: string; specs: string[] }[] = [
  // class images: one written but not yet in seeds.jsonl; one half-written (its temp file); a torn seeds.jsonl line
  { name: 'class image written, its seeds.jsonl line not', specs: ['2:after:class_images/class-0000'] },
  { name: 'class image half-written', specs: ['1:torn:class_images/class-0001'] },
  { name: 'seeds.jsonl line torn', specs: ['1:torn:seeds.jsonl'] },
  // the checkpoint of step 4 is in place, the validation grid of step 4 is not
  { name: 'during the validation after a checkpoint', specs: ['1:before:validation/step-000004'] },
  // at the end, before final/; the continuation saves checkpoint-8 again and is killed half-way through removing the old one
  { name: 'before final/, then half-way through replacing the last checkpoint', specs: ['1:before:final/', '1:torn:=checkpoints/checkpoint-8'] },
  // the same, then half-way through deleting the replaced folder (the new one is in place), then between
  // moving it aside and renaming the new one in (the continuation removes the stale folder first: one more operation)
  { name: 'the replaced checkpoint half-deleted, then none in place', specs: ['1:before:final/', '3:torn:checkpoint-8.old.partial', '3:after:checkpoint-8.old.partial'] },
  { name: 'a torn train.jsonl line, then a torn state.json', specs: ['3:torn:train.jsonl', '1:torn:state.json'] },
];

test(`dreambooth: ${DIRECTED.length} directed kill sequences (class images, validation, checkpoint replacement) end bit-identical`, async () => {
  const cfg = CONFIGS[0]!;
  const ref = await reference(cfg);
  const failures: string[] = [];
  for (const [i, d] of DIRECTED.entries()) {
    const root = join(tmp, `${cfg.name}-directed${i}`);
    try {
      const res = await killAt({ ...runArgs(cfg, root), specs: d.specs });
      record(`${cfg.name} directed: ${d.name}`, res);
      await checkRun(cfg, ref, root, `${cfg.name} directed: ${d.name}`);
    } catch (e) {
      failures.push(`${d.name}: ${(e as Error).message}`);
    }
    rmSync(root, { recursive: true, force: true });
  }
  assert.equal(failures, [], failures.join('\n\n'));
});

test('dreambooth crash test: summary', () => {
  console.log(`  dreambooth crash test: ${totalCases} runs, ${totalKills} kills (${[...where].map(([k, n]) => `${k} ${n}`).join(', ')}), ${totalChildren} processes; 0 differences, 0 stray files, 0 repeated steps`);
  assert.ok(randomKills >= randomCases * 2, `too few kills landed (${randomKills} in ${randomCases} seeded runs): the schedule aims past the runs' ends`);
});

test.run();
