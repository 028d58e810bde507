// A trained classifier file held in memory (fetched bytes in a browser, a dropped file): the model
// file format's metadata (what model-file.ts writes), loading from bytes, and classifying decoded
// images. No file system here: browsers bundle it; model-file.ts does the same from paths in Node.
import { loadSafetensors, tensor, noGrad, softmax, type SafetensorsBuffer } from '@foliar/tensor';
import { normalizeToChw, type RgbImage } from '@foliar/data';
import { ARCHS, buildModel, type Arch, type Classifier } from './model.js';
import type { TrainConfig } from './config.js';

/** The safetensors metadata key that holds a model file's ModelInfo (JSON). */
export const META_KEY = 'foliar.classifier';

export interface ModelInfo {
  arch: Arch;
  classNames: string[];
  imageSize: number;
  /** The training config, when the model came from `foliar-classify train`. */
  config?: TrainConfig;
}
/** The model file's metadata, checked: bad JSON, an unknown arch or a malformed field names the file. */
export function parseModelInfo(raw: string, path: string): ModelInfo {
  let j: unknown;
  try {
    j = JSON.parse(raw);
  } catch (e) {
    throw new Error(`${path}: "${META_KEY}" metadata is not valid JSON (${(e as Error).message})`);
  }
  if (j === null || typeof j !== 'object' || Array.isArray(j)) throw new Error(`${path}: "${META_KEY}" metadata must be an object, got ${JSON.stringify(j)}`);
  const info = j as Record<string, unknown>;
  const show = (v: unknown) => JSON.stringify(v) ?? String(v);
  if (typeof info.arch !== 'string' || !(ARCHS as readonly string[]).includes(info.arch)) throw new Error(`${path}: unknown arch ${show(info.arch)} (known: ${ARCHS.join(', ')})`);
  const names = info.classNames;
  if (!Array.isArray(names) || names.length === 0 || !names.every((c) => typeof c === 'string' && c !== '') || new Set(names).size !== names.length) {
    throw new Error(`${path}: "classNames" must be a non-empty array of distinct class names, got ${show(names)}`);
  }
  if (typeof info.imageSize !== 'number' || !Number.isSafeInteger(info.imageSize) || info.imageSize < 1) throw new Error(`${path}: "imageSize" must be a positive integer, got ${show(info.imageSize)}`);
  if (info.config !== undefined && (info.config === null || typeof info.config !== 'object' || Array.isArray(info.config))) throw new Error(`${path}: "config" must be an object, got ${show(info.config)}`);
  // cast: every field of ModelInfo was checked above
  return info as unknown as ModelInfo;
}

/**
 * A classifier from the bytes of a model file (`foliar-classify train`'s model.safetensors, or
 * saveModelFile's output): architecture and class names from its metadata, weights loaded in place.
 * `source` names it in errors (a URL, a file name).
 */
export function loadModelBytes(bytes: Uint8Array | ArrayBuffer, source = 'model file'): { model: Classifier; info: ModelInfo } {
  const f = loadSafetensors(bytes, source);
  return loadModelFrom(f);
}

function loadModelFrom(f: SafetensorsBuffer): { model: Classifier; info: ModelInfo } {
  const raw = f.metadata[META_KEY];
  if (raw === undefined) throw new Error(`${f.source}: no "${META_KEY}" metadata: not a model written by foliar-classify`);
  const info = parseModelInfo(raw, f.source);
  const model = buildModel(info.arch, info.classNames.length);
  const sd = new Map<string, { shape: number[]; data: Float32Array | Int32Array }>();
  for (const k of f.keys()) {
    const e = f.entry(k)!;
    const isInt = e.dtype.startsWith('I') || e.dtype.startsWith('U');
    sd.set(k, { shape: [...e.shape], data: f.read(k, { as: isInt ? 'int32' : 'float32' }).data as Float32Array | Int32Array });
  }
  try {
    model.loadStateDict(sd, { context: f.source });
  } catch (e) {
    model.dispose();
    throw e;
  }
  model.eval();
  return { model, info };
}

/** A model file by URL (browsers) or any fetchable address. */
export async function fetchModel(url: string): Promise<{ model: Classifier; info: ModelInfo }> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`cannot fetch model file ${url}: HTTP ${res.status}`);
  return loadModelBytes(await res.arrayBuffer(), url);
}

/**
 * Class probabilities of decoded images already at the model's size (info.imageSize square: decode
 * with `{ size: info.imageSize, mode: 'cover' }` as evaluation does), ImageNet-normalised.
 */
export async function classifyImages(model: Classifier, info: ModelInfo, images: readonly RgbImage[]): Promise<{ probs: number[]; predicted: number; label: string }[]> {
  const S = info.imageSize, C = info.classNames.length, n = images.length;
  const x = new Float32Array(n * 3 * S * S);
  images.forEach((img, k) => {
    if (img.width !== S || img.height !== S) throw new RangeError(`classifyImages: image ${k} is ${img.width}x${img.height}, the model takes ${S}x${S}`);
    normalizeToChw(img, x, k * 3 * S * S);
  });
  model.eval();
  const probs = noGrad(() => {
    const input = tensor(x, { shape: [n, 3, S, S] });
    const p = softmax(model.forward(input), -1);
    input.dispose();
    return p;
  });
  const data = (await probs.data()) as Float32Array;
  probs.dispose();
  return images.map((_, k) => {
    const row = Array.from(data.subarray(k * C, (k + 1) * C));
    const predicted = row.indexOf(Math.max(...row));
    return { probs: row, predicted, label: info.classNames[predicted]! };
  });
}
