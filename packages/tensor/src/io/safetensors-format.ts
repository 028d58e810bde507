/**
 * The safetensors container: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}}), then the raw
 * little-endian, C-ordered tensor bytes. This module only parses, validates and builds headers; it
 * touches neither files nor tensors, so it also works in browsers.
 */

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

/** Bytes per element. */
export const SAFETENSORS_ITEMSIZE: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

/**
 * The reference writer's dtype order (its Rust enum, "increasing alignment"); data is laid out by
 * descending rank then by name, which keeps every tensor aligned to its element size.
 */
const DTYPE_RANK: Readonly<Record<SafetensorsDtype, number>> = {
  BOOL: 0, U8: 1, I8: 2, I16: 5, U16: 6, F16: 7, BF16: 8, I32: 9, U32: 10, F32: 11, F64: 12, I64: 13, U64: 14,
};

/** Python's safetensors refuses larger headers; so do we (a corrupt length must not allocate gigabytes). */
export const MAX_HEADER_SIZE = 100_000_000;

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
  constructor(
    /** The file path (or buffer description) the problem is in. */
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
  /** Absolute byte offset of the data in the file. */
  byteOffset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  /** In data order (ascending offset). */
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** Length of the JSON header in bytes (the data starts at 8 + headerSize). */
  headerSize: number;
  fileSize: number;
}

export function isSafetensorsDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_ITEMSIZE, s);
}

/** Number of elements of a shape. */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Reads and bounds-checks the header length from the first 8 bytes of a file of `fileSize` bytes.
 * Returns N, the length of the JSON header that follows.
 */
export function parseHeaderLength(prefix: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8 || prefix.length < 8) throw new SafetensorsError(source, `file is ${Math.min(fileSize, prefix.length)} bytes, too short for the 8-byte header length`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n < 2n) throw new SafetensorsError(source, `header length ${n} is too small (a JSON object takes at least 2 bytes)`);
  if (n > BigInt(MAX_HEADER_SIZE)) throw new SafetensorsError(source, `header length ${n} exceeds the ${MAX_HEADER_SIZE}-byte limit (not a safetensors file?)`);
  if (8n + n > BigInt(fileSize)) throw new SafetensorsError(source, `header length ${n} exceeds the file size ${fileSize} (file truncated?)`);
  return Number(n);
}

const describe = (v: unknown): string => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

