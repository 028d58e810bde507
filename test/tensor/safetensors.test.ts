import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SafetensorsFile, SafetensorsError, writeSafetensors, serializeSafetensors, f32ToF16, f16ToF32, f32ToBf16, bf16ToF32,
  writeFileAtomic, type SafetensorsDtype,
} from '@foliar/tensor';
import { shared } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'foliar-st-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Builds a file from a raw header object and data bytes (for corrupt-input tests). */
function rawFile(name: string, header: unknown, data: Uint8Array, lenOverride?: number): string {
  const h = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const buf = new Uint8Array(8 + h.length + data.length);
  new DataView(buf.buffer).setBigUint64(0, BigInt(lenOverride ?? h.length), true);
  buf.set(h, 8);
  buf.set(data, 8 + h.length);
  const p = join(dir, name);
  writeFileSync(p, buf);
  return p;
}

async function expectError(p: string, pattern: RegExp): Promise<void> {
  try {
    const f = await SafetensorsFile.open(p);
    for (const k of f.keys()) await f.read(k);
    f.close();
    assert.unreachable(`${p} should have been rejected`);
  } catch (e) {
    assert.instance(e, SafetensorsError);
    assert.match((e as Error).message, pattern);
    assert.match((e as Error).message, new RegExp(p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  }
}

test('golden files parse and their shapes agree with the manifest', async () => {
  const g = shared('golden', 'safetensors golden files');
  if (!g) return;
  const manifest = JSON.parse(readFileSync(join(g, 'manifest.json'), 'utf8')) as { cases: { file: string; tensors: Record<string, { shape: number[]; dtype: string }> }[] };
  for (const c of manifest.cases.slice(0, 30)) {
    const f = await SafetensorsFile.open(join(g, c.file));
    for (const [name, t] of Object.entries(c.tensors)) {
      const e = f.entry(name);
      assert.ok(e, `${c.file}: ${name}`);
      assert.equal(e!.shape, t.shape, `${c.file}: ${name} shape`);
      assert.is(e!.dtype, t.dtype);
      const r = await f.read(name, { as: t.dtype === 'I64' ? 'int32' : 'float32' });
      assert.is(r.data.length, t.shape.reduce((a, b) => a * b, 1));
    }
    f.close();
  }
});

test('every dtype round-trips, offsets are contiguous and the header is 8-byte aligned', async () => {
  const tensors: [string, { dtype: SafetensorsDtype; shape: number[]; data: ArrayLike<number> | BigInt64Array }][] = [
    ['f32', { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-30, -7]) }],
    ['f64', { dtype: 'F64', shape: [2], data: Float64Array.from([Math.PI, -1]) }],
    ['i64', { dtype: 'I64', shape: [3], data: BigInt64Array.from([1n, -5n, 1n << 40n]) }],
    ['i32', { dtype: 'I32', shape: [2], data: Int32Array.from([7, -9]) }],
    ['u8', { dtype: 'U8', shape: [3], data: Uint8Array.from([0, 128, 255]) }],
    ['f16', { dtype: 'F16', shape: [2], data: Float32Array.from([1.5, -0.25]) }],
    ['bf16', { dtype: 'BF16', shape: [2], data: Float32Array.from([2, -3]) }],
    ['empty', { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) }],
  ];
  const p = join(dir, 'all.safetensors');
  await writeSafetensors(p, tensors, { note: 'hello' });
  const bytes = readFileSync(p);
  const hlen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  assert.is(hlen % 8, 0);
  const f = await SafetensorsFile.open(p);
  assert.equal(f.metadata, { note: 'hello' });
  const entries = f.keys().map((k) => f.entry(k)!).sort((a, b) => a.byteOffset - b.byteOffset);
  let off = 8 + hlen;
  for (const e of entries) {
    assert.is(e.byteOffset, off, `${e.name} starts where the previous ended`);
    off += e.byteLength;
  }
  assert.is(off, bytes.length);
  assert.equal(Array.from((await f.read('f32')).data as Float32Array), [1, -2, 3.5, 0, Math.fround(1e-30), -7]);
  assert.equal(Array.from((await f.read('i64', { as: 'raw' })).data as BigInt64Array), [1n, -5n, 1n << 40n]);
  assert.equal(Array.from((await f.read('f16', { as: 'float32' })).data), [1.5, -0.25]);
  assert.equal(Array.from((await f.read('bf16', { as: 'float32' })).data), [2, -3]);
  assert.equal(Array.from((await f.read('u8', { as: 'float32' })).data), [0, 128, 255]);
  try {
    await f.read('i64', { as: 'int32' });
    assert.unreachable('2^40 does not fit int32');
  } catch (e) {
    assert.match((e as Error).message, /does not fit in int32/);
  }
  f.close();
  // the in-memory serializer writes the same bytes
  assert.equal(Array.from(serializeSafetensors(tensors, { note: 'hello' })), Array.from(bytes));
  assert.equal(SafetensorsFile.fromBytes(new Uint8Array(bytes)).keys().sort(), f.keys().sort());
});

