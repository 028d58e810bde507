// Tensors larger than one storage binding (issue 16): with the binding limit lowered to 64 KiB, the
// ops with a split path (embedding row shards and their scatter-add, flat elementwise windows,
// attention by head groups and query chunks) must give the unsplit results, and the others must refuse
// by name instead of failing inside the driver.
import { test } from '../harness.js';
import { setup, teardown, requireGpu, assertClose, assertThrowsWith, randArray, randIntArray } from '../helpers.js';
import * as assert from 'uvu/assert';
import { cpuBackend, tensor, memory, embedding, randn, rand, Generator, setMaxBindingBytes, type Backend, type Tensor } from '@foliar/tensor';
import { scaledDotProductAttention } from '../../packages/tensor/src/ops/attention/index.js';

const LIMIT = 64 * 1024;
const cpu = cpuBackend();

test.before(async () => {
  await setup();
});
test.after(() => {
  setMaxBindingBytes(null);
  teardown();
});

/** Runs `fn` with the binding limit lowered, restoring it even when `fn` throws. */
async function lowered<T>(fn: () => Promise<T> | T): Promise<T> {
  setMaxBindingBytes(LIMIT);
  try {
    return await fn();
  } finally {
    setMaxBindingBytes(null);
  }
}

const put = (data: Float32Array | Int32Array, shape: number[], be: Backend, grad = false): Tensor => tensor(data, { shape, backend: be, requiresGrad: grad });

test('the lowered limit is reported and a kernel without a split path refuses a larger tensor by name', async () => {
  const gpu = requireGpu();
  await lowered(async () => {
    assert.is(gpu.maxBindingBytes, LIMIT);
    const a = put(randArray(200 * 100, 1), [200, 100], gpu); // 80 KB > 64 KiB
    const b = put(randArray(100 * 8, 2), [100, 8], gpu);
    assertThrowsWith(() => a.matmul(b), [/matmul/, /8\d{4} bytes/, /65536/, /no split path/], 'matmul over the limit');
    a.dispose();
    b.dispose();
  });
  assert.ok(gpu.maxBindingBytes > LIMIT, 'restored');
});

test('embedding over row shards: forward and the scatter-add gradient equal the CPU reference', async () => {
  const gpu = requireGpu();
  // 301 rows x 96 f32 = 115,584 bytes: two shards at 64 KiB, rows that straddle no window boundary check
  const rows = 301, dim = 96;
  const w = randArray(rows * dim, 3);
  const ids = randIntArray(57, 4, 0, rows);
  ids[0] = 0; ids[1] = rows - 1; ids[2] = 170; ids[3] = 170; // both ends, and a repeated id across the shard boundary area
  const g = randArray(57 * dim, 5);
  const ref = await (async () => {
    const wt = put(w, [rows, dim], cpu, true);
    const y = embedding(put(ids, [3, 19], cpu), wt);
    y.backward(put(g, [3, 19, dim], cpu));
    return { y: await y.dataF32(), grad: await wt.grad!.dataF32() };
  })();
  await lowered(async () => {
    const before = memory(gpu).liveBuffers;
    const wt = put(w, [rows, dim], gpu, true);
    const y = embedding(put(ids, [3, 19], gpu), wt);
    await assertClose(await y.dataF32(), ref.y, { rtol: 0, atol: 0, msg: 'embedding forward' });
    y.backward(put(g, [3, 19, dim], gpu));
    await assertClose(await wt.grad!.dataF32(), ref.grad, { rtol: 1e-6, msg: 'embedding gradient' });
    y.dispose();
    wt.grad!.dispose();
    wt.dispose();
    await gpu.sync();
    assert.ok(memory(gpu).liveBuffers <= before + 2, `no leaked buffers (${memory(gpu).liveBuffers - before} more)`);
  });
});

test('embedding over row shards reports an out-of-range id', async () => {
  const gpu = requireGpu();
  await lowered(async () => {
    const wt = put(randArray(301 * 96, 3), [301, 96], gpu);
    const y = embedding(put(new Int32Array([4, 301]), [2], gpu), wt);
    let message = '';
    try {
      await y.dataF32();
    } catch (e) {
      message = (e as Error).message;
    }
    assert.match(message, /301/, 'the bad id is named');
    y.dispose();
    wt.dispose();
  });
});

