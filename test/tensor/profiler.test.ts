import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import * as ft from '@foliar/tensor';
import { profilerGpuObjects, type WebGPURuntime } from '@foliar/tensor/internal';
import { setup, teardown, backends, requireGpu, skipPart, randArray, settledMemory } from '../helpers.js';

const test = suite('profiler');
test.before(async () => { await setup(); });
test.after(() => teardown());

const rt = (): WebGPURuntime | null => (backends().hasGpu ? ft.webgpuBackend()!.rt : null);
const stats = () => ({ ...(rt()?.stats ?? { dispatches: 0, submits: 0, pipelinesCompiled: 0, readbacks: 0 }) });
const delta = (a: ReturnType<typeof stats>, b: ReturnType<typeof stats>) => ({
  dispatches: b.dispatches - a.dispatches, submits: b.submits - a.submits,
  pipelinesCompiled: b.pipelinesCompiled - a.pipelinesCompiled, readbacks: b.readbacks - a.readbacks,
});
const stamps = () => rt()?.features.has('timestamp-query') ?? false;

/** The inputs of a small graph: x [8, 16] requiring grad, w [16, 12]. */
function graph() {
  const be = backends().gpu;
  const x = ft.tensor(randArray(8 * 16, 1), { backend: be, shape: [8, 16] }).requiresGrad_(true);
  const w = ft.tensor(randArray(16 * 12, 2), { backend: be, shape: [16, 12] });
  return { x, w };
}

/** matmul + relu + sum and its backward, in the scopes 'net' > 'fc'; the loss and x's gradient. */
async function step(x: ft.Tensor, w: ft.Tensor): Promise<{ loss: number; grad: Float32Array }> {
  const loss = ft.tidy(() => {
    const l = ft.profileScope('net', () => ft.profileScope('fc', () => ft.relu(ft.matmul(x, w))).sum());
    l.backward();
    return l.detach();
  });
  const out = { loss: await loss.item(), grad: (await x.grad!.data()) as Float32Array };
  loss.dispose();
  x.grad!.dispose();
  x.grad = null;
  return out;
}

