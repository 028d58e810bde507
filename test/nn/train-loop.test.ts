/**
 * The shared training loop of @foliar/nn (runTrainLoop): fused clipping (torch's clip_grad_norm_),
 * losses read back only at logged steps (logEvery) with the same log and result, exact resume after a
 * kill between two logged steps, and the hooks the classifier runs on (its own optimizer, an
 * asynchronous `prepare` per micro-batch, periodic `evaluate` with a best checkpoint and early
 * stopping, trainer state and records in train.jsonl), resumed exactly too.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, readFileSync, readdirSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { runTrainLoop, readCheckpointState, readSafetensors, emaDecayAt, SGD, type TrainLoopOptions } from '@foliar/nn';

const tmp = mkdtempSync(join(tmpdir(), 'foliar-train-loop-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

/** A 4-parameter quadratic with generator noise; `failAt` throws once that step's loss is read back (a kill). */
async function quadratic(outputDir: string, o: Partial<TrainLoopOptions> & { failAt?: number } = {}) {
  const w = ft.keep(ft.zeros([4]).requiresGrad_(true));
  const target = ft.keep(ft.tensor([1, -2, 3, 0.5]));
  const { failAt, ...opts } = o;
  try {
    const r = await runTrainLoop(
      {
        outputDir, maxTrainSteps: 7, learningRate: 0.1, checkpointingSteps: 2, quiet: true, gradientAccumulationSteps: 2, ...opts,
        ...(failAt ? { onStep: ({ step }: { step: number }) => { if (step === failAt) throw new Error('killed'); } } : {}),
      },
      {
        label: 'quadratic', params: [w], stateDict: () => new Map([['w', w]]),
        loss: (_k, gen) => {
          const l = w.sub(target).square().sum().add(ft.randn([1], { generator: gen }).mul(0.01).sum());
          return { loss: l, logs: { half: l.mul(0.5) } };
        },
      },
    );
    return { ...r, w: [...(await w.data())] };
  } finally {
    w.dispose();
    target.dispose();
  }
}
const rows = (out: string) =>
  readFileSync(join(out, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => {
    const { seconds: _s, live_buffers: _b, peak_bytes: _p, ...x } = JSON.parse(l) as Record<string, number>;
    return x;
  });

test('logEvery: one readback per logged step, the same log lines, losses and weights as logging every step; no buffers left', async () => {
  const before = ft.memory().liveBuffers;
  const every = await quadratic(join(tmp, 'every'));
  const sparse = await quadratic(join(tmp, 'sparse'), { logEvery: 3 });
  assert.equal(sparse.losses, every.losses);
  assert.equal(sparse.w, every.w);
  assert.equal(rows(join(tmp, 'sparse')), rows(join(tmp, 'every')));
  assert.equal(rows(join(tmp, 'every')).map((r) => r.step), [1, 2, 3, 4, 5, 6, 7]);
  const r1 = rows(join(tmp, 'every'))[0]!;
  assert.ok(Math.abs(r1.half! - r1.loss! / 2) < 1e-5, 'extra logs are averaged over the micro-batches');
  assert.is(ft.memory().liveBuffers, before, 'pending losses and norms are freed');
  let msg = '';
  await quadratic(join(tmp, 'bad'), { logEvery: 0 }).catch((e: Error) => (msg = e.message));
  assert.match(msg, /logEvery must be a positive integer/);
});

test('fused clipping: grad_norm is the norm before clipping; the step uses min(maxNorm / norm, 1)·g', async () => {
  // w = 0, target t: the gradient of Σ(w − t)² is −2t, norm 2·|t| ≈ 7.57; one SGD-like AdamW step is
  // scale-free, so compare the logged norm and that a tight clip changes nothing but the norm's use
  const out = join(tmp, 'clip');
  await quadratic(out, { maxTrainSteps: 1, gradientAccumulationSteps: 1, maxGradNorm: 0.5, checkpointingSteps: 0 });
  const t = [1, -2, 3, 0.5];
  const norm = 2 * Math.hypot(...t);
  const logged = rows(out)[0]!.grad_norm!;
  assert.ok(Math.abs(logged - norm) < 0.05, `grad_norm ${logged} ≈ ${norm} (noise 0.01)`);
  const off = join(tmp, 'clip-off');
  await quadratic(off, { maxTrainSteps: 1, gradientAccumulationSteps: 1, maxGradNorm: 0, checkpointingSteps: 0 });
  assert.ok(Math.abs(rows(off)[0]!.grad_norm! - logged) < 1e-4, 'maxGradNorm 0 measures the same norm without clipping');
});

test('exact resume after a kill between logged steps: the same log, losses and weights as an uninterrupted run', async () => {
  const whole = await quadratic(join(tmp, 'whole'), { logEvery: 3 });
  const out = join(tmp, 'killed');
  let msg = '';
  // step 6 is logged (6 % 3 = 0) after checkpoint-4: the resume drops steps 5–6 and redoes them
  await quadratic(out, { logEvery: 3, failAt: 6 }).catch((e: Error) => (msg = e.message));
  assert.match(msg, /killed/);
  assert.ok(readdirSync(join(out, 'checkpoints')).includes('checkpoint-4'));
  const resumed = await quadratic(out, { logEvery: 3, resumeFrom: 'latest' });
  assert.equal(resumed.losses, whole.losses);
  assert.equal(resumed.w, whole.w);
  assert.equal(rows(out), rows(join(tmp, 'whole')));
});

/**
 * The quadratic trained with SGD (momentum) through the classifier's hooks: `prepare` loads each
 * micro-batch's target offset asynchronously, `evaluate` every 2 steps scores the distance to the
 * target, marks a best step when it shrinks, and stops the run once it has been evaluated 3 times;
 * the trainer state (evaluations so far) lives in the checkpoints. `failAt` throws once that step's
 * loss is read back (a kill).
 */
async function evaluated(outputDir: string, o: Partial<TrainLoopOptions> & { failAt?: number } = {}) {
  const w = ft.keep(ft.zeros([4]).requiresGrad_(true));
  const target = ft.keep(ft.tensor([1, -2, 3, 0.5]));
  const { failAt, ...opts } = o;
  let offset: ft.Tensor | null = null;
  const prepared: number[] = [];
  let evals: { step: number; dist: number }[] = [];
  let starts = 0;
  try {
    const r = await runTrainLoop(
      {
        outputDir, maxTrainSteps: 11, learningRate: 0.05, checkpointingSteps: 3, checkpointsTotalLimit: 2, quiet: true, maxGradNorm: 0,
        ...opts,
        ...(failAt ? { onStep: ({ step }: { step: number }) => { if (step === failAt) throw new Error('killed'); } } : {}),
      },
      {
        label: 'evaluated', params: [w], stateDict: () => new Map([['w', w]]),
        optimizer: (params) => new SGD(params, { lr: 0.05, momentum: 0.9 }),
        prepare: async (k) => {
          await new Promise((res) => setTimeout(res, 1));
          prepared.push(k);
          offset?.dispose();
          offset = ft.keep(ft.tensor([Math.sin(k), 0, 0, 0]).mul(0.1));
        },
        loss: () => w.sub(target).add(offset!).square().sum(),
        start: (ctx) => {
          starts++;
          evals = ctx.trainerState ? (ctx.trainerState as { evals: typeof evals }).evals : [];
        },
        trainerState: () => ({ evals }),
        evaluationSteps: 2,
        evaluate: async (step, ctx) => {
          const d = [...(await w.data())].map((v, i) => v - [1, -2, 3, 0.5][i]!);
          const dist = Math.hypot(...d);
          const best = evals.every((e) => dist < e.dist);
          evals = [...evals, { step, dist }];
          await ctx.log({ type: 'eval', step, dist });
          return { best, stop: evals.length >= 3 };
        },
      },
    );
    return { ...r, w: [...(await w.data())], prepared, evals, starts };
  } finally {
    w.dispose();
    target.dispose();
    (offset as ft.Tensor | null)?.dispose();
  }
}

test('evaluate: best checkpoint (linked, never pruned), early stop recorded, trainer state and records in train.jsonl', async () => {
  const out = join(tmp, 'eval-whole');
  const r = await evaluated(out);
  // evaluations at steps 2, 4, 6; the third stops the run before maxTrainSteps
  assert.equal(r.evals.map((e) => e.step), [2, 4, 6]);
  assert.is(r.steps, 6);
  assert.is(r.stopped, true);
  assert.is(r.interrupted, false);
  assert.equal(r.prepared, [0, 1, 2, 3, 4, 5]);
  const ck = join(out, 'checkpoints');
  // checkpoints at 3 (checkpointingSteps) and at each evaluation; 2 kept; best/ is not pruned
  assert.equal(readdirSync(ck).sort(), ['best', 'checkpoint-4', 'checkpoint-6']);
  assert.is(r.bestCheckpoint, join(ck, 'best'));
  const bestStep = r.evals.reduce((b, e) => (e.dist < b.dist ? e : b)).step;
  const best = await readCheckpointState(join(ck, 'best'));
  assert.is(best.step, bestStep);
  const last = await readCheckpointState(join(ck, 'checkpoint-6'));
  assert.is(last.finished, true);
  assert.equal(last.trainer, { evals: r.evals });
  if (existsSync(join(ck, `checkpoint-${bestStep}`))) {
    assert.is(statSync(join(ck, `checkpoint-${bestStep}`, 'trained.safetensors')).ino, statSync(join(ck, 'best', 'trained.safetensors')).ino, 'the step checkpoint links best/');
  }
  const evalRows = rows(out).filter((x) => (x as Record<string, unknown>).type === 'eval');
  assert.equal(evalRows.map((x) => x.step), [2, 4, 6]);
  // resuming a stopped run trains no further
  const again = await evaluated(out, { resumeFrom: 'latest' });
  assert.is(again.steps, 6);
  assert.equal(again.prepared, []);
  assert.equal(again.w, r.w);
});

test('evaluate: exact resume after a kill between an evaluation and the next checkpoint', async () => {
  const whole = await evaluated(join(tmp, 'eval-ref'));
  const out = join(tmp, 'eval-killed');
  let msg = '';
  // killed when step 5's loss is read back: checkpoint-4 (after the evaluation at 4) is the newest
  await evaluated(out, { failAt: 5 }).catch((e: Error) => (msg = e.message));
  assert.match(msg, /killed/);
  const resumed = await evaluated(out, { resumeFrom: 'latest' });
  assert.equal(resumed.prepared, [4, 5], 'the resumed run prepares the micro-batches after its checkpoint');
  assert.equal(resumed.losses, whole.losses);
  assert.equal(resumed.w, whole.w);
  assert.equal(resumed.evals, whole.evals);
  assert.equal(rows(out), rows(join(tmp, 'eval-ref')));
  const a = await readCheckpointState(join(tmp, 'eval-ref', 'checkpoints', 'best'));
  const b = await readCheckpointState(join(out, 'checkpoints', 'best'));
  assert.equal(b, a);
  assert.equal(readFileSync(join(out, 'checkpoints', 'checkpoint-6', 'trained.safetensors')), readFileSync(join(tmp, 'eval-ref', 'checkpoints', 'checkpoint-6', 'trained.safetensors')));
});

test("interrupting names how to resume: the caller's resumeHint, else the API's 'latest'", async () => {
  const messages: string[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => { messages.push(a.map(String).join(' ')); };
  try {
    for (const [name, hint] of [['hint-cli', 'resume with --resume runs/x'], ['hint-api', undefined]] as const) {
      const ac = new AbortController();
      const r = await quadratic(join(tmp, name), {
        quiet: false, progressBar: false, signal: ac.signal, ...(hint ? { resumeHint: hint } : {}),
        onStep: ({ step }) => { if (step === 2) ac.abort(); },
      });
      assert.ok(r.interrupted, `${name}: interrupted`);
    }
  } finally {
    console.error = orig;
  }
  const stops = messages.filter((m) => m.includes('stopped at step 2'));
  assert.is(stops.length, 2, messages.join('\n'));
  assert.ok(stops[0]!.includes('(resume with --resume runs/x)'), stops[0]);
  assert.ok(stops[1]!.includes("(resume with 'latest')"), stops[1]);
});

test("EMA: diffusers' decay warm-up, the recurrence over real steps, and finalWeights 'ema' leaves the average in the trained tensors", async () => {
  assert.equal([1, 2, 3, 100].map((k) => emaDecayAt(0.9999, k)), [0, 2 / 11, 3 / 12, 100 / 109]);
  assert.is(emaDecayAt(0.5, 100), 0.5, 'capped at the configured decay');
  const emaOf = async (out: string) => [...(await readSafetensors(join(out, 'final', 'ema_weights.safetensors'))).get('0')!.data];
  const o = { gradientAccumulationSteps: 1, checkpointingSteps: 0, emaDecay: 0.99 };
  const one = await quadratic(join(tmp, 'ema-1'), { ...o, maxTrainSteps: 1 });
  assert.equal(await emaOf(join(tmp, 'ema-1')), one.w, 'the first update copies the weights (decay 0)');
  const two = await quadratic(join(tmp, 'ema-2'), { ...o, maxTrainSteps: 2 });
  const want = one.w.map((w1, i) => (2 / 11) * w1 + (9 / 11) * two.w[i]!);
  (await emaOf(join(tmp, 'ema-2'))).forEach((e, i) => assert.ok(Math.abs(e - want[i]!) < 1e-6, `ema[${i}] ${e} vs ${want[i]}`));
  const last = await quadratic(join(tmp, 'ema-last'), { ...o, maxTrainSteps: 5 });
  const avg = await quadratic(join(tmp, 'ema-final'), { ...o, maxTrainSteps: 5, finalWeights: 'ema' });
  assert.equal(await emaOf(join(tmp, 'ema-final')), await emaOf(join(tmp, 'ema-last')), 'the same average either way');
  assert.equal(avg.w, await emaOf(join(tmp, 'ema-final')), "finalWeights 'ema': the trained tensors hold the average");
  assert.not.equal(avg.w, last.w);
  try {
    await quadratic(join(tmp, 'ema-none'), { ...o, emaDecay: null, finalWeights: 'ema' });
    assert.unreachable('finalWeights ema without emaDecay must throw');
  } catch (e) {
    assert.match((e as Error).message, /needs emaDecay/);
  }
});

test.run();