test('f16 and bf16 conversions round to nearest even and keep specials', () => {
  const bits = (xs: number[]) => Array.from(f32ToF16(Float32Array.from(xs)));
  assert.equal(bits([1, 65504, -0, Infinity, -Infinity]), [0x3c00, 0x7bff, 0x8000, 0x7c00, 0xfc00]);
  assert.equal(bits([5.960464477539063e-8]), [0x0001], 'smallest subnormal');
  assert.equal(bits([0.1]), [0x2e66], '0.1 rounds to nearest');
  assert.equal(bits([65520]), [0x7c00], 'overflow rounds to infinity');
  assert.equal(bits([1 + 2 ** -11]), [0x3c00], 'tie to even (down)');
  assert.equal(bits([1 + 3 * 2 ** -11]), [0x3c02], 'tie to even (up)');
  assert.ok(Number.isNaN(f16ToF32(f32ToF16(Float32Array.from([NaN])))[0]!));
  assert.equal(Array.from(f16ToF32(Uint16Array.from([0x3c00, 0x0001, 0xc000, 0x7bff]))), [1, 5.960464477539063e-8, -2, 65504]);
  assert.equal(Array.from(f32ToBf16(Float32Array.from([1, 1.00390625, 1.01171875]))), [0x3f80, 0x3f80, 0x3f82]);
  assert.equal(Array.from(bf16ToF32(Uint16Array.from([0x3f80, 0xc040]))), [1, -3]);
});

test('corrupt files are refused with a message naming the problem and the file', async () => {
  const good = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const data8 = new Uint8Array(8);
  const p0 = join(dir, 'short.safetensors');
  writeFileSync(p0, new Uint8Array(5));
  await expectError(p0, /too short/);
  await expectError(rawFile('hlen.safetensors', good, data8, 1e6), /header length .* exceeds the file size/);
  await expectError(rawFile('json.safetensors', '{"a": [', data8), /not valid UTF-8 JSON/);
  await expectError(rawFile('oob.safetensors', { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, data8), /'a'.*past the end/);
  await expectError(rawFile('size.safetensors', { a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, data8), /'a': 8 bytes do not hold F32 \[3\]/);
  await expectError(rawFile('dtype.safetensors', { a: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }, data8), /'a': unknown dtype "Q4"/);
  await expectError(
    rawFile('overlap.safetensors', { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, data8),
    /overlap/,
  );
  await expectError(rawFile('shape.safetensors', { a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, data8), /invalid shape/);
});

test('writes are atomic: a failed write leaves the old file and no temporary behind', async () => {
  const p = join(dir, 'atomic.safetensors');
  await writeSafetensors(p, [['x', { dtype: 'F32', shape: [1], data: Float32Array.from([1]) }]]);
  try {
    await writeSafetensors(p, [['x', { dtype: 'F32', shape: [3], data: Float32Array.from([1]) }]]);
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /'x' has 1 values for shape \[3\]/);
  }
  const f = await SafetensorsFile.open(p);
  assert.equal(Array.from((await f.read('x')).data as Float32Array), [1]);
  f.close();
  await writeFileAtomic(join(dir, 'note.txt'), 'ok');
  assert.not.ok(readdirSync(dir).some((n) => n.includes('.tmp-')), 'no temporary files left');
});

test.run();