function parseEntry(name: string, v: unknown, dataStart: number, dataSize: number, source: string): SafetensorsEntry {
  const where = `tensor '${name}'`;
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new SafetensorsError(source, `${where}: header entry is ${describe(v)}, not an object`);
  const e = v as Record<string, unknown>;
  if (!isSafetensorsDtype(e.dtype)) throw new SafetensorsError(source, `${where}: unknown dtype ${describe(e.dtype)} (supported: ${Object.keys(SAFETENSORS_ITEMSIZE).join(', ')})`);
  const dtype = e.dtype;
  const shape = e.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new SafetensorsError(source, `${where}: invalid shape ${describe(shape)} (expected an array of non-negative integers)`);
  }
  const off = e.data_offsets;
  if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new SafetensorsError(source, `${where}: invalid data_offsets ${describe(off)} (expected [begin, end] non-negative integers)`);
  }
  const [begin, end] = off as [number, number];
  if (begin > end) throw new SafetensorsError(source, `${where}: data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataSize) {
    throw new SafetensorsError(source, `${where}: data_offsets [${begin}, ${end}] (file bytes ${dataStart + begin}..${dataStart + end}) run past the end of the data section (${dataSize} bytes; file truncated?)`);
  }
  const n = shapeSize(shape as number[]);
  const expected = n * SAFETENSORS_ITEMSIZE[dtype];
  if (!Number.isSafeInteger(expected) || expected !== end - begin) {
    throw new SafetensorsError(source, `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, but ${dtype} [${(shape as number[]).join(', ')}] needs ${expected}`);
  }
  return { name, dtype, shape: [...(shape as number[])], byteOffset: dataStart + begin, byteLength: end - begin };
}

/**
 * The first key repeated within one object of valid JSON text (JSON.parse silently keeps the last,
 * so a header naming a tensor twice would load whichever came last). `parent` is the top-level key
 * of the object holding it, null at the top level.
 */
function duplicateKey(text: string): { key: string; parent: string | null } | null {
  type Frame = { keys: Set<string> | null; expectKey: boolean; name: string | null };
  const stack: Frame[] = [];
  let lastKey: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      for (;;) {
        j = text.indexOf('"', j);
        if (j < 0) return null; // unreachable for text JSON.parse accepted
        let k = j - 1, slashes = 0;
        while (text.charCodeAt(k) === 0x5c /* \ */) { slashes++; k--; }
        if (slashes % 2 === 0) break;
        j++;
      }
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return { key, parent: stack.length > 1 ? stack[1]!.name : null };
        top.keys.add(key);
        top.expectKey = false;
        lastKey = key;
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      // the frame of a top-level entry remembers its tensor name for the message
      stack.push({ keys: c === 0x7b ? new Set() : null, expectKey: c === 0x7b, name: stack.length === 1 ? lastKey : null });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) stack.pop();
    else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    }
  }
  return null;
}

/**
 * Parses and validates a header. `bytes` is the JSON header only (the N bytes after the 8-byte
 * length); `fileSize` the size of the whole file, so offsets can be checked against it.
 */
export function parseSafetensorsHeader(bytes: Uint8Array, fileSize: number, source: string): SafetensorsHeader {
  const headerSize = bytes.length;
  const dataStart = 8 + headerSize;
  const dataSize = fileSize - dataStart;
  if (dataSize < 0) throw new SafetensorsError(source, `header of ${headerSize} bytes does not fit in a file of ${fileSize} bytes`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new SafetensorsError(source, 'header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(source, `header is not valid JSON (${(e as Error).message})`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new SafetensorsError(source, `header is ${describe(json)}, not a JSON object`);
  const dup = duplicateKey(text);
  if (dup) {
    const where = dup.parent === null ? 'the header' : dup.parent === '__metadata__' ? '__metadata__' : `the header entry of tensor ${describe(dup.parent)}`;
    throw new SafetensorsError(source, dup.parent === null && dup.key !== '__metadata__' ? `duplicate tensor name ${describe(dup.key)} in the header` : `duplicate key ${describe(dup.key)} in ${where}`);
  }

  const list: SafetensorsEntry[] = [];
  const metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new SafetensorsError(source, `__metadata__ is ${describe(v)}, not an object of strings`);
      for (const [k, mv] of Object.entries(v)) {
        if (typeof mv !== 'string') throw new SafetensorsError(source, `__metadata__['${k}'] is ${describe(mv)}, not a string`);
        // defineProperty: a '__proto__' key must stay data, not replace the prototype
        Object.defineProperty(metadata, k, { value: mv, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    list.push(parseEntry(name, v, dataStart, dataSize, source));
  }

  // Tensors may not share bytes: after sorting by offset, any overlap shows up between neighbours
  // (empty tensors own no bytes and are skipped). Gaps are tolerated, unlike Python's reader.
  list.sort((a, b) => a.byteOffset - b.byteOffset || a.byteLength - b.byteLength);
  let prev: SafetensorsEntry | null = null;
  for (const e of list) {
    if (e.byteLength === 0) continue;
    if (prev && e.byteOffset < prev.byteOffset + prev.byteLength) {
      const at = (x: SafetensorsEntry) => `[${x.byteOffset - dataStart}, ${x.byteOffset - dataStart + x.byteLength}]`;
      throw new SafetensorsError(source, `tensors '${prev.name}' ${at(prev)} and '${e.name}' ${at(e)} overlap (data_offsets)`);
    }
    prev = e;
  }
  return { entries: new Map(list.map((e) => [e.name, e])), metadata, headerSize, fileSize };
}

/** Rust's `str` ordering: by UTF-8 bytes, i.e. by code point (JS `<` compares UTF-16 units). */
function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

export interface HeaderItem {
  name: string;
  dtype: SafetensorsDtype;
  shape: readonly number[];
}

export interface BuiltHeader<T extends HeaderItem> {
  /** The items in data order. */
  order: T[];
  /** The 8-byte length followed by the space-padded JSON header. */
  prefix: Uint8Array;
  /** Bytes of tensor data that follow the prefix. */
  dataSize: number;
}

/**
 * Lays out tensors as Python's safetensors does (descending dtype rank, then name; contiguous, no
 * gaps) and builds the header, padded with spaces to a multiple of 8 bytes so the data section is
 * 8-aligned. `metadata` present (even empty) writes `__metadata__`, as Python does for a non-None dict.
 */
export function buildSafetensorsHeader<T extends HeaderItem>(items: readonly T[], metadata?: Record<string, string>): BuiltHeader<T> {
  const seen = new Set<string>();
  for (const it of items) {
    if (it.name === '__metadata__') throw new Error(`safetensors: '__metadata__' is reserved and cannot name a tensor`);
    if (seen.has(it.name)) throw new Error(`safetensors: duplicate tensor name '${it.name}'`);
    seen.add(it.name);
    if (!isSafetensorsDtype(it.dtype)) throw new Error(`safetensors: tensor '${it.name}' has unknown dtype ${describe(it.dtype)}`);
    if (!Array.isArray(it.shape) || !it.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(`safetensors: tensor '${it.name}' has invalid shape ${describe(it.shape)}`);
    }
  }
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new Error(`safetensors: metadata['${k}'] is ${describe(v)}, not a string`);
  }
  const order = [...items].sort((a, b) => DTYPE_RANK[b.dtype] - DTYPE_RANK[a.dtype] || compareNames(a.name, b.name));
  // Build the JSON by hand: `__metadata__` must come first and JSON.stringify of an object would move
  // integer-like tensor names ("0", "1", ...) ahead of the others.
  const parts: string[] = [];
  if (metadata) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let off = 0;
  for (const t of order) {
    const bytes = shapeSize(t.shape) * SAFETENSORS_ITEMSIZE[t.dtype];
    parts.push(`${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${off},${off + bytes}]}`);
    off += bytes;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const prefix = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(padded), true);
  prefix.set(json, 8);
  return { order, prefix, dataSize: off };
}
