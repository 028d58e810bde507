import { loadCheckpointWeights } from '@foliar/nn';
import type { StableDiffusionPipeline } from '../pipelines/stable-diffusion.js';
import type { FineTuneMethod } from './methods/method.js';

export interface TrainingCheckpointOptions {
  /**
   * 'trained' (default): the weights at the checkpoint's step; 'ema': the run's moving average (what a
   * run with `finalWeights: 'ema'` would have saved had it ended there). Needs a run with emaDecay.
   */
  weights?: 'trained' | 'ema';
}

/**
 * Loads a training checkpoint (`<outputDir>/checkpoints/checkpoint-<step>`) of `trainTextToImage` or
 * `trainDreamBooth` into `pipe` for sampling, to watch a long run between its validations or to measure
 * it before it ends. `pipe` must be built as the run's was (same configs; its own weights are
 * replaced) and `method` configured as the run's, since it decides which tensors the checkpoint holds and
 * in which order: the method is attached to `pipe` (adapters injected, as in training) and the trained
 * tensors are frozen again after loading. Errors name the checkpoint and the first tensor that does
 * not fit.
 */
export async function loadTrainingCheckpoint(
  pipe: StableDiffusionPipeline, method: FineTuneMethod, dir: string, o: TrainingCheckpointOptions = {},
): Promise<void> {
  const params = method.attach(pipe);
  await loadCheckpointWeights(dir, { stateDict: method.stateDict(pipe), params }, o.weights ?? 'trained');
  for (const p of params) p.requiresGrad_(false);
}
