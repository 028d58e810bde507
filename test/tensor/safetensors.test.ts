/**
 * safetensors reader/writer: real files written by Python's safetensors (../shared/golden) are parsed,
 * checked against the manifest and rewritten byte for byte; every dtype round-trips; corrupt files are
 * refused with messages naming the problem; writes are atomic; offsets beyond 4 GiB work.
 */
import { test, skip } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, readdirSync, openSync, writeSync, closeSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import {
  SafetensorsFile, SafetensorsError, writeSafetensors, serializeSafetensors, loadSafetensors, readSafetensorsHeader,
  parseSafetensorsHeader, writeFileAtomic, openAtomic, type SafetensorsDtype, type TensorToWrite,
} from '@foliar/tensor';
import { shared } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'foliar-st-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const enc = new TextEncoder();

/** A file from a raw header (object or text) and data bytes, for corrupt-input tests. */
function rawBytes(header: unknown, data: Uint8Array, lenOverride?: number): Uint8Array {
  const h = typeof header === 'string' ? enc.encode(header) : header instanceof Uint8Array ? header : enc.encode(JSON.stringify(header));
  const buf = new Uint8Array(8 + h.length + data.length);
  new DataView(buf.buffer).setBigUint64(0, BigInt(lenOverride ?? h.length), true);
  buf.set(h, 8);
  buf.set(data, 8 + h.length);
  return buf;
}
function rawFile(name: string, header: unknown, data: Uint8Array, lenOverride?: number): string {
  const p = join(dir, name);
  writeFileSync(p, rawBytes(header, data, lenOverride));
  return p;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Opening (and reading every tensor of) `p` fails with a SafetensorsError naming the file and matching `pattern`. */
async function expectError(p: string, pattern: RegExp): Promise<void> {
  let err: unknown = null;
  try {
    const f = await SafetensorsFile.open(p);
    try {
      for (const k of f.keys()) await f.read(k);
    } finally {
      await f.close();
    }
  } catch (e) {
    err = e;
  }
  if (!err) assert.unreachable(`${p} should have been rejected (${pattern})`);
  assert.instance(err, SafetensorsError);
  assert.match((err as Error).message, pattern);
  assert.match((err as Error).message, new RegExp(`^${escape(p)}: `), 'the message names the file');
  assert.is((err as SafetensorsError).source, p);
  // the in-memory reader applies the same validation
  if (existsSync(p)) {
    try {
      const b = loadSafetensors(new Uint8Array(readFileSync(p)), 'mem');
      for (const k of b.keys()) b.read(k);
      assert.unreachable(`in-memory ${p} should have been rejected`);
    } catch (e) {
      assert.instance(e, SafetensorsError);
      assert.match((e as Error).message, pattern);
    }
  }
}

// ---------------------------------------------------------------- golden files (written by Python)

interface Manifest {
  cases: { file: string; tensors: Record<string, { shape: number[]; dtype: string }> }[];
}

function listSafetensors(root: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(root, { withFileTypes: true })) {
    const p = join(root, e.name);
    if (e.isDirectory()) out.push(...listSafetensors(p));
    else if (e.name.endsWith('.safetensors')) out.push(p);
  }
  return out.sort();
}

test('golden files parse and agree with manifest.json (names, dtypes, shapes)', async () => {
  const g = shared('golden', 'safetensors golden files');
  if (!g) skip('../shared/golden not found', 'shared');
  const manifest = JSON.parse(readFileSync(join(g, 'manifest.json'), 'utf8')) as Manifest;
  assert.ok(manifest.cases.length >= 41);
  let tensors = 0;
  for (const c of manifest.cases) {
    const f = await SafetensorsFile.open(join(g, c.file));
    try {
      assert.equal(f.keys().sort(), Object.keys(c.tensors).sort(), `${c.file}: tensor names`);
      for (const [name, t] of Object.entries(c.tensors)) {
        const e = f.entry(name)!;
        assert.equal(e.shape, t.shape, `${c.file}: ${name} shape`);
        assert.is(e.dtype, t.dtype, `${c.file}: ${name} dtype`);
        const r = await f.read(name, { as: t.dtype === 'I64' ? 'int32' : 'float32' });
        assert.is(r.data.length, t.shape.reduce((a, b) => a * b, 1));
        if (t.dtype === 'F32') assert.ok(r.data instanceof Float32Array);
        tensors++;
      }
    } finally {
      await f.close();
    }
  }
  assert.ok(tensors > 400, `${tensors} tensors checked`);
});

