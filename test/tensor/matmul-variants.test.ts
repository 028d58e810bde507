import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as ft from '@foliar/tensor';
import { setup, teardown, backends, randArray, numelOf, assertClose } from '../helpers.js';

/**
 * Every WebGPU matmul variant is forced in turn and compared with the CPU backend on awkward shapes:
 * sizes off every tile, transposed views, broadcast batches, a vector operand.
 */
const test = suite('matmul variants');
test.before(async () => { await setup(); });
test.after(() => teardown());

const SHAPES: { a: number[]; b: number[]; ta?: boolean; tb?: boolean }[] = [
  { a: [1, 1], b: [1, 1] },
  { a: [7, 13], b: [13, 5] },
  { a: [33, 65], b: [65, 17] },
  { a: [128, 3], b: [3, 200] },
  { a: [70, 70], b: [70, 72] },
  { a: [31, 9], b: [9, 64], ta: true },
  { a: [40, 20], b: [20, 36], tb: true },
  { a: [25, 18], b: [18, 40], ta: true, tb: true },
  { a: [3, 1, 9, 11], b: [4, 11, 6] },
  { a: [2, 5, 33], b: [33] },
  { a: [16], b: [3, 16, 12] },
];

for (const variant of ['base', 'subgroup'] as const) {
  test(`${variant}: matches the CPU backend`, async () => {
    const { gpu, cpu, hasGpu } = backends();
    const w = ft.webgpuBackend();
    if (!hasGpu || !w) return;
    if (variant === 'subgroup' && !w.rt.subgroups) {
      console.warn('SKIP subgroup matmul variant: adapter has no subgroups');
      return;
    }
    const before = w.matmulVariant;
    w.matmulVariant = variant;
    try {
      for (const [i, s] of SHAPES.entries()) {
        const aShape = s.ta ? [...s.a.slice(0, -2), s.a[s.a.length - 1]!, s.a[s.a.length - 2]!] : s.a;
        const bShape = s.tb ? [...s.b.slice(0, -2), s.b[s.b.length - 1]!, s.b[s.b.length - 2]!] : s.b;
        const ad = randArray(numelOf(aShape), 11 + i), bd = randArray(numelOf(bShape), 97 + i);
        const run = (be: ft.Backend) => {
          const a = ft.tensor(ad, { shape: aShape, backend: be }), b = ft.tensor(bd, { shape: bShape, backend: be });
          return (s.ta ? a.transpose(-1, -2) : a).matmul(s.tb ? b.transpose(-1, -2) : b);
        };
        const g = run(gpu), c = run(cpu);
        assert.equal([...g.shape], [...c.shape], `shape of case ${i}`);
        await assertClose(g, c, { rtol: 1e-5, atol: 1e-5, msg: `${variant} case ${i} ${JSON.stringify(s)}` });
      }
    } finally {
      w.matmulVariant = before;
    }
  });
}

test.run();
