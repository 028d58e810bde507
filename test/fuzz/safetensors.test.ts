/**
 * Fuzz test of the safetensors reader (issue 14, item 7): seeded mutations of valid files (bit flips,
 * byte inserts and deletes, truncation, splicing, header-length edge values, structural edits of the
 * JSON header with edge numbers, duplicate keys, wrong types) read with loadSafetensors (every tensor,
 * as raw, float32 and int32) and, for one case in eight, from disk with SafetensorsFile.
 *
 * Each case ends as a clear error (a SafetensorsError naming the source) or as an accepted file that an
 * independent reader written here from the format's rules agrees with: the same tensors, shapes,
 * metadata and values bit for bit, and `read` returning a copy. Crashes, hangs (async reads time out
 * after 5 s), unclear errors and silent wrong results must all be 0.
 * CI: 4,000 cases and 500 from disk, under 2 s (FOLIAR_FUZZ_SCALE multiplies it).
 */
import { test } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  loadSafetensors, serializeSafetensors, SafetensorsFile, SafetensorsError,
  type SafetensorsDtype, type SafetensorsRawArray, type TensorToWrite,
} from '@foliar/tensor';
import { Mutator, FUZZ_SEED, cases, newStats, runCase, assertClean, concat, EDGE_NUMBERS } from './mutator.js';

