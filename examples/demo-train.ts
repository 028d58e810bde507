/**
 * A minimal end-to-end demo: an MLP learns a 2-D spiral on the default device and prints its loss
 * falling. Run: `npm run demo` (FOLIAR_BACKEND=cpu for the CPU reference backend).
 */
import * as ft from '@foliar/tensor';
import { Linear, ReLU, Sequential, AdamW } from '@foliar/nn';
import { spiral } from './lib/spiral.js';

const backend = await ft.init();
console.log(`device: ${backend.describe()}`);
ft.manualSeed(0);

// Spiral data: 3 arms, 128 points each, computed on the host.
const classes = 3;
const { x: xs, y: ys, n } = spiral(128, classes);
const x = ft.tensor(xs, { shape: [n, 2] });
const y = ft.tensor(ys);

const model = new Sequential(new Linear(2, 64), new ReLU(), new Linear(64, 64), new ReLU(), new Linear(64, classes));
const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 1e-4 });
const t0 = performance.now();
for (let step = 0; step <= 300; step++) {
  const loss = ft.tidy(() => {
    const l = ft.crossEntropy(model.forward(x), y);
    l.backward();
    return l;
  });
  opt.step();
  opt.zeroGrad();
  if (step % 50 === 0) {
    const acc = ft.tidy(() => model.forward(x).argmax(1).toFloat().eq(y.toFloat()).mean());
    console.log(`step ${String(step).padStart(3)}  loss ${(await loss.item()).toFixed(4)}  train accuracy ${((await acc.item()) * 100).toFixed(1)}%`);
    acc.dispose();
  }
  loss.dispose();
}
const m = ft.memory();
console.log(`${((performance.now() - t0) / 1000).toFixed(1)} s; live tensors ${m.liveTensors}, live buffers ${m.liveBuffers}, peak ${(m.peakBytes / 1024).toFixed(0)} KiB`);
ft.shutdown();
