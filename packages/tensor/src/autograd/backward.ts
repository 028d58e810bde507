import { Tensor } from '../tensor.js';
import type { Node } from './node.js';
import { noGrad } from './grad-mode.js';
import { keep, tidy } from '../scope.js';
import { shapesEqual, fmtShape } from '../shape.js';
import { onesLike } from '../ops/creation.js';
import { add } from '../ops/elementwise/index.js';
import { contiguous } from '../ops/views.js';
import { backwardScopeOf, swapProfileScope, profileScopePath } from '../runtime/profiler.js';

export interface BackwardOptions {
  /** Keep the graph for another backward pass. */
  retainGraph?: boolean;
}

/** Reverse-mode accumulation from `root`, PyTorch semantics: leaf gradients accumulate in `.grad`. */
export function backward(root: Tensor, grad?: Tensor, opts: BackwardOptions = {}): void {
  if (!root.requiresGrad) throw new Error('backward() on a tensor that does not require grad (no parameter with requiresGrad was used)');
  if (!grad && root.size !== 1) throw new Error(`backward() without a gradient needs a scalar, got ${fmtShape(root.shape)}`);
  noGrad(() =>
    tidy(() => {
      // the caller keeps its gradient tensor: the pass works on its own handle
      const seed = grad ? Tensor.view(grad, grad.shape, grad.strides, grad.offset) : onesLike(root);
      if (!shapesEqual(seed.shape, root.shape)) throw new Error(`gradient shape ${fmtShape(seed.shape)} does not match ${fmtShape(root.shape)}`);
      if (!root.gradFn) {
        accumulateLeaf(root, seed);
        return;
      }
      // Topological order (iterative DFS: graphs can be deep).
      const order: Node[] = [];
      const seen = new Set<Node>();
      const stack: [Node, number][] = [[root.gradFn, 0]];
      seen.add(root.gradFn);
      while (stack.length) {
        const top = stack[stack.length - 1]!;
        const [n, i] = top;
        if (n.freed) throw new Error(`autograd: the graph through '${n.name}' was already freed; call backward({ retainGraph: true }) to backpropagate twice`);
        if (i < n.inputs.length) {
          top[1]++;
          const g = n.inputs[i]?.gradFn;
          if (g && !seen.has(g)) {
            seen.add(g);
            stack.push([g, 0]);
          }
        } else {
          stack.pop();
          order.push(n);
        }
      }
      const grads = new Map<Node, Tensor>();
      grads.set(root.gradFn, seed);
      // each node's kernels (and the accumulation of what it produced) go to its forward scope's backward row
      const outerScope = profileScopePath();
      try {
        for (let k = order.length - 1; k >= 0; k--) {
          const node = order[k]!;
          const g = grads.get(node);
          grads.delete(node);
          if (!g) continue;
          swapProfileScope(backwardScopeOf(node.scope));
          const inputs = node.inputs;
          // a backward may take an input's gradient accumulated so far and add it in its own kernel
          const taken = new Map<number, Tensor>();
          const take = (j: number): Tensor | null => {
            const inp = inputs[j];
            if (!inp?.gradFn || taken.has(j)) return null;
            const prev = grads.get(inp.gradFn);
            if (!prev || !shapesEqual(prev.shape, inp.shape)) return null;
            grads.delete(inp.gradFn);
            taken.set(j, prev);
            return prev;
          };
          const raw = node.apply(g, take);
          // A backward may pass the incoming gradient through, or return one tensor twice: give each
          // use its own handle so disposing one never frees another's storage.
          const used = new Set<Tensor>([g]);
          const gs = raw.map((t) => {
            if (!t) return t;
            if (used.has(t)) return Tensor.view(t, t.shape, t.strides, t.offset);
            used.add(t);
            return t;
          });
          g.dispose();
          for (let j = 0; j < inputs.length; j++) {
            const inp = inputs[j];
            const gi = gs[j];
            const had = taken.get(j);
            if (had && inp?.gradFn) {
              // the returned gradient includes what was taken (or, against the contract, none came back)
              grads.set(inp.gradFn, gi ?? had);
              if (gi && gi !== had) had.dispose();
              if (gi && !shapesEqual(gi.shape, inp.shape)) {
                throw new Error(`autograd: '${node.name}' produced a gradient of shape ${fmtShape(gi.shape)} for an input of shape ${fmtShape(inp.shape)}`);
              }
              continue;
            }
            if (!inp || !gi) continue;
            if (!shapesEqual(gi.shape, inp.shape)) {
              throw new Error(`autograd: '${node.name}' produced a gradient of shape ${fmtShape(gi.shape)} for an input of shape ${fmtShape(inp.shape)}`);
            }
            if (inp.gradFn) {
              const prev = grads.get(inp.gradFn);
              if (prev) {
                grads.set(inp.gradFn, add(prev, gi));
                prev.dispose();
              } else grads.set(inp.gradFn, gi);
            } else accumulateLeaf(inp, gi);
          }
          if (!opts.retainGraph) node.free();
        }
      } finally {
        swapProfileScope(outerScope);
      }
    }),
  );
}

function accumulateLeaf(leaf: Tensor, g: Tensor): void {
  if (leaf.isDisposed) return;
  if (leaf.grad) {
    const sum = keep(add(leaf.grad, g));
    leaf.grad.dispose();
    leaf.grad = sum;
  } else {
    leaf.grad = keep(g.isContiguous && g.offset === 0 ? g.alias() : contiguous(g));
  }
}