const tmp = mkdtempSync(join(tmpdir(), 'foliar-fuzz-st-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const ITEM: Record<SafetensorsDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1 };

// ------------------------------------------------------------------ seeds

function seeds(): Uint8Array[] {
  const t = (dtype: SafetensorsDtype, shape: number[], data: TensorToWrite['data']): TensorToWrite => ({ dtype, shape, data });
  return [
    serializeSafetensors({
      'a.weight': t('F32', [2, 3], [1, -2, 3.5, 0, -0, 1e-30]),
      'b.half': t('F16', [4], [0.5, -1, 65504, 6e-8]),
      'c.bf': t('BF16', [2, 2], [1, 2, 3, -1e30]),
      'd.ids': t('I64', [3], [0, -1, 2 ** 40]),
      'e.i32': t('I32', [2], [-(2 ** 31), 2 ** 31 - 1]),
      'f.u8': t('U8', [5], [0, 1, 127, 128, 255]),
      'g.mask': t('BOOL', [3], [1, 0, 1]),
      'h.f64': t('F64', [2], [Math.PI, -1e300]),
      'i.i8': t('I8', [2], [-128, 127]),
      'j.i16': t('I16', [1], [-300]),
      'k.u16': t('U16', [2], [65535, 1]),
      'l.u32': t('U32', [2], [2 ** 32 - 1, 5]),
      'm.u64': t('U64', [1], [2 ** 33]),
    }, { format: 'pt', 'foliar.checkpoint': '{"step":3}' }),
    // empty and scalar tensors, integer-like and unicode names, no metadata
    serializeSafetensors({ '0': t('F32', [0], []), '10': t('F32', [], [7]), '2': t('I32', [2, 0, 3], []), 'ü.名前': t('F16', [1, 1], [1]) }),
    serializeSafetensors({ x: t('F32', [4], [1, 2, 3, 4]) }, {}),
  ];
}

// ------------------------------------------------------------------ the independent reader (the oracle)

interface RefEntry { dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }
type Ref = { ok: true; entries: Map<string, RefEntry>; metadata: Record<string, string>; dataStart: number } | { ok: false; why: string };

const isCount = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The format's rules, written from its description (github.com/huggingface/safetensors), not from the library. */
function refParse(b: Uint8Array): Ref {
  if (b.length < 8) return { ok: false, why: 'shorter than 8 bytes' };
  const n = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
  if (n < 2n || n > 100_000_000n || 8n + n > BigInt(b.length)) return { ok: false, why: `header length ${n}` };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(8, 8 + Number(n)));
  } catch {
    return { ok: false, why: 'not UTF-8' };
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    return { ok: false, why: 'not JSON' };
  }
  if (!j || typeof j !== 'object' || Array.isArray(j)) return { ok: false, why: 'not an object' };
  const dataStart = 8 + Number(n), dataSize = b.length - dataStart;
  const entries = new Map<string, RefEntry>();
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(j)) {
    if (k === '__metadata__') {
      if (!v || typeof v !== 'object' || Array.isArray(v)) return { ok: false, why: '__metadata__ not an object' };
      for (const [mk, mv] of Object.entries(v)) {
        if (typeof mv !== 'string') return { ok: false, why: 'metadata value not a string' };
        Object.defineProperty(metadata, mk, { value: mv, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) return { ok: false, why: `${k} not an object` };
    const e = v as Record<string, unknown>;
    if (typeof e.dtype !== 'string' || !Object.prototype.hasOwnProperty.call(ITEM, e.dtype)) return { ok: false, why: 'dtype' };
    if (!Array.isArray(e.shape) || !e.shape.every(isCount)) return { ok: false, why: 'shape' };
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every(isCount)) return { ok: false, why: 'data_offsets' };
    const [begin, end] = off as [number, number];
    if (begin > end || end > dataSize) return { ok: false, why: 'offsets out of range' };
    let count = 1n;
    for (const d of e.shape as number[]) count *= BigInt(d);
    if (count * BigInt(ITEM[e.dtype as SafetensorsDtype]) !== BigInt(end - begin)) return { ok: false, why: 'size' };
    entries.set(k, { dtype: e.dtype as SafetensorsDtype, shape: [...(e.shape as number[])], begin, end });
  }
  const spans = [...entries.values()].filter((e) => e.end > e.begin).sort((a, c) => a.begin - c.begin);
  for (let i = 1; i < spans.length; i++) if (spans[i]!.begin < spans[i - 1]!.end) return { ok: false, why: 'overlap' };
  return { ok: true, entries, metadata, dataStart };
}

function f16(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1, e = (bits >> 10) & 0x1f, m = bits & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Element i of a tensor as a number (or bigint for 64-bit integers), read with a DataView. */
function refValue(dv: DataView, dtype: SafetensorsDtype, off: number): number | bigint {
  switch (dtype) {
    case 'F64': return dv.getFloat64(off, true);
    case 'F32': return dv.getFloat32(off, true);
    case 'F16': return f16(dv.getUint16(off, true));
    case 'BF16': { const x = new DataView(new ArrayBuffer(4)); x.setUint32(0, dv.getUint16(off, true) << 16); return x.getFloat32(0); }
    case 'I64': return dv.getBigInt64(off, true);
    case 'U64': return dv.getBigUint64(off, true);
    case 'I32': return dv.getInt32(off, true);
    case 'U32': return dv.getUint32(off, true);
    case 'I16': return dv.getInt16(off, true);
    case 'U16': return dv.getUint16(off, true);
    case 'I8': return dv.getInt8(off);
    case 'U8': case 'BOOL': return dv.getUint8(off);
  }
}

const same = (a: number, b: number) => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
const FLOATS = new Set(['F64', 'F32', 'F16', 'BF16']);

interface Reader {
  keys(): string[];
  entry(k: string): { dtype: SafetensorsDtype; shape: number[]; byteOffset: number; byteLength: number } | undefined;
  metadata: Record<string, string>;
  read(k: string, o: { as: 'raw' | 'float32' | 'int32' }): { data: SafetensorsRawArray } | Promise<{ data: SafetensorsRawArray }>;
}

/** Null when the library's reading of `b` matches the reference's, else the first difference. */
async function compareWithReference(b: Uint8Array, f: Reader, source: string): Promise<string | null> {
  const ref = refParse(b);
  if (!ref.ok) return `accepted, but the format says no (${ref.why})`;
  const keys = f.keys();
  if (keys.length !== ref.entries.size || !keys.every((k) => ref.entries.has(k))) return `tensors [${keys.join(', ')}] vs [${[...ref.entries.keys()].join(', ')}]`;
  if (JSON.stringify(Object.entries(f.metadata).sort()) !== JSON.stringify(Object.entries(ref.metadata).sort())) return 'metadata differs';
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (const k of keys) {
    const e = f.entry(k)!, r = ref.entries.get(k)!;
    if (e.dtype !== r.dtype || e.shape.join() !== r.shape.join() || e.byteOffset !== ref.dataStart + r.begin || e.byteLength !== r.end - r.begin) return `entry ${k} differs`;
    const n = r.shape.reduce((x, y) => x * y, 1);
    const item = ITEM[r.dtype];
    // raw: the file's bytes, as a copy
    const raw = (await f.read(k, { as: 'raw' })).data;
    const rb = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
    if (raw.length !== n || !rb.every((x, i) => x === b[e.byteOffset + i])) return `${k} raw bytes differ`;
    if (rb.length) {
      rb[0] ^= 0xff;
      const again = (await f.read(k, { as: 'raw' })).data;
      if (new Uint8Array(again.buffer, again.byteOffset, again.byteLength)[0] !== b[e.byteOffset]) return `${k}: read returned a view of the file, not a copy`;
    }
    const f32 = (await f.read(k, { as: 'float32' })).data as Float32Array;
    if (f32.length !== n) return `${k} float32 length ${f32.length}, expected ${n}`;
    for (let i = 0; i < n; i++) {
      const v = refValue(dv, r.dtype, e.byteOffset + i * item);
      const want = Math.fround(typeof v === 'bigint' ? Number(v) : v);
      if (!same(f32[i]!, want)) return `${k}[${i}] as float32: ${f32[i]} vs ${want}`;
    }
    // int32: integer dtypes whose values fit; anything else a clear error naming the source
    let ints: Int32Array | null = null;
    try {
      ints = (await f.read(k, { as: 'int32' })).data as Int32Array;
    } catch (err) {
      if (!(err instanceof SafetensorsError) || !err.message.includes(source)) return `${k} as int32 threw ${String(err)}`;
    }
    const fits = !FLOATS.has(r.dtype) && Array.from({ length: n }, (_, i) => refValue(dv, r.dtype, e.byteOffset + i * item)).every((v) => BigInt(v) >= -(2n ** 31n) && BigInt(v) < 2n ** 31n);
    if (fits !== (ints !== null)) return `${k} as int32: ${ints ? 'accepted' : 'refused'}, but the values ${fits ? 'fit' : 'do not fit'}`;
    if (ints) for (let i = 0; i < n; i++) if (BigInt(ints[i]!) !== BigInt(refValue(dv, r.dtype, e.byteOffset + i * item))) return `${k}[${i}] as int32 differs`;
  }
  return null;
}

// ------------------------------------------------------------------ mutations

function headerOf(b: Uint8Array): { json: unknown; data: Uint8Array } {
  const n = Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true));
  return { json: JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n))), data: b.subarray(8 + n) };
}