test('golden values decode as Python wrote them (spot checks against the raw bytes)', async () => {
  const g = shared('golden', 'safetensors golden files');
  if (!g) skip('../shared/golden not found', 'shared');
  const p = join(g, 'ops', 'embedding.safetensors');
  const bytes = readFileSync(p);
  const h = await readSafetensorsHeader(p);
  assert.is(h.fileSize, bytes.length);
  assert.equal(h.metadata, { case: 'embedding' });
  const ids = h.entries.get('ids')!;
  assert.is(ids.byteOffset, 8 + h.headerSize, 'I64 data comes first (highest dtype rank)');
  const f = await SafetensorsFile.open(p);
  const asInt = (await f.read('ids', { as: 'int32' })).data;
  const raw = (await f.read('ids', { as: 'raw' })).data as BigInt64Array;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < asInt.length; i++) {
    assert.is(raw[i], dv.getBigInt64(ids.byteOffset + 8 * i, true));
    assert.is(asInt[i], Number(raw[i]));
    assert.ok(asInt[i]! >= 0 && asInt[i]! < 50, 'ids index a 50-row table');
  }
  const w = f.entry('weight')!;
  const wd = (await f.read('weight', { as: 'float32' })).data;
  for (const i of [0, 1, 17, wd.length - 1]) assert.is(wd[i], dv.getFloat32(w.byteOffset + 4 * i, true));
  await f.close();
});

test('rewriting every golden file reproduces it byte for byte (layout, header, padding = Python safetensors)', async () => {
  const g = shared('golden', 'safetensors golden files');
  if (!g) skip('../shared/golden not found', 'shared');
  const files = listSafetensors(g);
  assert.ok(files.length >= 41);
  for (const p of files) {
    const f = await SafetensorsFile.open(p);
    const tensors: [string, TensorToWrite][] = [];
    for (const k of f.keys()) {
      const r = await f.read(k);
      tensors.push([k, { dtype: r.dtype, shape: r.shape, data: r.data }]);
    }
    const meta = Object.keys(f.metadata).length ? f.metadata : undefined;
    await f.close();
    const want = readFileSync(p);
    const got = serializeSafetensors(tensors.reverse(), meta);
    const rel = relative(g, p);
    if (Buffer.compare(Buffer.from(got), want) !== 0) {
      const n = Number(want.readBigUInt64LE(0));
      assert.fixture(new TextDecoder().decode(got.subarray(8, 8 + n)), want.subarray(8, 8 + n).toString(), `${rel}: header`);
      assert.unreachable(`${rel}: bytes differ`);
    }
    const out = join(dir, 'rewrite.safetensors');
    await writeSafetensors(out, tensors, meta);
    assert.ok(readFileSync(out).equals(want), `${rel}: writeSafetensors output`);
  }
});

// ---------------------------------------------------------------- round trips

const ALL: [string, TensorToWrite][] = [
  ['f64', { dtype: 'F64', shape: [3], data: Float64Array.from([Math.PI, -1e300, 5e-324]) }],
  ['f32', { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-30, -7]) }],
  ['f16', { dtype: 'F16', shape: [4], data: Uint16Array.from([0x3c00, 0xc000, 0x0001, 0x7bff]) }],
  ['bf16', { dtype: 'BF16', shape: [3], data: Uint16Array.from([0x3f80, 0xc040, 0x7f80]) }],
  ['i64', { dtype: 'I64', shape: [4], data: BigInt64Array.from([1n, -5n, -(1n << 63n), (1n << 63n) - 1n]) }],
  ['u64', { dtype: 'U64', shape: [2], data: BigUint64Array.from([0n, (1n << 64n) - 1n]) }],
  ['i32', { dtype: 'I32', shape: [3], data: Int32Array.from([7, -9, -2147483648]) }],
  ['u32', { dtype: 'U32', shape: [2], data: Uint32Array.from([0, 4294967295]) }],
  ['i16', { dtype: 'I16', shape: [2], data: Int16Array.from([-32768, 32767]) }],
  ['u16', { dtype: 'U16', shape: [2], data: Uint16Array.from([0, 65535]) }],
  ['i8', { dtype: 'I8', shape: [3], data: Int8Array.from([-128, 0, 127]) }],
  ['u8', { dtype: 'U8', shape: [3], data: Uint8Array.from([0, 128, 255]) }],
  ['bool', { dtype: 'BOOL', shape: [2, 2], data: Uint8Array.from([1, 0, 0, 1]) }],
  ['empty', { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) }],
  ['scalar', { dtype: 'F32', shape: [], data: Float32Array.from([42]) }],
];

