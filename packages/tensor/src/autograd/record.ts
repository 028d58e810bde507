import type { Tensor } from '../tensor.js';
import { Node, type BackwardFn } from './node.js';
import { isGradEnabled } from './grad-mode.js';
import { trackNode } from '../scope.js';
import { profileScopePath } from '../runtime/profiler.js';

/**
 * Attaches an autograd node to `out` when any input needs a gradient. `save` lists the tensors the
 * backward reads; they are kept alive (as aliases) until the node is freed, so disposing the
 * originals after the forward is safe.
 */
export function record(out: Tensor, name: string, inputs: readonly Tensor[], backward: BackwardFn, save: readonly Tensor[] = []): Tensor {
  if (!isGradEnabled()) {
    const c = collectors[collectors.length - 1];
    if (c) for (const t of inputs) if (t.requiresGrad) c.add(t);
    return out;
  }
  if (!inputs.some((t) => t.requiresGrad)) return out;
  const node = new Node(
    name,
    inputs.map((t) => (t.requiresGrad ? t : null)),
    backward,
    save.map((t) => t.alias()),
  );
  node.scope = profileScopePath();
  out.gradFn = node;
  out.requiresGrad = true;
  trackNode(node);
  return out;
}

export function needsGrad(...inputs: Tensor[]): boolean {
  return isGradEnabled() && inputs.some((t) => t.requiresGrad);
}

const collectors: Set<Tensor>[] = [];

/**
 * Runs `fn` (normally under noGrad) and lists the tensors that require grad which its operations
 * read: activation checkpointing uses this to connect parameters used inside a recomputed block
 * (e.g. LoRA factors on frozen layers) to the graph even when none of the block's inputs need grad.
 */
export function collectGradInputs<T>(fn: () => T): { result: T; tensors: Tensor[] } {
  const set = new Set<Tensor>();
  collectors.push(set);
  try {
    return { result: fn(), tensors: [...set] };
  } finally {
    collectors.pop();
  }
}