function pack(m: Mutator, headerText: string, data: Uint8Array): Uint8Array {
  let h: Uint8Array = new TextEncoder().encode(headerText);
  if (m.chance(0.5)) h = concat(h, new Uint8Array((8 - (h.length % 8)) % 8).fill(0x20));
  let len = BigInt(h.length);
  if (m.chance(0.1)) len += BigInt(m.pick([-2, -1, 1, 2, 8]));
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt.asUintN(64, len), true);
  return concat(prefix, h, data);
}

function mutate(m: Mutator, seedFiles: Uint8Array[]): Uint8Array {
  const seed = m.pick(seedFiles);
  const kind = m.int(12);
  if (kind < 4) return m.bytes(seed, seedFiles);
  if (kind >= 10) {
    // valid files: the data section's bytes changed (any bit pattern: NaN, subnormals, huge integers),
    // or the header's entries reordered; the reader must still get every value right
    const { json, data } = headerOf(seed);
    const d = data.slice();
    for (let k = 0; k < 1 + m.int(8) && d.length; k++) d[m.int(d.length)] = m.int(256);
    const entries = Object.entries(json as object);
    for (let i = entries.length - 1; i > 0; i--) {
      const j = m.int(i + 1);
      [entries[i], entries[j]] = [entries[j]!, entries[i]!];
    }
    return pack(m, JSON.stringify(Object.fromEntries(entries)), d);
  }
  if (kind < 9) {
    const { json, data } = headerOf(seed);
    const names = Object.keys(json as object);
    const mutated = m.json(json, ['dtype', 'shape', 'data_offsets', '__metadata__', ...names]);
    let d: Uint8Array = data;
    if (m.chance(0.2)) d = m.chance(0.5) ? d.subarray(0, m.int(d.length + 1)) : concat(d, new Uint8Array(1 + m.int(16)));
    return pack(m, m.jsonText(mutated), d);
  }
  // the length prefix itself
  const b = seed.slice();
  const v = m.chance(0.5) ? BigInt(Math.trunc(m.pick(EDGE_NUMBERS))) : m.pick([0n, 1n, 2n, 2n ** 63n, 2n ** 64n - 1n, 100_000_001n, BigInt(b.length), BigInt(b.length - 8), BigInt(b.length - 7)]);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
  return b;
}

// ------------------------------------------------------------------ the test

test('safetensors reader: seeded mutations end as a clear error or a reading the format agrees with', async () => {
  const stats = newStats('safetensors');
  const m = new Mutator(FUZZ_SEED * 7919 + 11);
  const files = seeds();
  // the seeds themselves are read right
  for (const [i, b] of files.entries()) assert.is(await compareWithReference(b, loadSafetensors(b, `seed ${i}`), `seed ${i}`), null);
  let refusedValid = 0;
  const refusedWhy = new Set<string>();
  const N = cases(4000);
  for (let c = 0; c < N; c++) {
    const b = mutate(m, files);
    const source = `case ${c}.safetensors`;
    const r = await runCase(stats, b, () => loadSafetensors(b, source), { source, check: (f) => compareWithReference(b, f, source) });
    if (r === 'clear' && refParse(b).ok) {
      refusedValid++;
      try {
        loadSafetensors(b, source);
      } catch (e) {
        refusedWhy.add((e as Error).message.slice(source.length + 2).replace(/"[^"]*"/g, '"…"'));
      }
    }
    if (c % 8 === 0) {
      // the same bytes from disk: the header and each tensor by positioned reads
      const path = join(tmp, `case-${c}.safetensors`);
      writeFileSync(path, b);
      await runCase(stats, b, async () => {
        const f = await SafetensorsFile.open(path);
        try {
          return await compareWithReference(b, f, path);
        } finally {
          await f.close();
        }
      }, { source: path, check: (wrong) => wrong });
      rmSync(path);
    }
  }
  // the only valid files refused should be those with a repeated key (JSON.parse keeps the last)
  console.log(`  safetensors: ${refusedValid} refused that the independent reader accepts (${[...refusedWhy].join('; ')})`);
  assertClean(stats);
});

test.run();