test('every dtype round-trips exactly; layout is contiguous, 8-aligned and dtype-sorted', async () => {
  const p = join(dir, 'all.safetensors');
  await writeSafetensors(p, ALL, { note: 'hello', 'ünï': 'cödé' });
  const bytes = readFileSync(p);
  const hlen = Number(bytes.readBigUInt64LE(0));
  assert.is(hlen % 8, 0, 'header padded to 8 bytes');
  assert.match(bytes.subarray(8, 8 + hlen).toString(), /^\{"__metadata__":\{.*\}\} *$/, 'metadata first, space padding');
  const f = await SafetensorsFile.open(p);
  assert.equal(f.metadata, { note: 'hello', 'ünï': 'cödé' });
  // data order: descending dtype alignment rank (Python's order), then name
  assert.equal(f.keys(), ['u64', 'i64', 'f64', 'empty', 'f32', 'scalar', 'u32', 'i32', 'bf16', 'f16', 'u16', 'i16', 'i8', 'u8', 'bool']);
  let off = 8 + hlen;
  for (const k of f.keys()) {
    const e = f.entry(k)!;
    assert.is(e.byteOffset, off, `${k} starts where the previous ended`);
    const size = { F64: 8, I64: 8, U64: 8, F32: 4, I32: 4, U32: 4 }[e.dtype as string] ?? 1;
    assert.is(e.byteOffset % size, 0, `${k} aligned`);
    off += e.byteLength;
  }
  assert.is(off, bytes.length, 'no trailing bytes');
  for (const [name, t] of ALL) {
    const r = await f.read(name);
    assert.is(r.dtype, t.dtype);
    assert.equal(r.shape, [...t.shape]);
    assert.is(r.data.constructor, t.data.constructor, `${name} type`);
    assert.equal(Array.from(r.data as ArrayLike<number>), Array.from(t.data as ArrayLike<number>), `${name} values`);
  }
  await f.close();
  // the in-memory serialiser writes the same bytes, and the in-memory reader reads them synchronously
  assert.ok(Buffer.from(serializeSafetensors(ALL, { note: 'hello', 'ünï': 'cödé' })).equals(bytes));
  const m = loadSafetensors(new Uint8Array(bytes), 'mem');
  assert.equal(m.keys(), f.keys());
  assert.equal(Array.from(m.read('i64').data as BigInt64Array), Array.from(ALL[4]![1].data as BigInt64Array));
  assert.equal(Array.from(m.read('f16', { as: 'float32' }).data), [1, -2, 2 ** -24, 65504]);
});

