import { Tensor } from '../tensor.js';
import { Node, type BackwardFn } from './node.js';
import { isGradEnabled } from './grad-mode.js';
import { trackNode } from '../scope.js';

/**
 * Attaches an autograd node to `out` when any input needs a gradient. `save` lists the tensors the
 * backward reads; they are kept alive (as aliases) until the node is freed, so disposing the
 * originals after the forward is safe.
 */
export function record(out: Tensor, name: string, inputs: readonly Tensor[], backward: BackwardFn, save: readonly Tensor[] = []): Tensor {
  if (!isGradEnabled() || !inputs.some((t) => t.requiresGrad)) return out;
  const node = new Node(
    name,
    inputs.map((t) => (t.requiresGrad ? t : null)),
    backward,
    save.map((t) => t.alias()),
  );
  out.gradFn = node;
  out.requiresGrad = true;
  trackNode(node);
  return out;
}

export function needsGrad(...inputs: Tensor[]): boolean {
  return isGradEnabled() && inputs.some((t) => t.requiresGrad);
}
