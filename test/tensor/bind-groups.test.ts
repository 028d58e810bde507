/**
 * The runtime's bind-group cache (runtime/webgpu-runtime.ts) and the buffer pool's oldest-first
 * reuse (runtime/buffer-pool.ts): a bind group is reused with its own uniform buffer rewritten, never
 * twice in one command buffer (the second write would overtake the first use); a training loop binds
 * the same buffers every step, so after a warm-up every dispatch reuses a bind group; the pool hands
 * out the oldest free buffer whatever the release order.
 */
import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import * as ft from '@foliar/tensor';
import { BufferPool, type WebGPURuntime } from '@foliar/tensor/internal';
import { setup, teardown, backends } from '../helpers.js';

const test = suite('bind-groups');
test.before(async () => { await setup(); });
test.after(() => teardown());

const rtOf = (be: ft.Backend) => (be as unknown as { rt: WebGPURuntime }).rt;

test('one buffer, one pipeline, different uniforms twice before a submit: each dispatch sees its own', async () => {
  const gpu = backends().gpu;
  const t = ft.zeros([1000], { backend: gpu });
  const sums: ft.Tensor[] = [];
  // nothing reads back in between, so all of it is one command buffer
  for (const v of [1, 2, 3, 4]) {
    ft.fill_(t, v);
    sums.push(t.sum());
  }
  assert.equal(await Promise.all(sums.map((s) => s.item())), [1000, 2000, 3000, 4000]);
  // and again, now that the four bind groups of fill_ exist: they are reused, still each with its value
  const rt = rtOf(gpu);
  const reused = rt.stats.bindGroupsReused;
  const again: ft.Tensor[] = [];
  for (const v of [5, 6, 7, 8]) {
    ft.fill_(t, v);
    again.push(t.sum());
  }
  assert.equal(await Promise.all(again.map((s) => s.item())), [5000, 6000, 7000, 8000]);
  assert.ok(rt.stats.bindGroupsReused > reused, 'the second round reused bind groups');
  [t, ...sums, ...again].forEach((x) => x.dispose());
});

test('a training loop reuses a bind group for every dispatch after its first steps, with the same results as the CPU', async () => {
  const { gpu, cpu } = backends();
  const run = async (be: ft.Backend) => {
    ft.manualSeed(3);
    const w = ft.keep(ft.randn([33, 17], { backend: be }).requiresGrad_(true));
    const x = ft.keep(ft.randn([20, 33], { backend: be }));
    const losses: number[] = [];
    const rt = be.name === 'webgpu' ? rtOf(be) : null;
    let d0 = 0, r0 = 0;
    // the pool fills over the first steps (a buffer released in a step is free only after the next
    // submit, so early steps still create buffers); from then on the same buffers come back
    for (let step = 0; step < 10; step++) {
      if (step === 7 && rt) [d0, r0] = [rt.stats.dispatches, rt.stats.bindGroupsReused];
      const l = ft.tidy(() => {
        const loss = x.matmul(w).relu().square().mean();
        loss.backward();
        return loss.detach();
      });
      ft.tidy(() => ft.noGrad(() => { ft.copy_(w, w.sub(w.grad!.mul(0.1))); }));
      w.grad!.dispose();
      w.grad = null;
      losses.push(await l.item());
      l.dispose();
    }
    const counts = rt ? { dispatches: rt.stats.dispatches - d0, reused: rt.stats.bindGroupsReused - r0 } : null;
    w.dispose();
    x.dispose();
    return { losses, counts };
  };
  const g = await run(gpu);
  const c = await run(cpu);
  g.losses.forEach((l, i) => assert.ok(Math.abs(l - c.losses[i]!) <= 1e-4 * Math.max(1, Math.abs(c.losses[i]!)), `step ${i}: ${l} vs ${c.losses[i]}`));
  assert.ok(g.counts!.dispatches > 0);
  assert.is(g.counts!.reused, g.counts!.dispatches, 'steps 8-10: every dispatch reused a bind group');
});

test('the pool hands out the oldest free buffer of a size class, whatever the release order', () => {
  const made: { size: number; destroyed: boolean }[] = [];
  const device = {
    createBuffer: ({ size }: { size: number }) => {
      const b = { size, destroyed: false, destroy() { this.destroyed = true; } };
      made.push(b);
      return b;
    },
  } as unknown as GPUDevice;
  const pool = new BufferPool(device, 0);
  const [a, b, c] = [pool.acquire(1024), pool.acquire(1024), pool.acquire(1024)];
  pool.release(b);
  pool.release(c);
  pool.release(a);
  pool.onSubmit();
  assert.ok(pool.acquire(1000) === a, 'oldest first');
  assert.ok(pool.acquire(1000) === b);
  pool.release(a);
  pool.onSubmit();
  assert.ok(pool.acquire(1000) === a, 'a released buffer is again the oldest');
  assert.ok(pool.acquire(1000) === c);
  assert.is(made.length, 3, 'no new buffer while the class had free ones');
});

test.run();