test('float32 and int32 views of every dtype', async () => {
  const f = loadSafetensors(serializeSafetensors(ALL));
  const as32 = (k: string) => Array.from(f.read(k, { as: 'float32' }).data);
  assert.equal(as32('f64'), [Math.fround(Math.PI), -Infinity, 0]);
  assert.equal(as32('f16'), [1, -2, 2 ** -24, 65504]);
  assert.equal(as32('bf16'), [1, -3, Infinity]);
  assert.equal(as32('i64'), [1, -5, -(2 ** 63), 2 ** 63]);
  assert.equal(as32('u64'), [0, 2 ** 64]);
  assert.equal(as32('i8'), [-128, 0, 127]);
  assert.equal(as32('bool'), [1, 0, 0, 1]);
  const as32i = (k: string) => Array.from(f.read(k, { as: 'int32' }).data);
  assert.equal(as32i('i32'), [7, -9, -2147483648]);
  assert.equal(as32i('u16'), [0, 65535]);
  assert.equal(as32i('i16'), [-32768, 32767]);
  assert.equal(as32i('bool'), [1, 0, 0, 1]);
  assert.ok(f.read('i32', { as: 'int32' }).data instanceof Int32Array);
  const small = loadSafetensors(serializeSafetensors({ a: { dtype: 'I64', shape: [3], data: BigInt64Array.from([-1n, 2147483647n, -2147483648n]) } }));
  assert.equal(Array.from(small.read('a', { as: 'int32' }).data), [-1, 2147483647, -2147483648]);
  assert.throws(() => f.read('i64', { as: 'int32' }), /tensor 'i64': I64 value -9223372036854775808 at index 2 does not fit in int32/);
  assert.throws(() => f.read('u32', { as: 'int32' }), /tensor 'u32': U32 value 4294967295 at index 1 does not fit in int32/);
  assert.throws(() => f.read('u64', { as: 'int32' }), /'u64'.*at index 1 does not fit/);
  assert.throws(() => f.read('f32', { as: 'int32' }), /'f32' is F32, not an integer tensor/);
  assert.throws(() => f.read('nope'), /no tensor named 'nope'/);
});

