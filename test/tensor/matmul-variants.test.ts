import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as ft from '@foliar/tensor';
import { setup, teardown, backends, randArray, numelOf, assertClose, prng } from '../helpers.js';

/**
 * Every WebGPU matmul variant is forced in turn (FOLIAR_MATMUL_VARIANT, read on every dispatch) and
 * compared with the CPU backend on awkward shapes: sizes off every tile, K not a multiple of 8 or 16,
 * transposed views, broadcast batches (batch stride 0), views with offsets, vector operands, and a
 * seeded batch of random shapes.
 */
const test = suite('matmul variants');
test.before(async () => { await setup(); });
test.after(() => {
  delete process.env.FOLIAR_MATMUL_VARIANT;
  teardown();
});

interface Case {
  a: number[];
  b: number[];
  ta?: boolean;
  tb?: boolean;
  /** Take the operand as a view at this row offset of a larger tensor (element offset != 0). */
  aRowOff?: number;
  bRowOff?: number;
}

const FIXED: Case[] = [
  { a: [1, 1], b: [1, 1] },
  { a: [7, 13], b: [13, 5] },
  { a: [33, 65], b: [65, 17] },
  { a: [128, 3], b: [3, 200] },
  { a: [70, 70], b: [70, 72] },
  { a: [130, 37], b: [37, 200] },
  { a: [65, 300], b: [300, 129] },
  { a: [31, 9], b: [9, 64], ta: true },
  { a: [40, 20], b: [20, 36], tb: true },
  { a: [25, 18], b: [18, 40], ta: true, tb: true },
  { a: [66, 19], b: [19, 131], ta: true, tb: true },
  { a: [3, 1, 9, 11], b: [4, 11, 6] },
  { a: [5, 9, 11], b: [11, 6] },
  { a: [9, 11], b: [5, 11, 6] },
  { a: [4, 17, 40], b: [4, 40, 68], tb: true },
  { a: [2, 5, 33], b: [33] },
  { a: [16], b: [3, 16, 12] },
  { a: [24], b: [24] },
  { a: [12, 10], b: [10, 9], aRowOff: 3, bRowOff: 1 },
  { a: [40, 16], b: [16, 64], bRowOff: 2 },
  { a: [40, 16], b: [16, 66], bRowOff: 3 },
];

function randomCases(n: number): Case[] {
  const r = prng(1234);
  const dim = () => 1 + Math.floor(r() ** 2 * 150);
  return Array.from({ length: n }, () => {
    const m = dim(), k = dim(), nn = dim();
    const batch = r() < 0.3 ? [1 + Math.floor(r() * 3)] : [];
    return { a: [...batch, m, k], b: [...batch, k, nn], ta: r() < 0.4, tb: r() < 0.4 };
  });
}

const CASES = [...FIXED, ...randomCases(12)];

/** Builds operand `shape` (swapping its last two dims when `trans`, then transposing back as a view). */
function operand(be: ft.Backend, data: Float32Array, shape: number[], trans: boolean, rowOff: number): ft.Tensor {
  const stored = trans && shape.length >= 2 ? [...shape.slice(0, -2), shape[shape.length - 1]!, shape[shape.length - 2]!] : shape;
  let t: ft.Tensor;
  if (rowOff) {
    const big = ft.tensor(data, { shape: [stored[0]! + rowOff, ...stored.slice(1)], backend: be });
    t = big.narrow(0, rowOff, stored[0]!);
  } else {
    t = ft.tensor(data.subarray(0, numelOf(stored)), { shape: stored, backend: be });
  }
  return trans && shape.length >= 2 ? t.transpose(-1, -2) : t;
}

function supported(variant: string): string | null {
  const w = ft.webgpuBackend();
  if (!w) return 'no WebGPU backend';
  if (variant === 'subgroup' && !w.rt.subgroups) return "adapter has no 'subgroups' feature";
  if (variant === 'tiled' && (w.rt.limits.maxComputeInvocationsPerWorkgroup ?? 256) < 256) return 'fewer than 256 invocations per workgroup';
  return null;
}

for (const variant of ['base', 'subgroup', 'tiled'] as const) {
  test(`${variant}: matches the CPU backend on ${CASES.length} shapes`, async () => {
    const { gpu, cpu, hasGpu } = backends();
    if (!hasGpu) return;
    const why = supported(variant);
    if (why) {
      console.warn(`SKIP ${variant} matmul variant: ${why}`);
      return;
    }
    process.env.FOLIAR_MATMUL_VARIANT = variant;
    try {
      for (const [i, s] of CASES.entries()) {
        const extraA = (s.aRowOff ?? 0) * numelOf(s.a.slice(1));
        const extraB = (s.bRowOff ?? 0) * numelOf(s.b.slice(1));
        const ad = randArray(numelOf(s.a) + extraA, 11 + i), bd = randArray(numelOf(s.b) + extraB, 97 + i);
        const run = (be: ft.Backend) => operand(be, ad, s.a, !!s.ta, s.aRowOff ?? 0).matmul(operand(be, bd, s.b, !!s.tb, s.bRowOff ?? 0));
        const g = run(gpu), c = run(cpu);
        assert.equal([...g.shape], [...c.shape], `shape of case ${i}`);
        const k = s.a[s.a.length - 1]!;
        const tol = 1e-5 * Math.max(1, Math.sqrt(k));
        await assertClose(g, c, { rtol: tol, atol: tol, msg: `${variant} case ${i} ${JSON.stringify(s)}` });
      }
    } finally {
      delete process.env.FOLIAR_MATMUL_VARIANT;
    }
  });
}

test('K = 0 gives zeros with every variant', async () => {
  const { gpu, hasGpu } = backends();
  if (!hasGpu) return;
  for (const variant of ['base', 'subgroup', 'tiled']) {
    if (supported(variant)) continue;
    process.env.FOLIAR_MATMUL_VARIANT = variant;
    try {
      const y = ft.zeros([3, 0], { backend: gpu }).matmul(ft.zeros([0, 5], { backend: gpu }));
      assert.equal([...y.shape], [3, 5]);
      assert.equal([...(await y.data())], new Array(15).fill(0), variant);
    } finally {
      delete process.env.FOLIAR_MATMUL_VARIANT;
    }
  }
});

test('an unknown forced variant is a clear error', () => {
  const { gpu, hasGpu } = backends();
  if (!hasGpu) return;
  process.env.FOLIAR_MATMUL_VARIANT = 'fastest';
  try {
    assert.throws(() => ft.ones([2, 2], { backend: gpu }).matmul(ft.ones([2, 2], { backend: gpu })), /FOLIAR_MATMUL_VARIANT='fastest'.*base, subgroup, tiled/);
  } finally {
    delete process.env.FOLIAR_MATMUL_VARIANT;
  }
});

test.run();
