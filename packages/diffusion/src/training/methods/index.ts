export type { FineTuneMethod } from './method.js';
export { FullFineTune } from './full.js';
export { LoRA, LoRAAdapter, type LoRAOptions } from './lora.js';
export { TextualInversion, type TextualInversionOptions } from './textual-inversion.js';
