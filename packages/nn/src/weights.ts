import { openSafetensors, writeSafetensorsTo, noGrad, setData_, copy_, f32ToF16, f16ToF32, Tensor, type SafetensorsDtype, type SafetensorsReader } from '@foliar/tensor';
import { StateDictError, type Module, type LoadResult } from './module.js';

export interface LoadWeightsOptions {
  /** Strict (default): missing, unexpected and mis-shaped keys raise one StateDictError listing them all. */
  strict?: boolean;
  /** Maps a key of the file to the module's key; null drops it (e.g. `position_ids`). */
  remap?: (key: string) => string | null;
  /**
   * Reshapes a value whose element count matches but whose shape differs (e.g. 1x1-conv weights
   * [C, C, 1, 1] stored for Linear [C, C] in legacy VAE checkpoints). Default false.
   */
  allowReshape?: (key: string, fileShape: number[], shape: number[]) => boolean;
}

const isFloatDtype = (d: SafetensorsDtype): boolean => d === 'F32' || d === 'F16' || d === 'BF16' || d === 'F64';

/**
 * Loads a safetensors file into a module, one tensor at a time (into float32 parameters F32, F16 and BF16 are upcast; into float16 ones F16 is uploaded as stored and the others rounded per tensor), so
 * multi-gigabyte files never need one huge buffer. A file is a path in Node, a URL in a browser, or
 * an already opened reader (e.g. `loadSafetensors(bytes)`, which is then not closed here). Values are copied in place into the existing
 * parameters and buffers. Integer tensors for float weights (and floats for int buffers) are refused.
 */
export async function loadSafetensorsInto(module: Module, paths: string | SafetensorsReader | (string | SafetensorsReader)[], opts: LoadWeightsOptions = {}): Promise<LoadResult> {
  const list = Array.isArray(paths) ? paths : [paths];
  const own = module.stateDict();
  const seen = new Set<string>();
  const unexpected: string[] = [];
  const mismatched: LoadResult['mismatched'] = [];
  const wrongType: string[] = [];
  const plan: { file: SafetensorsReader; name: string; target: Tensor }[] = [];
  const files: SafetensorsReader[] = [];
  try {
    for (const item of list) {
      const f = typeof item === 'string' ? await openSafetensors(item) : item;
      const p = f.source;
      if (typeof item === 'string') files.push(f);
      for (const name of f.keys()) {
        const key = opts.remap ? opts.remap(name) : name;
        if (key === null) continue;
        const target = own.get(key);
        if (!target) {
          unexpected.push(name);
          continue;
        }
        const shape = [...f.entry(name)!.shape];
        const n = shape.reduce((a, b) => a * b, 1);
        const same = shape.length === target.rank && shape.every((d, i) => d === target.shape[i]);
        if (!same && !(n === target.size && (target.size === 1 || opts.allowReshape?.(key, shape, [...target.shape])))) {
          mismatched.push({ key, expected: [...target.shape], got: shape });
          continue;
        }
        const fileDtype = f.entry(name)!.dtype;
        if (isFloatDtype(fileDtype) !== (target.dtype === 'float32' || target.dtype === 'float16')) {
          wrongType.push(`'${name}' is ${fileDtype} in ${p}, but ${key} is ${target.dtype}`);
          continue;
        }
        seen.add(key);
        plan.push({ file: f, name, target });
      }
    }
    // integer data read into float weights (or floats truncated into int buffers) is never what was meant
    if (wrongType.length) {
      throw new Error(`loadSafetensorsInto: ${wrongType.length} tensor${wrongType.length > 1 ? 's have' : ' has'} the wrong kind of dtype: ${wrongType.slice(0, 20).join('; ')}${wrongType.length > 20 ? `; … (${wrongType.length} in all)` : ''}`);
    }
    const missing = [...own.keys()].filter((k) => !seen.has(k));
    const strict = opts.strict ?? true;
    if (mismatched.length || (strict && (missing.length || unexpected.length))) {
      throw new StateDictError(strict ? missing : [], strict ? unexpected : [], mismatched, list.map((x) => (typeof x === 'string' ? x : x.source)).join(', '));
    }
    for (const { file, name, target } of plan) {
      if (target.dtype === 'float16') {
        await loadHalf(file, name, target);
        continue;
      }
      const r = await file.read(name, { as: target.dtype === 'int32' ? 'int32' : 'float32' });
      noGrad(() => setData_(target, r.data as Float32Array | Int32Array));
    }
    return { missing, unexpected, mismatched };
  } finally {
    for (const f of files) void f.close();
  }
}

