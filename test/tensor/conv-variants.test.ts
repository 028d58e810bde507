import { test } from '../harness.js';
import { WebGPUBackend } from '@foliar/tensor';
import { conv2d, convTranspose2d, type Conv2dOptions } from '../../packages/tensor/src/ops/conv/index.js';
import { convVariants, setConvVariant, setConvWindowLanes, convWindowLanes, type ConvVariant } from '../../packages/tensor/src/ops/conv/webgpu.js';
import { setup, teardown, requireGpu, compareBackends, randnArray, numelOf } from '../helpers.js';

test.before(async () => {
  await setup();
});
test.after(() => teardown());

/**
 * Every conv kernel variant against the CPU reference (forward, input and weight gradients) at
 * sizes that are not multiples of the tiles (window: 8 or 4 pixels, 4-32 rows, chunks of 4 pixels),
 * odd channel counts, stride 2, dilation, groups, batch 1, and non-square kernels.
 */
interface Case {
  x: [number, number, number, number];
  w: [number, number, number, number];
  bias: boolean;
  opts: Conv2dOptions;
}
const cases: Case[] = [
  { x: [1, 3, 7, 7], w: [5, 3, 3, 3], bias: true, opts: { padding: 1 } },
  { x: [2, 5, 13, 11], w: [17, 5, 3, 3], bias: true, opts: { stride: 2, padding: 1 } },
  { x: [3, 17, 9, 10], w: [5, 17, 1, 1], bias: false, opts: {} },
  { x: [2, 8, 12, 12], w: [16, 8, 1, 1], bias: true, opts: { stride: 2 } },
  { x: [2, 16, 12, 12], w: [16, 16, 3, 3], bias: true, opts: { padding: 1 } },
  { x: [1, 8, 6, 6], w: [40, 8, 3, 3], bias: false, opts: { padding: 1 } },
  { x: [2, 33, 7, 7], w: [33, 33, 3, 3], bias: true, opts: { padding: 1 } },
  { x: [1, 4, 2, 2], w: [8, 4, 3, 3], bias: false, opts: { padding: 1 } },
  { x: [2, 6, 10, 10], w: [4, 3, 3, 3], bias: true, opts: { groups: 2, padding: [1, 2] } },
  { x: [2, 4, 9, 9], w: [6, 4, 2, 2], bias: false, opts: {} },
  { x: [1, 5, 13, 13], w: [3, 5, 3, 3], bias: true, opts: { dilation: 2, padding: 2 } },
  { x: [2, 3, 8, 9], w: [4, 3, 3, 1], bias: false, opts: { padding: [1, 0] } },
  { x: [1, 3, 7, 8], w: [5, 3, 3, 3], bias: true, opts: { stride: [1, 2], padding: [0, 1, 1, 0] } },
  { x: [1, 3, 11, 11], w: [4, 3, 5, 5], bias: true, opts: { padding: 2 } },
  { x: [4, 5, 40, 40], w: [3, 5, 3, 3], bias: false, opts: { padding: 1 } },
];

/** Runs `body` with the variant (and broadcast width) forced; restores both. */
async function withVariant(v: ConvVariant, lanes: 4 | 8 | undefined, body: () => Promise<void>): Promise<void> {
  const gpu = requireGpu(`the conv2d '${v}' variant`);
  if (!(gpu instanceof WebGPUBackend)) throw new Error(`the WebGPU backend is a ${gpu.constructor.name}`);
  setConvVariant(gpu, v);
  setConvWindowLanes(gpu, lanes);
  try {
    await body();
  } finally {
    setConvVariant(gpu, undefined);
    setConvWindowLanes(gpu, undefined);
  }
}

/** The variants to run here: every supported one, and the window variant at 4 lanes where 8 is native. */
function runs(): { v: ConvVariant; lanes: 4 | 8 | undefined; name: string }[] {
  const gpu = requireGpu('conv2d variants');
  if (!(gpu instanceof WebGPUBackend)) return [];
  const out: { v: ConvVariant; lanes: 4 | 8 | undefined; name: string }[] = [];
  for (const v of convVariants(gpu)) {
    out.push({ v, lanes: undefined, name: v });
    if (v === 'window' && convWindowLanes(gpu) === 8) out.push({ v, lanes: 4, name: 'window, 4 lanes' });
  }
  return out;
}

for (const c of cases) {
  test(`conv2d variants vs CPU x${JSON.stringify(c.x)} w${JSON.stringify(c.w)} ${JSON.stringify(c.opts)}`, async () => {
    const specs = [
      { data: randnArray(numelOf(c.x), 21), shape: c.x, requiresGrad: true },
      { data: randnArray(numelOf(c.w), 22, 0.3), shape: c.w, requiresGrad: true },
      ...(c.bias ? [{ data: randnArray(c.w[0], 23), shape: [c.w[0]], requiresGrad: true }] : []),
    ];
    for (const r of runs()) {
      await withVariant(r.v, r.lanes, () => compareBackends((x, w, b) => conv2d(x!, w!, b ?? null, c.opts), specs, { rtol: 1e-4, gradRtol: 2e-4, msg: r.name }));
    }
  });
}

test('convTranspose2d variants vs CPU (stride 1: its forward is the window input gradient)', async () => {
  const specs = [
    { data: randnArray(2 * 6 * 9 * 9, 24), shape: [2, 6, 9, 9], requiresGrad: true },
    { data: randnArray(6 * 5 * 3 * 3, 25, 0.3), shape: [6, 5, 3, 3], requiresGrad: true },
  ];
  for (const r of runs()) {
    await withVariant(r.v, r.lanes, () => compareBackends((x, w) => convTranspose2d(x!, w!, null, { padding: 1 }), specs, { rtol: 1e-4, gradRtol: 2e-4, msg: r.name }));
  }
});

test.run();