test('conversions on write: f32 data stored as F16/BF16/ints, with range checks', () => {
  const b = serializeSafetensors([
    ['h', { dtype: 'F16', shape: [3], data: Float32Array.from([0.1, 65520, -0]) }],
    ['b', { dtype: 'BF16', shape: [2], data: [1 + 2 ** -8, 3] }],
    ['i', { dtype: 'I64', shape: [3], data: Int32Array.from([-1, 5, -2147483648]) }],
    ['j', { dtype: 'I64', shape: [2], data: [2 ** 53 - 1, -(2 ** 40)] }],
    ['u', { dtype: 'U8', shape: [2], data: Float32Array.from([3, 255]) }],
    ['q', { dtype: 'BOOL', shape: [3], data: [0, 2, -1] }],
  ]);
  const f = loadSafetensors(b);
  assert.equal(Array.from(f.read('h').data as Uint16Array), [0x2e66, 0x7c00, 0x8000]);
  assert.equal(Array.from(f.read('b').data as Uint16Array), [0x3f80, 0x4040]);
  assert.equal(Array.from(f.read('i').data as BigInt64Array), [-1n, 5n, -2147483648n]);
  assert.equal(Array.from(f.read('j').data as BigInt64Array), [2n ** 53n - 1n, -(2n ** 40n)]);
  assert.equal(Array.from(f.read('u').data as Uint8Array), [3, 255]);
  assert.equal(Array.from(f.read('q').data as Uint8Array), [0, 1, 1]);
  const one = (dtype: SafetensorsDtype, data: TensorToWrite['data']) => () => serializeSafetensors({ x: { dtype, shape: [data.length], data } });
  assert.throws(one('U8', [256]), /tensor 'x': value 256 at index 0 is out of range for U8/);
  assert.throws(one('I32', Float32Array.from([0, 1.5])), /value 1.5 at index 1 is not an integer for I32/);
  assert.throws(one('U64', Int32Array.from([-1])), /value -1 at index 0 is out of range for U64/);
  assert.throws(one('I64', [2 ** 60]), /not an exactly representable integer/);
  assert.throws(() => serializeSafetensors({ x: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } }), /'x' has 3 values for shape \[2, 2\]/);
  assert.throws(() => serializeSafetensors({ x: { dtype: 'F8' as SafetensorsDtype, shape: [1], data: [1] } }), /'x' has unknown dtype "F8"/);
  assert.throws(() => serializeSafetensors({ x: { dtype: 'F32', shape: [-1], data: [] } }), /'x' has invalid shape/);
  assert.throws(() => serializeSafetensors({ __metadata__: { dtype: 'F32', shape: [0], data: [] } }), /reserved/);
  assert.throws(() => serializeSafetensors([['a', { dtype: 'F32', shape: [0], data: [] }], ['a', { dtype: 'F32', shape: [0], data: [] }]]), /duplicate tensor name 'a'/);
  assert.throws(() => serializeSafetensors({}, { k: 1 as unknown as string }), /metadata\['k'\] is 1, not a string/);
  // an empty file is valid: "{}" padded to 8 bytes, as Python writes it
  assert.equal(Array.from(serializeSafetensors({})), [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
  // names order by code point (as Rust's str), integer-like names keep that order in the JSON
  const named = loadSafetensors(serializeSafetensors({ b: ALL[1]![1], '10': ALL[1]![1], '9': ALL[1]![1], B: ALL[1]![1], '\u{1F600}': ALL[1]![1], '\uFFFD': ALL[1]![1] }));
  assert.equal(named.keys(), ['10', '9', 'B', 'b', '\uFFFD', '\u{1F600}']);
});

// ---------------------------------------------------------------- corrupt input

test('corrupt files are refused with a message naming the problem and the file', async () => {
  const good = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const data8 = new Uint8Array(8);
  const short = join(dir, 'short.safetensors');
  writeFileSync(short, new Uint8Array(5));
  await expectError(short, /file is 5 bytes, too short/);
  await expectError(join(dir, 'missing.safetensors'), /file not found/);
  await expectError(rawFile('hlen.safetensors', good, data8, 1e6), /header length 1000000 exceeds the file size \d+/);
  await expectError(rawFile('hbig.safetensors', good, data8, 2 ** 40), /header length 1099511627776 exceeds the 100000000-byte limit/);
  await expectError(rawFile('hsmall.safetensors', good, data8, 1), /header length 1 is too small/);
  await expectError(rawFile('json.safetensors', '{"a": [', data8), /header is not valid JSON/);
  await expectError(rawFile('utf8.safetensors', Uint8Array.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), data8), /header is not valid UTF-8/);
  await expectError(rawFile('array.safetensors', '[1, 2]', data8), /header is \[1,2\], not a JSON object/);
  await expectError(rawFile('oob.safetensors', { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, data8), /tensor 'a': data_offsets \[0, 16\] .* run past the end of the data section \(8 bytes/);
  await expectError(rawFile('rev.safetensors', { a: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, data8), /tensor 'a': data_offsets \[8, 4\] end before they begin/);
  await expectError(rawFile('offs.safetensors', { a: { dtype: 'F32', shape: [2], data_offsets: [0] } }, data8), /tensor 'a': invalid data_offsets \[0\]/);
  await expectError(rawFile('size.safetensors', { a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, data8), /tensor 'a': data_offsets \[0, 8\] span 8 bytes, but F32 \[3\] needs 12/);
  await expectError(rawFile('dtype.safetensors', { a: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }, data8), /tensor 'a': unknown dtype "Q4"/);
  await expectError(rawFile('shape.safetensors', { a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, data8), /tensor 'a': invalid shape \[-2\]/);
  await expectError(rawFile('shape2.safetensors', { a: { dtype: 'F32', shape: [1.5], data_offsets: [0, 8] } }, data8), /tensor 'a': invalid shape \[1.5\]/);
  await expectError(rawFile('entry.safetensors', { a: 3 }, data8), /tensor 'a': header entry is 3, not an object/);
  await expectError(
    rawFile('overlap.safetensors', { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, data8),
    /tensors 'a' \[0, 8\] and 'b' \[4, 8\] overlap/,
  );
  // an empty tensor in between must not hide an overlap
  await expectError(
    rawFile('overlap2.safetensors', {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, z: { dtype: 'F32', shape: [0], data_offsets: [4, 4] }, b: { dtype: 'U8', shape: [2], data_offsets: [4, 6] },
    }, data8),
    /tensors 'a' \[0, 8\] and 'b' \[4, 6\] overlap/,
  );
  await expectError(rawFile('meta.safetensors', { __metadata__: { k: 1 }, ...good }, data8), /__metadata__\['k'\] is 1, not a string/);
  await expectError(rawFile('meta2.safetensors', { __metadata__: 'x', ...good }, data8), /__metadata__ is "x", not an object/);
  // a real file cut short: the last tensor no longer fits
  const whole = serializeSafetensors(ALL);
  const cut = join(dir, 'truncated.safetensors');
  writeFileSync(cut, whole.subarray(0, whole.length - 3));
  await expectError(cut, /tensor 'bool': data_offsets \[\d+, \d+\] .*run past the end of the data section .*file truncated/);
  const cutHeader = join(dir, 'truncated-header.safetensors');
  writeFileSync(cutHeader, whole.subarray(0, 20));
  await expectError(cutHeader, /header length \d+ exceeds the file size 20/);
  // parseSafetensorsHeader on its own (e.g. for a header fetched with an HTTP range request)
  const json = enc.encode('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}');
  assert.throws(() => parseSafetensorsHeader(json, 8 + json.length + 2, 'remote'), (e: Error) => e instanceof SafetensorsError && /^remote: tensor 'a'.*run past the end/.test(e.message));
});

test('a file shrinking after open is reported when reading', async () => {
  const p = join(dir, 'shrink.safetensors');
  await writeSafetensors(p, ALL);
  const f = await SafetensorsFile.open(p);
  writeFileSync(p, readFileSync(p).subarray(0, f.entry('f32')!.byteOffset + 2));
  try {
    await f.read('f32');
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /unexpected end of file at byte \d+ while reading tensor 'f32'/);
  }
  await f.close();
  try {
    await f.read('f32');
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /the file is closed/);
  }
});

// ---------------------------------------------------------------- big files, atomicity, Python

test('positioned reads past 4 GiB: header read alone, tail tensor read without touching the rest', async () => {
  const big = 5 * 2 ** 30; // a sparse file: only the header and the last 16 bytes are written
  const header = enc.encode(JSON.stringify({
    huge: { dtype: 'U8', shape: [big], data_offsets: [0, big] },
    tail: { dtype: 'F32', shape: [4], data_offsets: [big, big + 16] },
  }));
  const p = join(dir, 'sparse.safetensors');
  writeFileSync(p, rawBytes(header, new Uint8Array(0)));
  const fd = openSync(p, 'r+');
  try {
    writeSync(fd, new Uint8Array(Float32Array.from([1, -2, 3, 0.5]).buffer), 0, 16, 8 + header.length + big);
  } finally {
    closeSync(fd);
  }
  const t0 = Date.now();
  const h = await readSafetensorsHeader(p);
  assert.is(h.fileSize, 8 + header.length + big + 16);
  assert.is(h.entries.get('tail')!.byteOffset, 8 + header.length + big);
  const f = await SafetensorsFile.open(p);
  assert.equal(Array.from((await f.read('tail', { as: 'float32' })).data), [1, -2, 3, 0.5]);
  await f.close();
  assert.ok(Date.now() - t0 < 5000, 'did not read the 5 GiB');
});

test('writes are atomic: failures leave the old file and no temporary behind', async () => {
  const p = join(dir, 'atomic', 'w.safetensors');
  await writeSafetensors(p, [['x', { dtype: 'F32', shape: [1], data: Float32Array.from([1]) }]]);
  // a mismatch found before writing
  try {
    await writeSafetensors(p, [['x', { dtype: 'F32', shape: [3], data: Float32Array.from([1]) }]]);
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /w\.safetensors: tensor 'x' has 1 values for shape \[3\]/);
  }
  // a bad value found in the middle of streaming (after the first tensor was written)
  try {
    await writeSafetensors(p, [['a', { dtype: 'F32', shape: [2 ** 21], data: new Float32Array(2 ** 21) }], ['z', { dtype: 'U8', shape: [1], data: [300] }]]);
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /w\.safetensors: tensor 'z': value 300 at index 0 is out of range for U8/);
  }
  const f = await SafetensorsFile.open(p);
  assert.equal(f.keys(), ['x']);
  assert.equal(Array.from((await f.read('x')).data as Float32Array), [1]);
  await f.close();
  await writeFileAtomic(join(dir, 'atomic', 'note.txt'), 'ok');
  assert.is(readFileSync(join(dir, 'atomic', 'note.txt'), 'utf8'), 'ok');
  const w = await openAtomic(join(dir, 'atomic', 'aborted.txt'));
  await w.write('partial');
  assert.ok(existsSync(w.tempPath), 'temporary exists while writing');
  assert.match(w.tempPath, /aborted\.txt\.tmp-\d+-[0-9a-f]+$/);
  await w.abort();
  assert.not.ok(existsSync(join(dir, 'atomic', 'aborted.txt')));
  // many small chunks and one big one are written in order
  const w2 = await openAtomic(join(dir, 'atomic', 'chunks.bin'));
  const bigChunk = new Uint8Array(3 << 20).map((_, i) => i & 0xff);
  for (let i = 0; i < 1000; i++) await w2.write(Uint8Array.of(i & 0xff));
  await w2.write(bigChunk);
  await w2.write('end');
  await w2.commit();
  const got = readFileSync(join(dir, 'atomic', 'chunks.bin'));
  assert.is(got.length, 1000 + bigChunk.length + 3);
  assert.is(got[999], 999 & 0xff);
  assert.ok(got.subarray(1000, 1000 + bigChunk.length).equals(bigChunk));
  assert.is(got.subarray(-3).toString(), 'end');
  try {
    await w2.write('late');
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /already committed/);
  }
  assert.equal(readdirSync(join(dir, 'atomic')).filter((n) => n.includes('.tmp-')), [], 'no temporary files left');
});

test("Python's safetensors loads what we write (and we load what it writes)", async () => {
  const py = spawnSync('python3', ['-c', 'import safetensors.numpy, numpy'], { encoding: 'utf8' });
  if (py.status !== 0) skip('python3 with safetensors + numpy not available (the golden-file rewrite test checks the same layout)', 'tool');
  const ours = join(dir, 'ours.safetensors');
  const theirs = join(dir, 'theirs.safetensors');
  const noBf16 = ALL.filter(([k]) => k !== 'bf16'); // numpy has no bfloat16
  await writeSafetensors(ours, noBf16, { who: 'foliar' });
  const script = `
import json, sys, numpy as np
from safetensors.numpy import load_file, save_file
from safetensors import safe_open
t = load_file(sys.argv[1])
with safe_open(sys.argv[1], 'np') as f: meta = f.metadata()
out = {k: [str(v.dtype), list(v.shape), [str(x) for x in v.reshape(-1).tolist()]] for k, v in t.items()}
save_file({'w': np.arange(6, dtype=np.float32).reshape(2, 3), 'i': np.array([-3, 4], dtype=np.int64)}, sys.argv[2], metadata={'m': 'x'})
print(json.dumps({'meta': meta, 'tensors': out}))
`;
  const r = spawnSync('python3', ['-c', script, ours, theirs], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const res = JSON.parse(r.stdout) as { meta: Record<string, string>; tensors: Record<string, [string, number[], string[]]> };
  assert.equal(res.meta, { who: 'foliar' });
  const npName: Record<string, string> = { F64: 'float64', F32: 'float32', F16: 'float16', I64: 'int64', U64: 'uint64', I32: 'int32', U32: 'uint32', I16: 'int16', U16: 'uint16', I8: 'int8', U8: 'uint8', BOOL: 'bool' };
  for (const [k, t] of noBf16) {
    const [dt, shape, values] = res.tensors[k]!;
    assert.is(dt, npName[t.dtype], `${k} dtype`);
    assert.equal(shape, [...t.shape], `${k} shape`);
    assert.is(values.length, (t.data as ArrayLike<unknown>).length, `${k} size`);
    if (t.dtype.startsWith('I') || t.dtype.startsWith('U')) assert.equal(values, Array.from(t.data as ArrayLike<number>, String), `${k} values`);
  }
  const f = await SafetensorsFile.open(theirs);
  assert.equal(f.metadata, { m: 'x' });
  assert.equal(Array.from((await f.read('w', { as: 'float32' })).data), [0, 1, 2, 3, 4, 5]);
  assert.equal(Array.from((await f.read('i', { as: 'int32' })).data), [-3, 4]);
  await f.close();
});

test.run();
