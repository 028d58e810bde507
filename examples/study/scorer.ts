/**
 * The gates' measuring instrument: a classifier trained with class-balanced sampling on one seed's
 * training split, longer than the arms' budget, its weights chosen on validation (mean AUC). It is
 * not an arm: it never reads the test split (no test evaluation, no report), it only scores
 * generated images, reconstructions and the verification filter's candidates.
 *
 * It trains with photometric degradations (the profiles' `gateClassifier.degrade`: random blur,
 * down-up resampling and pixel noise) that the arms never see. Without them it read every slightly
 * soft leaf as healthy: on seed 0's validation originals, blur of σ 1.5 px or noise of std 4/255
 * took rust from 0.94 to 0.38 and healthy from 0.71 to 0.12 (docs/generator-recipe.md). A VAE's
 * reconstruction or a generator's sample is exactly such a leaf, so the gates measured the blur,
 * not the lesions. Changing the instrument changes its stage key: every gate scored with it reruns.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { train, resolveConfig, splitIds, type TrainConfig, type ProtocolSplit } from '@foliar/classifier';
import type { StageRunner, StageResult } from './stages.js';
import type { GateEntry } from './report-types.js';

export interface GateClassifier {
  /** The best-epoch checkpoint (loadTrainedModel reads it). */
  checkpoint: string;
  bestEpoch: number | null;
  valAccuracy: number;
  valMeanAuc: number | null;
  steps: number;
  seconds: number;
}

export async function trainGateClassifier(
  runner: StageRunner, seed: number, base: Partial<TrainConfig>, overrides: Partial<TrainConfig>, split: ProtocolSplit, deps: readonly StageResult<unknown>[], signal?: AbortSignal,
): Promise<StageResult<GateClassifier>> {
  const config = gateClassifierConfig(seed, base, overrides, split);
  return runner.run('gate-classifier', seed, config, deps, (dir) => trainGateClassifierIn(seed, config, dir, signal));
}

/** The gate classifier's configuration on one seed's split (its stage's config, so its cache key). */
export function gateClassifierConfig(seed: number, base: Partial<TrainConfig>, overrides: Partial<TrainConfig>, split: ProtocolSplit): TrainConfig {
  return resolveConfig(base, { ...overrides, balancedSampling: true }, { seed, split: splitIds(split) });
}

/** The body of the gate classifier's stage (a queued job runs it too): trains in `dir`, resuming from its checkpoints. */
export async function trainGateClassifierIn(seed: number, config: TrainConfig, dir: string, signal?: AbortSignal): Promise<GateClassifier> {
  const runDir = join(dir, 'run');
  const r = await train(config, { runDir, resume: existsSync(join(runDir, 'checkpoints')), signal, verbose: false, skipReport: true });
  if (r.interrupted) throw new Error(`gate classifier (seed ${seed}) interrupted: run the same command again to continue`);
  const best = r.bestEpoch !== null ? r.history.find((h) => h.epoch === r.bestEpoch) ?? r.history.at(-1)! : r.history.at(-1)!;
  const checkpoint = r.bestCheckpoint ?? join(runDir, 'checkpoints', 'best');
  if (!existsSync(checkpoint)) throw new Error(`gate classifier (seed ${seed}): no best checkpoint at ${checkpoint}`);
  return { checkpoint, bestEpoch: r.bestEpoch, valAccuracy: best.valAccuracy, valMeanAuc: best.valMeanAuc, steps: r.globalStep, seconds: r.seconds };
}

/** The instrument's own quality, on validation images, for the gates table. */
export function gateClassifierEntries(g: GateClassifier, seed: number, valImages: number): GateEntry[] {
  const detail = `class-balanced classifier that scores the gates (${g.steps} steps, weights of epoch ${g.bestEpoch ?? 'last'} chosen on validation), on ${valImages} validation images`;
  return [
    { stage: 'instrument', name: 'val_accuracy', seed, value: g.valAccuracy, detail },
    { stage: 'instrument', name: 'val_mean_auc', seed, value: g.valMeanAuc, detail },
  ];
}
