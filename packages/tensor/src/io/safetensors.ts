import { open, type FileHandle } from 'node:fs/promises';
import { openAtomic } from './atomic.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './half.js';

/**
 * safetensors: 8-byte little-endian header length, a JSON header, then raw little-endian tensor data.
 * The reader validates everything it trusts (bounds, offsets, dtypes, sizes) and reads one tensor at a
 * time with positioned reads, so multi-gigabyte files never need one huge buffer.
 */
export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

const ITEMSIZE: Record<SafetensorsDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1 };
const MAX_HEADER = 100 * 1024 * 1024;

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
  constructor(
    readonly source: string,
    message: string,
  ) {
    super(`${source}: ${message}`);
  }
}

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute byte offset in the file. */
  byteOffset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  headerSize: number;
  fileSize: number;
}

/** Parses and validates the JSON header (`bytes` = the header JSON only). */
export function parseSafetensorsHeader(bytes: Uint8Array, fileSize: number, source: string): SafetensorsHeader {
  const headerSize = bytes.length;
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw new SafetensorsError(source, `header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new SafetensorsError(source, 'header is not a JSON object');
  const dataStart = 8 + headerSize;
  const dataSize = fileSize - dataStart;
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new SafetensorsError(source, '__metadata__ is not an object');
      for (const [k, mv] of Object.entries(v)) if (typeof mv !== 'string') throw new SafetensorsError(source, `__metadata__.${k} is not a string`);
      metadata = v as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!e || typeof e !== 'object') throw new SafetensorsError(source, `tensor '${name}': entry is not an object`);
    if (typeof e.dtype !== 'string' || !(e.dtype in ITEMSIZE)) throw new SafetensorsError(source, `tensor '${name}': unknown dtype ${JSON.stringify(e.dtype)}`);
    const dtype = e.dtype as SafetensorsDtype;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new SafetensorsError(source, `tensor '${name}': invalid shape ${JSON.stringify(e.shape)}`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0) || off[0] > off[1]) {
      throw new SafetensorsError(source, `tensor '${name}': invalid data_offsets ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as [number, number];
    if (end > dataSize) throw new SafetensorsError(source, `tensor '${name}': data_offsets [${begin}, ${end}] run past the end of the data (${dataSize} bytes; file truncated?)`);
    const shape = e.shape as number[];
    const n = shape.reduce((a, b) => a * b, 1);
    if (n * ITEMSIZE[dtype] !== end - begin) {
      throw new SafetensorsError(source, `tensor '${name}': ${end - begin} bytes do not hold ${dtype} [${shape.join(', ')}] (${n * ITEMSIZE[dtype]} bytes)`);
    }
    entries.set(name, { name, dtype, shape, byteOffset: dataStart + begin, byteLength: end - begin });
  }
  // no two tensors may overlap
  const sorted = [...entries.values()].sort((a, b) => a.byteOffset - b.byteOffset);
  for (let i = 1; i < sorted.length; i++) {
    const p = sorted[i - 1]!, c = sorted[i]!;
    if (c.byteOffset < p.byteOffset + p.byteLength && c.byteLength > 0 && p.byteLength > 0) {
      throw new SafetensorsError(source, `tensors '${p.name}' and '${c.name}' overlap`);
    }
  }
  return { entries, metadata, headerSize, fileSize };
}

function headerLength(prefix: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8) throw new SafetensorsError(source, `file is ${fileSize} bytes, too short for a safetensors header`);
  const n = Number(new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true));
  if (n < 2 || n > MAX_HEADER) throw new SafetensorsError(source, `header length ${n} is out of bounds`);
  if (8 + n > fileSize) throw new SafetensorsError(source, `header length ${n} exceeds the file size ${fileSize}`);
  return n;
}

export interface ReadOptions {
  /** 'float32' upcasts any float/int dtype; 'int32' for integer tensors (I64 out of range is an error); 'raw' keeps the stored type. */
  as?: 'float32' | 'int32' | 'raw';
}

export type RawArray = Float64Array | Float32Array | Uint16Array | BigInt64Array | BigUint64Array | Int32Array | Uint32Array | Int16Array | Int8Array | Uint8Array;

export interface ReadResult {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | Int32Array | RawArray;
}

