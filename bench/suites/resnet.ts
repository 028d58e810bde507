/**
 * ResNet18 training throughput (images/s): forward + cross-entropy + backward + SGD step, batch 32,
 * at 64x64 and 128x128, on the current adapter; PyTorch on this machine's CPU as the peer when
 * `python3 -c "import torch"` works (same run, so the ratio compares like with like).
 *
 * Part of `npm run bench` once registered in suites/index.ts (`resnet: resnetSuite`); also runs
 * alone: `node --conditions=foliar-source --import tsx bench/suites/resnet.ts [--quick]`.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ft from '@foliar/tensor';
import { SGD } from '@foliar/nn';
import { resnet18 } from '@foliar/classifier';
import type { Row, RunInfo } from '../lib/report.js';

const BATCH = 32;

/** Median ms of `steps` training steps after one warm-up step (tinybench's warm-up would take minutes here). */
async function trainStepMs(size: number, steps: number): Promise<number> {
  ft.manualSeed(0);
  const model = resnet18({ numClasses: 4 });
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const x = ft.randn([BATCH, 3, size, size]);
  const y = ft.tensor(Int32Array.from({ length: BATCH }, (_, i) => i % 4));
  const times: number[] = [];
  try {
    for (let i = 0; i <= steps; i++) {
      const t0 = performance.now();
      const loss = ft.tidy(() => {
        const l = ft.crossEntropy(model.forward(x), y);
        l.backward();
        return l.detach();
      });
      opt.step();
      opt.zeroGrad();
      await loss.data(); // the device has finished the step
      loss.dispose();
      if (i > 0) times.push(performance.now() - t0);
    }
  } finally {
    x.dispose();
    y.dispose();
    opt.dispose();
    model.dispose();
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/** The first Python that imports torch: $FOLIAR_PYTHON, python3, then the system's (Debian's python3-torch). */
function pythonWithTorch(): { python: string } | { why: string } {
  const candidates = [process.env.FOLIAR_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p);
  let why = '';
  for (const python of [...new Set(candidates)]) {
    const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
    if (!probe.error && probe.status === 0) return { python };
    why ||= probe.error?.message ?? probe.stderr.trim().split('\n').pop() ?? '';
  }
  return { why: `python3 -c "import torch" failed (${why})` };
}

/** PyTorch CPU medians per size, or the reason there are none. */
function torchPeer(sizes: number[], steps: number): { ms: Record<string, number>; label: string } | { skip: string } {
  const py = pythonWithTorch();
  if ('why' in py) return { skip: `PyTorch peer skipped: ${py.why}` };
  const script = join(import.meta.dirname, 'resnet_torch.py');
  const r = spawnSync(py.python, [script, `sizes=${sizes.join(',')}`, `batch=${BATCH}`, `steps=${steps}`], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) return { skip: `PyTorch peer failed: ${r.stderr.trim().split('\n').slice(-3).join(' ')}` };
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { torch: string; threads: number; results: Record<string, number> };
  console.error(`PyTorch ${out.torch} on the CPU, ${out.threads} threads (${py.python})`);
  return { ms: out.results, label: 'pytorch-cpu' };
}

export async function resnetSuite(_info: RunInfo, opts: { quick: boolean; peers: boolean }): Promise<Row[]> {
  const sizes = [64, 128];
  const steps = opts.quick ? 2 : 4;
  const rows: Row[] = [];
  for (const s of sizes) {
    const ms = await trainStepMs(s, steps);
    console.error(`resnet18 train ${s}x${s}: ${ms.toFixed(0)} ms/step, ${(BATCH / (ms / 1000)).toFixed(1)} img/s`);
    rows.push({ suite: 'resnet', name: `ResNet18 train step, batch ${BATCH}, ${s}x${s}`, medianMs: ms, rate: BATCH / (ms / 1000), unit: 'img/s', peers: {} });
  }
  if (opts.peers) {
    const peer = torchPeer(sizes, steps);
    if ('skip' in peer) {
      console.error(peer.skip);
      for (const r of rows) { r.peers!['pytorch-cpu'] = null; r.note = peer.skip; }
    } else {
      rows.forEach((r, i) => {
        const p = peer.ms[String(sizes[i])]!;
        r.peers![peer.label] = p;
        r.note = `pytorch-cpu ${(BATCH / (p / 1000)).toFixed(1)} img/s; foliar/pytorch speed ratio ${(p / r.medianMs).toFixed(2)}`;
        console.error(`${r.name}: ${r.note}`);
      });
    }
  }
  return rows;
}

// standalone: print the rows as JSON
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const backend = await ft.init({ backend: (process.env.FOLIAR_BACKEND as 'webgpu' | 'cpu' | undefined) ?? 'webgpu' });
  console.error(`bench on ${backend.describe()}`);
  const info: RunInfo = { adapter: backend.describe(), dawn: '', cpu: '', node: process.version, date: new Date().toISOString(), peaks: {} };
  const rows = await resnetSuite(info, { quick: process.argv.includes('--quick'), peers: !process.argv.includes('--no-peers') });
  console.log(JSON.stringify(rows, null, 2));
  ft.shutdown();
}
