import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import {
  Module, Linear, Conv2d, BatchNorm2d, GroupNorm, LayerNorm, Embedding, Sequential, ModuleList, ModuleDict, ReLU,
  SGD, Adam, AdamW, Optimizer, LRScheduler, warmupCosine, stepDecay, linearWarmup, checkpoint, StateDictError,
  saveSafetensors, loadSafetensorsInto, readSafetensors,
} from '@foliar/nn';
import { setup, teardown, assertClose } from '../helpers.js';

const test = suite('nn: modules, state dicts, optimizers');
let dir = '';
test.before(async () => {
  await setup();
  dir = mkdtempSync(join(tmpdir(), 'foliar-nn-'));
});
test.after(() => {
  teardown();
  rmSync(dir, { recursive: true, force: true });
});

class Net extends Module {
  conv = this.module('conv', new Conv2d(3, 4, 3, { padding: 1 }));
  bn = this.module('bn', new BatchNorm2d(4));
  blocks = this.module('blocks', new ModuleList([new Linear(4, 5), new Linear(5, 2, { bias: false })]));
  forward(x: ft.Tensor): ft.Tensor {
    const h = this.bn.forward(this.conv.forward(x)).relu().mean([2, 3]);
    return this.blocks.at(1).forward(this.blocks.at(0).forward(h).relu());
  }
}

test('state-dict keys and order follow PyTorch naming', () => {
  const n = new Net();
  assert.equal([...n.stateDict().keys()], [
    'conv.weight', 'conv.bias', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var', 'bn.num_batches_tracked',
    'blocks.0.weight', 'blocks.0.bias', 'blocks.1.weight',
  ]);
  assert.is(n.numParameters(), 4 * 3 * 9 + 4 + 4 + 4 + 5 * 4 + 5 + 2 * 5);
  const s = new Sequential(new Linear(2, 3), new ReLU(), new Linear(3, 1));
  assert.equal([...s.stateDict().keys()], ['0.weight', '0.bias', '2.weight', '2.bias']);
  const d = new ModuleDict({ a: new LayerNorm(4), b: new GroupNorm(2, 4), e: new Embedding(7, 3) });
  assert.equal([...d.stateDict().keys()], ['a.weight', 'a.bias', 'b.weight', 'b.bias', 'e.weight']);
});

test('loadStateDict is strict and reports missing, unexpected and mis-shaped keys together', () => {
  const n = new Net();
  const sd = new Map(n.stateDict());
  sd.delete('conv.bias');
  sd.set('extra.weight', ft.zeros([1]));
  sd.set('blocks.0.weight', ft.zeros([4, 5]));
  try {
    n.loadStateDict(sd);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, StateDictError);
    const m = (e as Error).message;
    assert.match(m, /missing keys: conv\.bias/);
    assert.match(m, /unexpected keys: extra\.weight/);
    assert.match(m, /blocks\.0\.weight expects \[5, 4\], got \[4, 5\]/);
  }
});

test('save and load as safetensors round-trips every value, also through F16', async () => {
  ft.manualSeed(1);
  const a = new Net();
  const b = new Net();
  await saveSafetensors(a, join(dir, 'net.safetensors'));
  await loadSafetensorsInto(b, join(dir, 'net.safetensors'));
  for (const [k, t] of a.stateDict()) await assertClose(b.stateDict().get(k)!, t, { rtol: 0, atol: 0, msg: k });
  await saveSafetensors(a, join(dir, 'net16.safetensors'), { dtype: 'F16' });
  const raw = await readSafetensors(join(dir, 'net16.safetensors'));
  await loadSafetensorsInto(b, join(dir, 'net16.safetensors'));
  await assertClose(b.conv.weight, a.conv.weight, { rtol: 1e-3, atol: 1e-3 });
  assert.ok(raw.has('bn.num_batches_tracked'));
});