/** Converts raw little-endian bytes of a tensor. `bytes` must be a fresh, aligned copy. */
export function decodeTensor(entry: SafetensorsEntry, bytes: Uint8Array, as: ReadOptions['as'], source: string): ReadResult {
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const n = entry.shape.reduce((a, b) => a * b, 1);
  const raw = ((): RawArray => {
    switch (entry.dtype) {
      case 'F64': return new Float64Array(buf);
      case 'F32': return new Float32Array(buf);
      case 'F16': case 'BF16': case 'U16': return new Uint16Array(buf);
      case 'I64': return new BigInt64Array(buf);
      case 'U64': return new BigUint64Array(buf);
      case 'I32': return new Int32Array(buf);
      case 'U32': return new Uint32Array(buf);
      case 'I16': return new Int16Array(buf);
      case 'I8': return new Int8Array(buf);
      case 'U8': case 'BOOL': return new Uint8Array(buf);
    }
  })();
  const mode = as ?? 'raw';
  if (mode === 'raw') return { dtype: entry.dtype, shape: entry.shape, data: raw };
  if (mode === 'float32') {
    if (entry.dtype === 'F32') return { dtype: entry.dtype, shape: entry.shape, data: raw as Float32Array };
    if (entry.dtype === 'F16') return { dtype: entry.dtype, shape: entry.shape, data: f16ToF32(raw as Uint16Array) };
    if (entry.dtype === 'BF16') return { dtype: entry.dtype, shape: entry.shape, data: bf16ToF32(raw as Uint16Array) };
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = Number(raw[i]!);
    return { dtype: entry.dtype, shape: entry.shape, data: out };
  }
  // int32
  if (entry.dtype.startsWith('F') || entry.dtype === 'BF16') throw new SafetensorsError(source, `tensor '${entry.name}' is ${entry.dtype}, not an integer tensor`);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = Number(raw[i]!);
    if (v > 2147483647 || v < -2147483648) throw new SafetensorsError(source, `tensor '${entry.name}': value ${v} at index ${i} does not fit in int32`);
    out[i] = v;
  }
  return { dtype: entry.dtype, shape: entry.shape, data: out };
}

/** A safetensors file opened for reading tensor by tensor. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    readonly header: SafetensorsHeader,
    private fh: FileHandle | null,
    private bytes: Uint8Array | null,
  ) {}

  static async open(path: string): Promise<SafetensorsFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw new SafetensorsError(path, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (e as Error).message);
    }
    try {
      const size = (await fh.stat()).size;
      const prefix = new Uint8Array(8);
      await fh.read(prefix, 0, Math.min(8, size), 0);
      const n = headerLength(prefix, size, path);
      const hb = new Uint8Array(n);
      await fh.read(hb, 0, n, 8);
      return new SafetensorsFile(path, parseSafetensorsHeader(hb, size, path), fh, null);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Parses an in-memory file (browsers, fetched bytes). */
  static fromBytes(bytes: Uint8Array, source = 'safetensors buffer'): SafetensorsFile {
    const n = headerLength(bytes, bytes.length, source);
    return new SafetensorsFile(source, parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.length, source), null, bytes);
  }

  keys(): string[] {
    return [...this.header.entries.keys()];
  }
  entry(name: string): SafetensorsEntry | undefined {
    return this.header.entries.get(name);
  }
  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  async read(name: string, opts: ReadOptions = {}): Promise<ReadResult> {
    const e = this.header.entries.get(name);
    if (!e) throw new SafetensorsError(this.path, `no tensor named '${name}'`);
    let bytes: Uint8Array;
    if (this.bytes) bytes = this.bytes.slice(e.byteOffset, e.byteOffset + e.byteLength);
    else {
      if (!this.fh) throw new SafetensorsError(this.path, 'file is closed');
      bytes = new Uint8Array(e.byteLength);
      let off = 0;
      while (off < e.byteLength) {
        const { bytesRead } = await this.fh.read(bytes, off, e.byteLength - off, e.byteOffset + off);
        if (bytesRead === 0) throw new SafetensorsError(this.path, `unexpected end of file reading '${name}'`);
        off += bytesRead;
      }
    }
    return decodeTensor(e, bytes, opts.as, this.path);
  }

  close(): void {
    const fh = this.fh;
    this.fh = null;
    void fh?.close();
  }
}

export interface TensorToWrite {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  /** Values: for F16/BF16 either the encoded Uint16Array or a Float32Array (converted); I64 from Int32Array/BigInt64Array. */
  data: ArrayLike<number> | ArrayLike<bigint> | ArrayBufferView;
}