test('an f16 embedding table over row shards is read in place and equals the f32 rows rounded to f16', async () => {
  const gpu = requireGpu();
  // 401 x 96 f16 = 77 KB: two shards at 64 KiB, each window starting at a row's first half-word
  const rows = 401, dim = 96;
  const w = randArray(rows * dim, 31);
  const ids = randIntArray(40, 32, 0, rows);
  ids[0] = rows - 1; ids[1] = 0;
  const wh = put(w, [rows, dim], gpu).half(); // cast before lowering the limit (the cast has no split path)
  const ref = await embedding(put(ids, [40], gpu), wh.float()).dataF32();
  await lowered(async () => {
    const before = memory(gpu).liveBuffers;
    const y = embedding(put(ids, [40], gpu), wh);
    assert.is(y.dtype, 'float32', 'f32 rows from an f16 table');
    await assertClose(await y.dataF32(), ref, { rtol: 0, atol: 0, msg: 'f16 embedding' });
    y.dispose();
    await gpu.sync();
    assert.ok(memory(gpu).liveBuffers <= before + 1, 'no f32 copy of the table left behind');
  });
  wh.dispose();
});

test('casts f32 -> f16 -> f32 over windows equal the unsplit ones', async () => {
  const gpu = requireGpu();
  const n = 40_003; // 160 KB in f32, 80 KB in f16: both over the 64 KiB limit
  const a = randArray(n, 41, -70000, 70000); // overflow to inf and subnormal-free mixes both included
  const ref = await put(a, [n], gpu).half().float().dataF32();
  await lowered(async () => {
    const h = put(a, [n], gpu).half();
    assert.is(h.dtype, 'float16');
    await assertClose(await h.float().dataF32(), ref, { rtol: 0, atol: 0, msg: 'f32 -> f16 -> f32' });
  });
});

test('flat elementwise ops over windows: offsets, a view into a large tensor, fill', async () => {
  const gpu = requireGpu();
  const n = 40_003; // 160 KB: three windows, not a multiple of anything
  const a = randArray(n, 6), b = randArray(n, 7);
  const refCpu = await put(a, [n], cpu).mul(put(b, [n], cpu)).add(1.5).dataF32();
  const sliceRef = await put(a, [n], cpu).narrow(0, 3, n - 10).exp().dataF32();
  await lowered(async () => {
    const ta = put(a, [n], gpu), tb = put(b, [n], gpu);
    const y = ta.mul(tb).add(1.5);
    await assertClose(await y.dataF32(), refCpu, { rtol: 1e-6, msg: 'a * b + 1.5' });
    const s = ta.narrow(0, 3, n - 10).exp(); // a view at element offset 3: windows start mid-alignment
    await assertClose(await s.dataF32(), sliceRef, { rtol: 1e-6, msg: 'exp of a view at offset 3' });
    for (const t of [ta, tb, y, s]) t.dispose();
  });
});

test('random numbers over windows equal the unsplit ones (counter advanced per chunk)', async () => {
  const gpu = requireGpu();
  const n = 50_001; // 200 KB: four windows; an odd tail inside the last Philox block
  const whole = await randn([n], { backend: gpu, generator: new Generator(7) }).dataF32();
  const wholeU = await rand([n], { backend: gpu, generator: new Generator(8) }).dataF32();
  await lowered(async () => {
    const g = new Generator(7);
    const split = await randn([n], { backend: gpu, generator: g }).dataF32();
    await assertClose(split, whole, { rtol: 0, atol: 0, msg: 'randn' });
    await assertClose(await rand([n], { backend: gpu, generator: new Generator(8) }).dataF32(), wholeU, { rtol: 0, atol: 0, msg: 'rand' });
    assert.is(g.counter, Math.ceil(n / 4), 'the generator advanced by the blocks used');
  });
});