test('train()/eval() switch BatchNorm between batch and running statistics', async () => {
  const n = new Net();
  const x = ft.randn([4, 3, 5, 5]);
  n.train();
  n.forward(x);
  assert.is(await n.bn.numBatchesTracked.item(), 1);
  const rm = await n.bn.runningMean.dataF32();
  assert.ok(rm.some((v) => v !== 0), 'running mean moved');
  n.eval();
  const before = await n.bn.runningMean.dataF32();
  n.forward(x);
  assert.equal(Array.from(await n.bn.runningMean.dataF32()), Array.from(before));
});

test('SGD with momentum and nesterov matches the hand-computed torch.optim.SGD update', async () => {
  const p = ft.tensor([1, -2], { requiresGrad: true });
  const opt = new SGD([p], { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01 });
  // step 1: d = g + wd·p; buf = d; d = d + 0.9·buf; p -= lr·d
  let want = [1, -2];
  let buf = [0, 0];
  for (let s = 1; s <= 3; s++) {
    const g = [0.5 * s, -0.25];
    p.grad = ft.tensor(g);
    opt.step();
    const d = g.map((gi, i) => gi + 0.01 * want[i]!);
    buf = s === 1 ? d : buf.map((b, i) => 0.9 * b + d[i]!);
    const upd = d.map((di, i) => di + 0.9 * buf[i]!);
    want = want.map((w, i) => w - 0.1 * upd[i]!);
    opt.zeroGrad();
  }
  await assertClose(p, want, { rtol: 1e-6, atol: 1e-6 });
});

test('optimizer state saves and restores: continuing matches an uninterrupted run', async () => {
  const run = async (split: boolean) => {
    const p = ft.tensor([0.3, -0.7, 1.1], { requiresGrad: true });
    let opt = new AdamW([p], { lr: 0.05 });
    for (let s = 0; s < 6; s++) {
      if (split && s === 3) {
        const st = opt.stateDict();
        const copies = new Map([...st.tensors].map(([k, t]) => [k, t.clone()]));
        opt = new AdamW([p], { lr: 0.05 });
        opt.loadStateDict({ tensors: copies, meta: JSON.parse(JSON.stringify(st.meta)) });
      }
      p.grad = ft.tensor([Math.sin(s), Math.cos(s), 0.1 * s]);
      opt.step();
      opt.zeroGrad();
    }
    return p.dataF32();
  };
  assert.equal(Array.from(await run(true)), Array.from(await run(false)));
});

test('packed optimizers (parameters in one arena) update exactly as unpacked ones; modules keep their parameter objects; state round-trips', async () => {
  const makers: [string, (ps: ft.Tensor[]) => SGD | Adam][] = [
    ['AdamW', (ps) => new AdamW(ps, { lr: 1e-2 })],
    ['Adam l2', (ps) => new Adam(ps, { lr: 1e-2, weightDecay: 0.1 })],
    ['SGD nesterov', (ps) => new SGD(ps, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3 })],
    ['SGD plain', (ps) => new SGD(ps, { lr: 0.05 })],
  ];
  const x = (() => { ft.manualSeed(11); return ft.keep(ft.randn([2, 3, 6, 6])); })();
  const y = ft.keep(ft.tensor(new Int32Array([1, 0])));
  const train = async (make: (ps: ft.Tensor[]) => SGD | Adam, pack: boolean, split: boolean) => {
    ft.manualSeed(5);
    let n = new Net();
    const prev = Optimizer.packParameters;
    Optimizer.packParameters = pack;
    const params0 = n.parameters();
    let opt = make(params0);
    try {
      assert.ok(n.parameters().every((p, i) => p === params0[i]), 'same parameter objects');
      const shared = new Set(params0.map((p) => p.storage)).size;
      assert.is(shared, pack ? 1 : params0.length, `${pack ? 'one arena' : 'own storages'}: ${shared} storages for ${params0.length} parameters`);
      for (let s = 0; s < 4; s++) {
        if (split && s === 2) {
          // resume: a fresh model (its own parameter storages, packed anew) and optimizer load the saved state
          const st = opt.stateDict();
          const copies = new Map([...st.tensors].map(([k, t]) => [k, t.clone()]));
          const n2 = new Net();
          ft.noGrad(() => n2.parameters().forEach((p, i) => ft.copy_(p, n.parameters()[i]!)));
          opt.dispose();
          n.dispose();
          n = n2;
          opt = make(n.parameters());
          opt.loadStateDict({ tensors: copies, meta: JSON.parse(JSON.stringify(st.meta)) });
          for (const t of copies.values()) t.dispose();
        }
        ft.tidy(() => ft.crossEntropy(n.forward(x), y).backward());
        opt.step();
        opt.zeroGrad();
      }
      return await Promise.all(n.parameters().map((p) => p.dataF32()));
    } finally {
      Optimizer.packParameters = prev;
      opt.dispose();
      n.dispose();
    }
  };
  for (const [name, make] of makers) {
    const plain = await train(make, false, false);
    const packed = await train(make, true, false);
    const resumed = await train(make, true, true);
    plain.forEach((p, i) => {
      assert.equal(Array.from(packed[i]!), Array.from(p), `${name}: packed vs plain, parameter ${i}`);
      assert.equal(Array.from(resumed[i]!), Array.from(p), `${name}: packed and resumed vs plain, parameter ${i}`);
    });
  }
  x.dispose();
  y.dispose();
});