test('dispatch counts by op and scope equal the runtime stats; backward goes to "<scope> (backward)"', async () => {
  const { x, w } = graph();
  await step(x, w); // compile outside the measurement
  const s0 = stats();
  const { result, report } = await ft.profile(() => step(x, w));
  const d = delta(s0, stats());
  assert.ok(Number.isFinite(result.loss));
  if (!rt()) {
    assert.is(report.dispatches, 0, 'the CPU backend dispatches nothing');
    skipPart(`no WebGPU: ${backends().noGpuReason} (only the CPU report checked)`, 'webgpu');
  } else {
    assert.ok(report.dispatches > 0);
    assert.is(report.dispatches, d.dispatches, 'report.dispatches is the stats delta');
    assert.is(report.readbacks, d.readbacks);
    assert.is(report.pipelinesCompiled, 0);
    const sum = (rows: ft.ProfileRow[]) => rows.reduce((a, r) => a + r.dispatches, 0);
    assert.is(sum(report.byOp), d.dispatches, 'op rows add up to the stats delta');
    assert.is(sum(report.byScope), d.dispatches, 'scope rows add up to the stats delta');
    const op = (n: string) => report.byOp.find((r) => r.name === n);
    assert.ok(op('matmul') && op('matmul')!.dispatches >= 2, 'matmul forward and its gradient');
    assert.ok(op('relu'));
    const scope = (n: string) => report.byScope.find((r) => r.name === n);
    const names = report.byScope.map((r) => r.name);
    assert.ok(scope('net/fc'), `nested scope joined with '/': ${names}`);
    assert.ok(scope('net'), `the sum ran in 'net': ${names}`);
    assert.ok(scope('net/fc (backward)') && scope('net/fc (backward)')!.dispatches >= 2, `backward of matmul/relu attributed to its forward scope: ${names}`);
    assert.ok(!names.some((n) => n.startsWith('net/fc/')), 'backward does not nest into forward scopes');
    const shares = report.byOp.reduce((a, r) => a + r.share, 0);
    assert.ok(Math.abs(shares - 1) < 1e-6, `shares sum to 1 (${shares})`);
    const key = (r: ft.ProfileRow) => r.gpuMs ?? r.hostMs;
    for (let i = 1; i < report.byOp.length; i++) assert.ok(key(report.byOp[i - 1]!) >= key(report.byOp[i]!), 'sorted by time');
    assert.ok(report.hostMs > 0 && report.wallMs > 0);
    if (stamps()) {
      assert.ok(typeof report.gpuMs === 'number' && report.gpuMs > 0, `gpuMs ${report.gpuMs}`);
      assert.is(report.gpuTiming, 'timestamp-query');
      assert.ok(report.byOp.every((r) => r.gpuMs !== null));
    } else {
      assert.is(report.gpuMs, null);
      assert.is(report.gpuTiming, 'unavailable');
    }
    const text = ft.formatProfile(report, { top: 2 });
    assert.match(text, /### by op/);
    assert.match(text, /### by scope/);
    assert.match(text, /more \|/, 'rows beyond top are summed');
  }
  assert.not.ok(ft.isProfiling());
  x.dispose();
  w.dispose();
});

test('profiling off: same numbers, same stats; gpuTime: false keeps the batching', async () => {
  const { x, w } = graph();
  await step(x, w);
  let s = stats();
  const plain = await step(x, w);
  const off = delta(s, stats());
  const { result: prof } = await ft.profile(() => step(x, w));
  s = stats();
  const after = await step(x, w);
  assert.equal(delta(s, stats()), off, 'an unprofiled step after profiling costs what it did before');
  assert.is(rt()?.profiler ?? null, null, 'the runtime is detached');
  assert.is(prof.loss, plain.loss);
  assert.equal([...prof.grad], [...plain.grad], 'profiled gradients are bit-identical');
  assert.equal([...after.grad], [...plain.grad]);
  // host-only profiling: the same submits as unprofiled
  s = stats();
  const { report } = await ft.profile(() => step(x, w), { gpuTime: false });
  assert.is(report.gpuMs, null);
  assert.is(report.gpuTiming, 'off');
  assert.is(report.submits, off.submits);
  assert.match(ft.formatProfile(report), /not measured/);
  x.dispose();
  w.dispose();
});

test('query sets refill past 2048 dispatches; nothing leaks; an error inside fn still ends profiling', async () => {
  requireGpu('the GPU profiler');
  const device = rt()!.device;
  // count the profiler's own GPU objects independently of its counter
  const live = new Set<object>();
  const origBuffer = device.createBuffer.bind(device);
  const origQuery = device.createQuerySet.bind(device);
  const track = <T extends { destroy(): void; label: string }>(o: T): T => {
    if (!o.label.startsWith('foliar-profiler')) return o;
    live.add(o);
    const d = o.destroy.bind(o);
    o.destroy = () => { live.delete(o); d(); };
    return o;
  };
  device.createBuffer = (desc) => track(origBuffer(desc));
  device.createQuerySet = (desc) => track(origQuery(desc));
  try {
    const a = ft.tensor([1, 2, 3, 4], { backend: backends().gpu });
    ft.tidy(() => ft.exp(ft.neg(ft.mul(a, 2))).dispose()); // compile
    const mem0 = await settledMemory();
    const { report } = await ft.profile(() => ft.tidy(() => {
      ft.mul(a, 2); // only in the first query set
      let h = a;
      for (let i = 0; i < 2100; i++) h = ft.neg(h);
      if (stamps()) assert.ok(profilerGpuObjects() >= 2 && live.size >= 2, 'query set and resolve buffer while profiling');
      ft.exp(h); // only in the second
      return null;
    }));
    assert.is(report.dispatches, 2102);
    if (stamps()) {
      for (const n of ['mul_scalar', 'neg', 'exp']) {
        const r = report.byOp.find((x) => x.name === n);
        assert.ok(r, `${n} in ${report.byOp.map((x) => x.name)}`);
        // one dispatch on 4 elements can take less than the timestamp resolution: a measured 0 is
        // fine there, a missing value is not; 2,100 negations must add up to more than nothing
        assert.ok(r!.gpuMs !== null && r!.gpuMs >= 0, `${n} has GPU time (${r!.gpuMs})`);
        if (n === 'neg') assert.ok(r!.gpuMs! > 0, `neg has positive GPU time (${r!.gpuMs})`);
      }
    }
    assert.is(profilerGpuObjects(), 0);
    assert.is(live.size, 0, 'query sets and profiler buffers destroyed');
    const mem1 = await settledMemory();
    assert.is(mem1.liveBuffers, mem0.liveBuffers, 'no tensor buffers left behind');
    assert.is(mem1.liveTensors, mem0.liveTensors);

    // an error inside fn (and inside a scope)
    let caught: unknown = null;
    try {
      await ft.profile(() => ft.profileScope('failing', () => {
        ft.tidy(() => { ft.neg(a); return null; });
        throw new Error('boom');
      }));
    } catch (e) {
      caught = e;
    }
    assert.match(String(caught), /boom/);
    assert.not.ok(ft.isProfiling());
    assert.is(rt()!.profiler, null);
    assert.is(live.size, 0);
    assert.is(ft.memory().liveBuffers, mem0.liveBuffers);
    const { report: r2 } = await ft.profile(() => ft.tidy(() => ft.profileScope('ok', () => ft.neg(a)).dispose()));
    assert.equal(r2.byScope.map((r) => r.name), ['ok'], 'the failed scope was popped');
    a.dispose();
  } finally {
    device.createBuffer = origBuffer;
    device.createQuerySet = origQuery;
  }
});

test('FOLIAR_PROFILE=1: a continuous report accumulates across steps and resets', async () => {
  requireGpu('the GPU profiler');
  assert.throws(() => ft.resetProfile(), /FOLIAR_PROFILE/);
  teardown();
  process.env.FOLIAR_PROFILE = '1';
  try {
    await setup();
    assert.ok(ft.isProfiling());
    const { x, w } = graph();
    await step(x, w);
    ft.resetProfile();
    const s0 = stats();
    await step(x, w);
    const one = delta(s0, stats()).dispatches;
    await step(x, w);
    const r = await ft.profileReport();
    assert.is(r.dispatches, 2 * one, 'two steps accumulated');
    assert.is(r.byScope.reduce((a, row) => a + row.dispatches, 0), 2 * one);
    if (stamps()) assert.ok(r.gpuMs! > 0);
    // a profile() inside continuous profiling sees only its own call, and leaves continuous on
    const { report } = await ft.profile(() => step(x, w));
    assert.is(report.dispatches, one);
    assert.ok(ft.isProfiling());
    assert.is((await ft.profileReport()).dispatches, 3 * one);
    ft.resetProfile();
    const empty = await ft.profileReport();
    assert.is(empty.dispatches, 0);
    assert.equal(empty.byOp, []);
    x.dispose();
    w.dispose();
  } finally {
    delete process.env.FOLIAR_PROFILE;
    teardown();
    await setup();
  }
  assert.not.ok(ft.isProfiling(), 'unset at the next init(): off');
  assert.is(rt()!.profiler, null);
  assert.is(ft.profileScope('x', () => 1), 1);
});

test.run();
