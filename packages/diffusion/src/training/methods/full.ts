import type { Tensor } from '@foliar/tensor';
import { loadSafetensorsInto } from '@foliar/nn';
import { join } from 'node:path';
import type { StableDiffusionPipeline } from '../../pipelines/stable-diffusion.js';
import type { FineTuneMethod } from './method.js';

/** DreamBooth proper: every UNet weight trains (and the text encoder's, optionally). */
export class FullFineTune implements FineTuneMethod {
  readonly name = 'full';
  readonly defaultLearningRate = 5e-6;
  constructor(readonly opts: { trainTextEncoder?: boolean } = {}) {}
  get trainsTextEncoder(): boolean {
    return this.opts.trainTextEncoder ?? false;
  }
  attach(pipe: StableDiffusionPipeline): Tensor[] {
    pipe.vae.requiresGrad_(false);
    pipe.textEncoder.requiresGrad_(this.trainsTextEncoder);
    pipe.unet.requiresGrad_(true);
    return [...pipe.unet.parameters(), ...(this.trainsTextEncoder ? pipe.textEncoder.parameters() : [])];
  }
  async save(pipe: StableDiffusionPipeline, dir: string): Promise<void> {
    await pipe.save(dir);
  }
  async load(pipe: StableDiffusionPipeline, dir: string): Promise<void> {
    const { weightFiles } = await import('../../loading/files.js');
    await loadSafetensorsInto(pipe.unet, await weightFiles(join(dir, 'unet')));
    if (this.trainsTextEncoder) {
      const { textEncoderKeyRemap } = await import('../../loading/models.js');
      await loadSafetensorsInto(pipe.textEncoder, await weightFiles(join(dir, 'text_encoder')), { remap: textEncoderKeyRemap });
    }
  }
  stateDict(pipe: StableDiffusionPipeline): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [k, t] of pipe.unet.stateDict()) out.set(`unet.${k}`, t);
    if (this.trainsTextEncoder) for (const [k, t] of pipe.textEncoder.stateDict()) out.set(`text_encoder.${k}`, t);
    return out;
  }
}