/**
 * One tensor into a float16 parameter: F16 data goes to the device as it is stored (no f32 copy
 * anywhere), other float types are converted on the host, tensor by tensor (BF16/F32 → f16 rounds to
 * nearest even). A fresh contiguous parameter (the one handle on its storage, as after construction)
 * takes the uploaded storage itself; otherwise the values are copied into it.
 */
async function loadHalf(file: SafetensorsReader, name: string, target: Tensor): Promise<void> {
  const entry = file.entry(name)!;
  const bits = entry.dtype === 'F16' ? ((await file.read(name, { as: 'raw' })).data as Uint16Array) : f32ToF16((await file.read(name, { as: 'float32' })).data);
  const src = new Tensor(target.backend.upload(bits), [...target.shape]);
  if (target.isContiguous && target.offset === 0 && target.storage.refs === 1 && target.storage.size === target.size) target._relocate(src.storage, 0);
  else noGrad(() => copy_(target, src));
  src.dispose();
}

export interface SaveWeightsOptions {
  /** Stored dtype of float tensors: F32 (default), F16 or BF16. */
  dtype?: 'F32' | 'F16' | 'BF16';
  metadata?: Record<string, string>;
  /** Key rewrite on save (the inverse of a load remap). */
  rename?: (key: string) => string;
}

/** Writes a module's state dict (or any named tensors) as safetensors, atomically. */
export async function saveSafetensors(source: Module | Map<string, Tensor>, path: string, opts: SaveWeightsOptions = {}): Promise<void> {
  const sd = source instanceof Map ? source : source.stateDict();
  const entries: [string, { dtype: SafetensorsDtype; shape: number[]; data: Float32Array | Int32Array | Uint16Array }][] = [];
  for (const [k, t] of sd) {
    const data = await t.data();
    const name = opts.rename ? opts.rename(k) : k;
    if (t.dtype === 'int32') entries.push([name, { dtype: 'I64', shape: [...t.shape], data: data as Int32Array }]);
    // a float16 tensor is stored as F16 bits unless another float dtype is asked for
    else if (t.dtype === 'float16') {
      const d = opts.dtype ?? 'F16';
      entries.push([name, { dtype: d, shape: [...t.shape], data: d === 'F16' ? (data as Uint16Array) : f16ToF32(data as Uint16Array) }]);
    } else entries.push([name, { dtype: opts.dtype ?? 'F32', shape: [...t.shape], data: data as Float32Array }]);
  }
  await writeSafetensorsTo(path, entries, opts.metadata);
}

/** Reads every tensor of a safetensors file as host data (f32 / int32), for inspection or conversion. */
export async function readSafetensors(path: string): Promise<Map<string, { shape: number[]; data: Float32Array | Int32Array }>> {
  const f = await openSafetensors(path);
  try {
    const out = new Map<string, { shape: number[]; data: Float32Array | Int32Array }>();
    for (const name of f.keys()) {
      const e = f.entry(name)!;
      const isInt = /^(I|U)/.test(e.dtype) && e.dtype !== 'U8';
      const r = await f.read(name, { as: isInt ? 'int32' : 'float32' });
      out.set(name, { shape: [...e.shape], data: r.data as Float32Array | Int32Array });
    }
    return out;
  } finally {
    f.close();
  }
}

