import type { Tensor } from '@foliar/tensor';
import type { StableDiffusionPipeline } from '../../pipelines/stable-diffusion.js';

/**
 * A fine-tuning method: which parameters train, how they enter the model, and how they are saved,
 * loaded and merged. The DreamBooth trainer only talks to this interface, so a new method is one class.
 */
export interface FineTuneMethod {
  readonly name: string;
  /** Modifies the pipeline (injects adapters, adds tokens…) and returns the parameters to train. */
  attach(pipe: StableDiffusionPipeline): Tensor[];
  /** The learning rate a trainer uses when none is given (diffusers' scripts' defaults). */
  readonly defaultLearningRate?: number;
  /** Whether the text encoder's output depends on trained parameters (then embeddings cannot be cached). */
  readonly trainsTextEncoder: boolean;
  /** Called after each optimizer step (e.g. to restore frozen rows). */
  afterStep?(pipe: StableDiffusionPipeline): void;
  /** Writes what the method trained (adapter weights, embeddings, or the whole pipeline) into `dir`. */
  save(pipe: StableDiffusionPipeline, dir: string): Promise<void>;
  /** Loads what `save` wrote into an attached pipeline. */
  load(pipe: StableDiffusionPipeline, dir: string): Promise<void>;
  /** Folds the trained change into the base weights (where that makes sense) and detaches. */
  merge?(pipe: StableDiffusionPipeline): void;
  /** Frees what the method allocated outside the pipeline's modules (adapters, copies). */
  dispose?(): void;
  /** Named trained tensors, for checkpoints. */
  stateDict(pipe: StableDiffusionPipeline): Map<string, Tensor>;
}
