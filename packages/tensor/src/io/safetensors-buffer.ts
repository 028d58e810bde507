/**
 * safetensors held in memory (browsers, fetched bytes): parse an ArrayBuffer's header and decode
 * tensors synchronously, or serialise tensors to one Uint8Array. No Node APIs here.
 */
import {
  checkTensorData, decodeSafetensorsData, encodeSafetensorsData,
  type SafetensorsData, type SafetensorsReadAs, type SafetensorsReadOptions, type SafetensorsTensor, type TensorToWrite,
} from './safetensors-codec.js';
import {
  buildSafetensorsHeader, parseHeaderLength, parseSafetensorsHeader, SafetensorsError,
  type SafetensorsEntry, type SafetensorsHeader,
} from './safetensors-format.js';

/** The parts of a safetensors reader that need no data: names, entries, metadata. */
export abstract class SafetensorsIndex {
  protected constructor(
    /** File path or buffer description, used in error messages. */
    readonly source: string,
    readonly header: SafetensorsHeader,
  ) {}

  /** Tensor names in data order. */
  keys(): string[] {
    return [...this.header.entries.keys()];
  }
  has(name: string): boolean {
    return this.header.entries.has(name);
  }
  entry(name: string): SafetensorsEntry | undefined {
    return this.header.entries.get(name);
  }
  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  protected require(name: string): SafetensorsEntry {
    const e = this.header.entries.get(name);
    if (e) return e;
    const names = this.keys();
    const some = names.slice(0, 8).map((k) => `'${k}'`).join(', ');
    throw new SafetensorsError(this.source, `no tensor named '${name}' (it has ${names.length}: ${some}${names.length > 8 ? ', ...' : ''})`);
  }
}

/**
 * What a loader needs of an opened safetensors file, on disk (SafetensorsFile, Node) or in memory
 * (SafetensorsBuffer, fetched bytes in a browser): the index, reads by name, close.
 */
export interface SafetensorsReader {
  readonly source: string;
  readonly header: SafetensorsHeader;
  keys(): string[];
  has(name: string): boolean;
  entry(name: string): SafetensorsEntry | undefined;
  readonly metadata: Record<string, string>;
  read<A extends SafetensorsReadAs = 'raw'>(name: string, opts?: SafetensorsReadOptions<A>): SafetensorsTensor<SafetensorsData<A>> | Promise<SafetensorsTensor<SafetensorsData<A>>>;
  close(): Promise<void> | void;
}

/** A whole safetensors file in memory; `read` is synchronous and returns a copy. */
export class SafetensorsBuffer extends SafetensorsIndex {
  private readonly bytes: Uint8Array;

  constructor(bytes: Uint8Array, source = 'safetensors buffer') {
    const n = parseHeaderLength(bytes, bytes.length, source);
    super(source, parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.length, source));
    // a plain Uint8Array view: Node's Buffer#slice returns a view, not the copy `read` relies on
    this.bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  read<A extends SafetensorsReadAs = 'raw'>(name: string, opts: SafetensorsReadOptions<A> = {}): SafetensorsTensor<SafetensorsData<A>> {
    const e = this.require(name);
    // a copy: the caller may keep or mutate the result without pinning or corrupting the file bytes
    return decodeSafetensorsData(e, this.bytes.slice(e.byteOffset, e.byteOffset + e.byteLength), opts.as, this.source);
  }

  /** Nothing to release (the bytes are the caller's); here so a buffer is a SafetensorsReader. */
  close(): void {}
}

/** Parses an in-memory safetensors file (validated like a file on disk). */
export function loadSafetensors(bytes: Uint8Array | ArrayBuffer, source = 'safetensors buffer'): SafetensorsBuffer {
  return new SafetensorsBuffer(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes), source);
}

export type TensorsToWrite = Record<string, TensorToWrite> | Iterable<readonly [string, TensorToWrite]>;

/** Named tensors as a list (a Map, an array of pairs or a plain object). */
export function tensorList(tensors: TensorsToWrite): { name: string; dtype: TensorToWrite['dtype']; shape: readonly number[]; t: TensorToWrite }[] {
  const pairs: Iterable<readonly [string, TensorToWrite]> = Symbol.iterator in tensors
    ? (tensors as Iterable<readonly [string, TensorToWrite]>)
    : Object.entries(tensors as Record<string, TensorToWrite>);
  return Array.from(pairs, ([name, t]) => {
    if (!t || typeof t !== 'object') throw new Error(`safetensors: tensor '${name}' is ${String(t)}, not {dtype, shape, data}`);
    return { name, dtype: t.dtype, shape: t.shape, t };
  });
}

/** Serialises tensors to the bytes of a safetensors file, laid out as Python's safetensors does. */
export function serializeSafetensors(tensors: TensorsToWrite, metadata?: Record<string, string>): Uint8Array {
  const { order, prefix, dataSize } = buildSafetensorsHeader(tensorList(tensors), metadata);
  for (const it of order) checkTensorData(it.name, it.t);
  const out = new Uint8Array(prefix.length + dataSize);
  out.set(prefix, 0);
  let off = prefix.length;
  for (const it of order) {
    for (const chunk of encodeSafetensorsData(it.name, it.t)) {
      out.set(chunk, off);
      off += chunk.length;
    }
  }
  return out;
}
