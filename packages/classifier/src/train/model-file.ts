// The trained model as one safetensors file: weights plus what inference needs (architecture,
// class names, image size) in the metadata, so `eval` and `predict` need nothing else.
import { SafetensorsFile, type Tensor } from '@foliar/tensor';
import { saveSafetensors } from '@foliar/nn';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { buildModel, type Classifier } from './model.js';
import { loadCheckpoint, restoreModel, movedCheckpointHint } from './checkpoint.js';
import { META_KEY, parseModelInfo, type ModelInfo } from './model-bytes.js';

export { parseModelInfo, type ModelInfo } from './model-bytes.js';

export async function saveModelFile(path: string, model: Classifier, info: ModelInfo): Promise<void> {
  await saveSafetensors(model.stateDict() as Map<string, Tensor>, path, { metadata: { [META_KEY]: JSON.stringify(info) } });
}

/**
 * Loads a trained classifier from a run directory (its model.safetensors), a model file, or a
 * training checkpoint: a checkpoint folder (`checkpoints/best/`, `checkpoints/checkpoint-<step>/`) or
 * an old one-file checkpoint (`checkpoints/best.safetensors` of runs written before the shared loop).
 */
export async function loadTrainedModel(source: string): Promise<{ model: Classifier; info: ModelInfo; path: string }> {
  const isDir = existsSync(source) && statSync(source).isDirectory();
  if (isDir && existsSync(join(source, 'state.json'))) return fromCheckpoint(source);
  const path = isDir ? join(source, 'model.safetensors') : source;
  if (!existsSync(path)) {
    const moved = movedCheckpointHint(path);
    throw new Error(`${path}: no trained model here (${moved ?? 'expected a run directory with model.safetensors, a model file or a checkpoint'})`);
  }
  const f = await SafetensorsFile.open(path);
  const meta = f.metadata;
  f.close();
  if (meta['foliar.checkpoint'] !== undefined) return fromCheckpoint(path);
  const raw = meta[META_KEY];
  if (raw === undefined) throw new Error(`${path}: no "${META_KEY}" metadata: not a model written by foliar-classify`);
  const info = parseModelInfo(raw, path);
  const model = buildModel(info.arch, info.classNames.length);
  const r = await SafetensorsFile.open(path);
  try {
    const sd = new Map<string, { shape: number[]; data: Float32Array | Int32Array }>();
    for (const k of r.keys()) {
      const e = r.entry(k)!;
      const isInt = e.dtype.startsWith('I') || e.dtype.startsWith('U');
      sd.set(k, { shape: [...e.shape], data: (await r.read(k, { as: isInt ? 'int32' : 'float32' })).data as Float32Array | Int32Array });
    }
    model.loadStateDict(sd, { context: path });
  } finally {
    r.close();
  }
  return { model, info, path };
}

async function fromCheckpoint(path: string): Promise<{ model: Classifier; info: ModelInfo; path: string }> {
  const ckpt = await loadCheckpoint(path);
  const { config, classNames } = ckpt.state;
  const model = buildModel(config.arch, classNames.length);
  try {
    restoreModel(model, ckpt);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, info: { arch: config.arch, classNames, imageSize: config.imageSize, config }, path };
}