test('LR schedules: warmup + cosine, step decay; the scheduler state restores', () => {
  const f = warmupCosine(10, 110, 0);
  assert.ok(Math.abs(f(0) - 0.1) < 1e-12 && Math.abs(f(9) - 1) < 1e-12);
  assert.ok(Math.abs(f(60) - 0.5) < 1e-9, 'half way through the cosine');
  assert.ok(Math.abs(f(110)) < 1e-12);
  assert.is(stepDecay(5, 0.5)(12), 0.25);
  const p = ft.tensor([1], { requiresGrad: true });
  const opt = new Adam([p], { lr: 1 });
  const s = new LRScheduler(opt, linearWarmup(4));
  s.step();
  s.step();
  assert.ok(Math.abs(opt.lr - 0.75) < 1e-12);
  const saved = s.state();
  const s2 = new LRScheduler(new Adam([p], { lr: 1 }), linearWarmup(4));
  s2.load(saved);
  assert.equal(s2.lastLr, [0.75]);
});

test('activation checkpointing gives the same gradients as the plain graph', async () => {
  ft.manualSeed(2);
  const l1 = new Linear(6, 8), l2 = new Linear(8, 3);
  const x = ft.randn([5, 6], { requiresGrad: true });
  const block = (h: ft.Tensor) => l2.forward(l1.forward(h).silu());
  block(x).square().sum().backward();
  const g1 = [await x.grad!.dataF32(), await l1.weight.grad!.dataF32()];
  x.grad = null;
  l1.zeroGrad();
  l2.zeroGrad();
  checkpoint(block, x).square().sum().backward();
  await assertClose(x.grad!, g1[0]!, { rtol: 1e-5 });
  await assertClose(l1.weight.grad!, g1[1]!, { rtol: 1e-5 });
});

test('a training loop leaves live buffers flat', async () => {
  ft.manualSeed(4);
  const n = new Net();
  const opt = new AdamW(n.parameters(), { lr: 1e-3 });
  const x = ft.randn([2, 3, 6, 6]);
  const y = ft.tensor(new Int32Array([0, 1]));
  const counts: number[] = [];
  for (let i = 0; i < 30; i++) {
    const loss = ft.tidy(() => {
      const l = ft.crossEntropy(n.forward(x), y);
      l.backward();
      return l;
    });
    opt.step();
    opt.zeroGrad();
    await loss.item();
    loss.dispose();
    counts.push(ft.memory().liveBuffers);
  }
  assert.is(counts[29], counts[5], `live buffers grew: ${counts.join(',')}`);
});

test.run();
