/**
 * The multiply-add work of a training step, counted from the kernels it runs: every top-level
 * convolution (forward, input and weight gradient: 2·N·K·(C/groups)·R·S·Ho·Wo), matmul (2·batch·M·N·K)
 * and fused attention (forward 2·BH·Lq·Lk·(D + Dv); backward 2·BH·Lq·Lk·(3D + 2Dv): the scores
 * recomputed, dV, dP, dQ, dK). Kernels a kernel runs inside (a convolution's im2col GEMM) are not
 * counted twice. Norms, element-wise ops and the optimizer are memory traffic, not counted.
 *
 * Both sides of a speed ratio run the same model, so the count divided by each side's step time is
 * each side's effective GFLOP/s, and against the adapter's measured FMA peak it says what a ratio
 * target asks of the kernels (issue 12).
 */
import type { Backend } from '@foliar/tensor';

type Run = Backend['run'];

function kernelFlops(kernel: string, a: Record<string, unknown>): number {
  const n = (k: string) => Number(a[k] ?? 0);
  switch (kernel) {
    case 'conv2d':
    case 'conv2d_grad_input':
    case 'conv2d_grad_weight':
      return 2 * n('n') * n('k') * (n('c') / Math.max(1, n('groups'))) * n('kh') * n('kw') * n('ho') * n('wo');
    case 'matmul':
      return 2 * n('batch') * n('m') * n('n') * n('k');
    case 'attention_forward':
      return 2 * n('bh') * n('lq') * n('lk') * (n('d') + n('dv'));
    case 'attention_backward':
      return 2 * n('bh') * n('lq') * n('lk') * (3 * n('d') + 2 * n('dv'));
    default:
      return 0;
  }
}

/** Runs `fn` with `be`'s kernel calls counted; returns its result and the FLOPs it dispatched. */
export async function countFlops<T>(be: Backend, fn: () => Promise<T> | T): Promise<{ result: T; flops: number }> {
  const own = Object.prototype.hasOwnProperty.call(be, 'run');
  const prev = be.run;
  let flops = 0;
  let depth = 0;
  const counting = function (this: Backend, ...args: Parameters<Run>): ReturnType<Run> {
    if (depth === 0) flops += kernelFlops(args[0], args[2] as unknown as Record<string, unknown>);
    depth++;
    try {
      return prev.apply(this, args) as ReturnType<Run>;
    } finally {
      depth--;
    }
  };
  (be as { run: Run }).run = counting as Run;
  try {
    const result = await fn();
    return { result, flops };
  } finally {
    if (own) (be as { run: Run }).run = prev;
    else delete (be as { run?: Run }).run;
  }
}

/** "foliar X GFLOP/s (Y% of the FMA peak); PyTorch …; 0.5x PyTorch needs …" for a row's note. */
export function flopNote(flops: number, foliarMs: number, peerMs: number | undefined, peakGflops: number | undefined): string {
  const rate = (ms: number) => flops / ms / 1e6;
  const pct = (g: number) => (peakGflops ? ` (${((100 * g) / peakGflops).toFixed(0)}% of the WGSL FMA peak)` : '');
  const parts = [`${(flops / 1e9).toFixed(2)} GFLOP: foliar ${rate(foliarMs).toFixed(1)} GFLOP/s${pct(rate(foliarMs))}`];
  if (peerMs !== undefined) {
    parts.push(`PyTorch ${rate(peerMs).toFixed(1)} GFLOP/s${pct(rate(peerMs))}`);
    parts.push(`0.5x PyTorch asks ${rate(2 * peerMs).toFixed(1)} GFLOP/s${pct(rate(2 * peerMs))} over the whole step`);
  }
  return parts.join('; ');
}
