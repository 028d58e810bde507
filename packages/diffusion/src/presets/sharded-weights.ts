/**
 * Weights written as diffusers / transformers write them for large models: one safetensors file, or
 * shards of at most `maxShardSize` bytes with a `*.safetensors.index.json` naming the shard of every
 * tensor, and the variant naming of `save_pretrained(variant="fp16")`. Shards are written one at a
 * time (each atomically), so host memory holds one shard's data beyond the model.
 */
import { join } from 'node:path';
import type { Tensor } from '@foliar/tensor';
import { writeFileAtomic, writeSafetensors, type SafetensorsDtype } from '@foliar/tensor';

export interface ShardedWriteOptions {
  /** Stored dtype of float tensors (integer tensors are stored as I64, as PyTorch's int64 buffers). */
  dtype?: 'F32' | 'F16' | 'BF16';
  /** Largest shard in bytes of tensor data (diffusers' default is 10 GB); one tensor larger than it gets a shard of its own. */
  maxShardSize?: number;
  /** diffusers' `variant`: 'fp16' names the files `<stem>.fp16.safetensors` / `<stem>.fp16-00001-of-00002.safetensors`. */
  variant?: string;
}

export interface ShardedWriteResult {
  files: string[];
  /** Bytes of tensor data (the index's metadata.total_size). */
  totalSize: number;
  index: string | null;
}

const BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, I64: 8 };

/** The file names diffusers uses for `stem` (`diffusion_pytorch_model` or `model`). */
export function weightFileNames(stem: string, shards: number, variant?: string): { files: string[]; index: string | null } {
  const v = variant ? `.${variant}` : '';
  if (shards <= 1) return { files: [`${stem}${v}.safetensors`], index: null };
  const pad = (n: number) => String(n).padStart(5, '0');
  const files = Array.from({ length: shards }, (_, i) => `${stem}${v}-${pad(i + 1)}-of-${pad(shards)}.safetensors`);
  return { files, index: variant ? `${stem}.safetensors.index.${variant}.json` : `${stem}.safetensors.index.json` };
}

/**
 * Writes `tensors` (in order) under `dir` with the given file stem. Returns the files written and the
 * index file, if the weights were sharded.
 */
export async function writeShardedWeights(dir: string, stem: string, tensors: ReadonlyMap<string, Tensor>, o: ShardedWriteOptions = {}): Promise<ShardedWriteResult> {
  const floatDtype = o.dtype ?? 'F32';
  const max = o.maxShardSize ?? 10e9;
  if (!(max > 0)) throw new RangeError(`maxShardSize must be a positive number of bytes, got ${o.maxShardSize}`);
  const stored = (t: Tensor): SafetensorsDtype => (t.dtype === 'int32' ? 'I64' : floatDtype);
  // shard plan first (sizes are known from shapes), so the names say "-of-N" from the first file on
  const shards: string[][] = [];
  let current: string[] = [];
  let size = 0;
  let totalSize = 0;
  for (const [name, t] of tensors) {
    const bytes = t.size * BYTES[stored(t)]!;
    if (current.length && size + bytes > max) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(name);
    size += bytes;
    totalSize += bytes;
  }
  if (current.length) shards.push(current);
  const names = weightFileNames(stem, shards.length, o.variant);
  const weightMap: Record<string, string> = {};
  for (const [i, shard] of shards.entries()) {
    const entries: [string, { dtype: SafetensorsDtype; shape: number[]; data: Float32Array | Int32Array }][] = [];
    for (const name of shard) {
      const t = tensors.get(name)!;
      entries.push([name, { dtype: stored(t), shape: [...t.shape], data: (await t.data()) as Float32Array | Int32Array }]);
      weightMap[name] = names.files[i]!;
    }
    await writeSafetensors(join(dir, names.files[i]!), entries, { format: 'pt' });
  }
  if (names.index) {
    await writeFileAtomic(join(dir, names.index), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n');
  }
  return { files: names.files, totalSize, index: names.index };
}

/** "10GB" (10^9), "500MB", "2GiB" (2^30), or a number of bytes, as transformers' convert_file_size_to_int reads them. */
export function parseSize(s: string | number): number {
  if (typeof s === 'number') return s;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)?\s*$/i.exec(s);
  if (!m) throw new Error(`not a size: "${s}" (e.g. 10GB, 500MB, 2GiB or a number of bytes)`);
  const unit = (m[2] ?? 'B').toUpperCase();
  const mult: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40 };
  const n = Math.floor(Number(m[1]) * mult[unit]!);
  if (!(n > 0)) throw new Error(`not a positive size: "${s}"`);
  return n;
}