function encode(name: string, t: TensorToWrite): Uint8Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const d = t.data as ArrayLike<number> & ArrayBufferView;
  if ((d as ArrayLike<number>).length !== n) throw new Error(`writeSafetensors: tensor '${name}' has ${(d as ArrayLike<number>).length} values for shape [${t.shape.join(', ')}]`);
  let out: ArrayBufferView;
  switch (t.dtype) {
    case 'F32': out = d instanceof Float32Array ? d : Float32Array.from(d as ArrayLike<number>); break;
    case 'F64': out = d instanceof Float64Array ? d : Float64Array.from(d as ArrayLike<number>); break;
    case 'F16': out = d instanceof Uint16Array ? d : f32ToF16(d instanceof Float32Array ? d : Float32Array.from(d as ArrayLike<number>)); break;
    case 'BF16': out = d instanceof Uint16Array ? d : f32ToBf16(d instanceof Float32Array ? d : Float32Array.from(d as ArrayLike<number>)); break;
    case 'I64': out = d instanceof BigInt64Array ? d : BigInt64Array.from(Array.from(d as ArrayLike<number>, (v) => BigInt(Math.trunc(v)))); break;
    case 'U64': out = d instanceof BigUint64Array ? d : BigUint64Array.from(Array.from(d as ArrayLike<number>, (v) => BigInt(Math.trunc(v)))); break;
    case 'I32': out = d instanceof Int32Array ? d : Int32Array.from(d as ArrayLike<number>); break;
    case 'U32': out = d instanceof Uint32Array ? d : Uint32Array.from(d as ArrayLike<number>); break;
    case 'I16': out = d instanceof Int16Array ? d : Int16Array.from(d as ArrayLike<number>); break;
    case 'U16': out = d instanceof Uint16Array ? d : Uint16Array.from(d as ArrayLike<number>); break;
    case 'I8': out = d instanceof Int8Array ? d : Int8Array.from(d as ArrayLike<number>); break;
    case 'U8': case 'BOOL': out = d instanceof Uint8Array ? d : Uint8Array.from(d as ArrayLike<number>); break;
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

function buildHeader(items: [string, TensorToWrite][], metadata?: Record<string, string>): { header: Uint8Array; order: [string, TensorToWrite][] } {
  // Python's safetensors orders data by dtype alignment (largest first), then by name.
  const order = [...items].sort((a, b) => ITEMSIZE[b[1].dtype] - ITEMSIZE[a[1].dtype] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const json: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) json.__metadata__ = metadata;
  let off = 0;
  for (const [name, t] of order) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * ITEMSIZE[t.dtype];
    json[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let text = JSON.stringify(json);
  // pad with spaces to 8-byte alignment, as Python's writer does
  const len = new TextEncoder().encode(text).length;
  text += ' '.repeat((8 - (len % 8)) % 8);
  return { header: new TextEncoder().encode(text), order };
}

function asList(tensors: Record<string, TensorToWrite> | Iterable<[string, TensorToWrite]>): [string, TensorToWrite][] {
  const list = Symbol.iterator in (tensors as object) ? [...(tensors as Iterable<[string, TensorToWrite]>)] : Object.entries(tensors as Record<string, TensorToWrite>);
  const seen = new Set<string>();
  for (const [k] of list) {
    if (seen.has(k)) throw new Error(`writeSafetensors: duplicate tensor name '${k}'`);
    seen.add(k);
  }
  return list;
}

/** Serialises tensors to bytes (in memory). */
export function serializeSafetensors(tensors: Record<string, TensorToWrite> | Iterable<[string, TensorToWrite]>, metadata?: Record<string, string>): Uint8Array {
  const { header, order } = buildHeader(asList(tensors), metadata);
  const parts = order.map(([n, t]) => encode(n, t));
  const total = 8 + header.length + parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(total);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  let off = 8 + header.length;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Writes tensors to `path` atomically, streaming one tensor at a time. */
export async function writeSafetensors(path: string, tensors: Record<string, TensorToWrite> | Iterable<[string, TensorToWrite]>, metadata?: Record<string, string>): Promise<void> {
  const { header, order } = buildHeader(asList(tensors), metadata);
  const w = await openAtomic(path);
  try {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(header.length), true);
    await w.write(len);
    await w.write(header);
    for (const [n, t] of order) await w.write(encode(n, t));
    await w.commit();
  } catch (e) {
    await w.abort();
    throw e;
  }
}

/** The header of a file without reading its data. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const f = await SafetensorsFile.open(path);
  f.close();
  return f.header;
}

