/**
 * Untrusted input to the I/O helpers (issue 14): paths from data files stay inside their folder
 * (resolveInside), a Node Buffer handed to loadSafetensors is copied, not aliased, and a header that
 * names a tensor (or an entry's key) twice is refused instead of keeping the last.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { resolveInside, UnsafePathError, loadSafetensors, serializeSafetensors, SafetensorsFile, SafetensorsError } from '@foliar/tensor';

const dir = mkdtempSync(join(tmpdir(), 'foliar-untrusted-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function throwsWith(fn: () => unknown, cls: new (...a: never[]) => Error, pattern: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, cls);
    assert.match((e as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected ${cls.name} matching ${pattern}`);
}

test('resolveInside: names inside the folder resolve to absolute paths', () => {
  const root = join(dir, 'data');
  assert.is(resolveInside(root, 'a.jpg', 'x'), join(resolve(root), 'a.jpg'));
  assert.is(resolveInside(root, 'sub/b.png', 'x'), join(resolve(root), 'sub', 'b.png'));
  assert.is(resolveInside(root, './sub/../c.png', 'x'), join(resolve(root), 'c.png'));
  assert.is(resolveInside(root, '..a.jpg', 'x'), join(resolve(root), '..a.jpg'), 'a name starting with two dots is a name');
  assert.is(resolveInside('relative/root', 'f', 'x'), resolve('relative/root', 'f'));
});

test('resolveInside: ../, absolute, empty, NUL and the folder itself are refused, naming what and the path', () => {
  const root = join(dir, 'data');
  for (const bad of ['../x', '../../../etc/passwd', 'sub/../../x', '..', 'a/../../data2/x']) {
    throwsWith(() => resolveInside(root, bad, 'train.csv line 3: image_id'), UnsafePathError, new RegExp(`^train\\.csv line 3: image_id: path ${JSON.stringify(bad).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} leads outside`));
  }
  for (const bad of ['/etc/passwd', 'C:\\Windows\\x', '\\\\host\\share\\x']) throwsWith(() => resolveInside(root, bad, 'index'), UnsafePathError, /^index: absolute path .* refused/);
  throwsWith(() => resolveInside(root, '', 'index'), UnsafePathError, /^index: empty path/);
  throwsWith(() => resolveInside(root, 'a\0b', 'index'), UnsafePathError, /NUL byte/);
  throwsWith(() => resolveInside(root, '.', 'index'), UnsafePathError, /names the folder .* itself/);
  throwsWith(() => resolveInside(root, 'sub/..', 'index'), UnsafePathError, /itself/);
});

const bytesOf = () => serializeSafetensors({ a: { dtype: 'F32', shape: [4], data: Float32Array.of(1, 2, 3, 4) }, b: { dtype: 'I32', shape: [2], data: Int32Array.of(7, 8) } });

test('loadSafetensors copies a Node Buffer: mutating the input does not change returned tensors (and vice versa)', () => {
  // a pooled Buffer (non-zero byteOffset) and a standalone one
  for (const buf of [Buffer.from(bytesOf()), (() => { const big = Buffer.alloc(4096 + bytesOf().length); big.set(bytesOf(), 4096); return big.subarray(4096); })()]) {
    const st = loadSafetensors(buf);
    const raw = st.read('a');
    const f = st.read('a', { as: 'float32' });
    const i = st.read('b', { as: 'int32' });
    assert.equal(Array.from(f.data), [1, 2, 3, 4]);
    buf.fill(0xff, 8); // header and data
    assert.equal(Array.from(f.data), [1, 2, 3, 4], 'float32 read aliased the Buffer');
    assert.equal(Array.from(raw.data as Float32Array), [1, 2, 3, 4], 'raw read aliased the Buffer');
    assert.equal(Array.from(i.data), [7, 8], 'int32 read aliased the Buffer');
    (f.data as Float32Array)[0] = 99;
    assert.equal(Array.from(loadSafetensors(Buffer.from(bytesOf())).read('a', { as: 'float32' }).data), [1, 2, 3, 4]);
  }
});

test('loadSafetensors over a Uint8Array and an ArrayBuffer: reads are copies too', () => {
  const u = bytesOf();
  const f = loadSafetensors(u).read('a', { as: 'float32' });
  u.fill(0, 8);
  assert.equal(Array.from(f.data), [1, 2, 3, 4]);
  const ab = bytesOf().buffer as ArrayBuffer;
  const g = loadSafetensors(ab).read('a');
  new Uint8Array(ab).fill(0, 8);
  assert.equal(Array.from(g.data as Float32Array), [1, 2, 3, 4]);
});

/** A safetensors file from raw header text and data bytes. */
function raw(header: string, data: Uint8Array): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

test('duplicate tensor names in a header are refused (JSON.parse would keep the last), in memory and on disk', async () => {
  const data = new Uint8Array(16);
  const cases: [string, RegExp][] = [
    ['{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', /duplicate tensor name "w" in the header/],
    // the same name spelled with an escape is still the same name
    ['{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"\\u0077":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', /duplicate tensor name "w"/],
    ['{"__metadata__":{"a":"1"},"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"__metadata__":{}}', /duplicate key "__metadata__" in the header/],
    ['{"__metadata__":{"a":"1","a":"2"},"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', /duplicate key "a" in __metadata__/],
    ['{"w":{"dtype":"F32","shape":[4],"dtype":"I32","data_offsets":[0,16]}}', /duplicate key "dtype" in the header entry of tensor "w"/],
  ];
  for (const [header, pattern] of cases) {
    throwsWith(() => loadSafetensors(raw(header, data), 'mem.safetensors'), SafetensorsError, pattern);
    const p = join(dir, 'dup.safetensors');
    writeFileSync(p, raw(header, data));
    try {
      await SafetensorsFile.open(p);
      assert.unreachable('should refuse');
    } catch (e) {
      assert.instance(e, SafetensorsError);
      assert.match((e as Error).message, p);
      assert.match((e as Error).message, pattern);
    }
  }
});

test('keys that only look alike are not duplicates: escaped quotes, backslashes, nested arrays, equal keys in different entries', () => {
  const data = new Uint8Array(16);
  const names = ['a"b', 'a\\', 'a\\"', 'x'];
  const parts = names.map((n, i) => `${JSON.stringify(n)}:{"dtype":"F32","shape":[1],"data_offsets":[${i * 4},${i * 4 + 4}]}`);
  const st = loadSafetensors(raw(`{"__metadata__":{"shape":"[1,2]","x":"{\\"a\\":1,\\"a\\":2}"},${parts.join(',')}}`, data));
  assert.equal(st.keys().sort(), [...names].sort());
  assert.is(st.metadata.x, '{"a":1,"a":2}');
});

test.run();
