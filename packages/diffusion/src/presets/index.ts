export { createRandomPipeline, type CreateRandomOptions, type CreateRandomReport, type ComponentReport, type RandomPreset } from './create-random.js';
export { writeShardedWeights, weightFileNames, parseSize, type ShardedWriteOptions, type ShardedWriteResult } from './sharded-weights.js';
export { SD15_UNET_CONFIG, SD15_VAE_CONFIG, SD15_TEXT_ENCODER_CONFIG, SD15_SCHEDULER_CONFIG, SD15_TOKENIZER, SD15_PARAMETERS, SD15_SMALL } from './sd15.js';