test('a broadcast op on a tensor over the limit is refused by name', async () => {
  const gpu = requireGpu();
  await lowered(async () => {
    const big = put(randArray(300 * 64, 8), [300, 64], gpu);
    const bias = put(randArray(64, 9), [1, 64], gpu).transpose(0, 1).transpose(0, 1);
    const col = put(randArray(300, 10), [300, 1], gpu);
    assertThrowsWith(() => big.add(col), [/add/, /no split path/], 'broadcast add');
    for (const t of [big, bias, col]) t.dispose();
  });
});

const attnCases: [string, number[], number[], 'causal' | null][] = [
  // [B, H, L, D]: 8 heads x 700 x 16 f32 = 358 KB per q: head groups of one or two heads
  ['self-attention, head groups', [2, 4, 700, 16], [2, 4, 700, 16], null],
  ['causal, head groups', [1, 3, 900, 8], [1, 3, 900, 8], 'causal'],
  // one head's queries (3000 x 12 x 4 = 144 KB) exceed the limit: query chunks within the head
  ['query chunks within a head, cross-attention', [1, 2, 3000, 12], [1, 2, 77, 12], null],
  ['query chunks, causal, odd head dim', [1, 1, 4000, 5], [1, 1, 3000, 5], 'causal'],
];
for (const [name, qs, ks, mask] of attnCases) {
  test(`attention over chunks: ${name}`, async () => {
    const gpu = requireGpu();
    const nq = qs.reduce((x, y) => x * y, 1), nk = ks.reduce((x, y) => x * y, 1);
    const q = randArray(nq, 11), k = randArray(nk, 12), v = randArray(nk, 13);
    const ref = await scaledDotProductAttention(put(q, qs, cpu), put(k, ks, cpu), put(v, ks, cpu), { mask }).dataF32();
    await lowered(async () => {
      const y = scaledDotProductAttention(put(q, qs, gpu), put(k, ks, gpu), put(v, ks, gpu), { mask });
      await assertClose(await y.dataF32(), ref, { rtol: 1e-4, msg: `${name}: output` });
      y.dispose();
    });
  });
}

test('attention over head groups with an additive mask indexed per batch', async () => {
  const gpu = requireGpu();
  // q 2 x 3 x 200 x 16 (76.8 KB): chunks of 5 heads, so the second chunk starts inside batch 1
  const qs = [2, 3, 200, 16], ks = [2, 3, 30, 16], ms = [2, 1, 200, 30];
  const n = (s: number[]): number => s.reduce((x, y) => x * y, 1);
  const q = randArray(n(qs), 21), k = randArray(n(ks), 22), v = randArray(n(ks), 23), mk = randArray(n(ms), 24, -3, 3);
  const ref = await scaledDotProductAttention(put(q, qs, cpu), put(k, ks, cpu), put(v, ks, cpu), { mask: put(mk, ms, cpu) }).dataF32();
  await lowered(async () => {
    const y = scaledDotProductAttention(put(q, qs, gpu), put(k, ks, gpu), put(v, ks, gpu), { mask: put(mk, ms, gpu) });
    await assertClose(await y.dataF32(), ref, { rtol: 1e-4, msg: 'masked attention output' });
  });
});

test('attention backward over head groups equals the CPU gradient', async () => {
  const gpu = requireGpu();
  const qs = [2, 3, 600, 16];
  const n = qs.reduce((x, y) => x * y, 1);
  const q = randArray(n, 14), k = randArray(n, 15), v = randArray(n, 16), g = randArray(n, 17);
  const grads = (be: Backend): Tensor[] => {
    const [tq, tk, tv] = [q, k, v].map((d) => put(d, qs, be, true)) as [Tensor, Tensor, Tensor];
    scaledDotProductAttention(tq, tk, tv, { mask: 'causal' }).backward(put(g, qs, be));
    return [tq.grad!, tk.grad!, tv.grad!];
  };
  const ref = await Promise.all(grads(cpu).map((t) => t.dataF32()));
  await lowered(async () => {
    const got = grads(gpu);
    for (const [i, t] of got.entries()) await assertClose(await t.dataF32(), ref[i]!, { rtol: 1e-4, msg: `d${'qkv'[i]}` });
  });
});
test.run();
