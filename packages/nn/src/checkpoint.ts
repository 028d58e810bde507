import { Tensor, noGrad, record, setGradEnabled, isGradEnabled, tidy } from '@foliar/tensor';

/**
 * Activation checkpointing (torch.utils.checkpoint): runs `fn` without keeping its intermediate
 * activations and recomputes them during backward. Parameters used inside `fn` receive their
 * gradients during that recomputation. `fn` must be deterministic (fork a fixed generator for dropout).
 */
export function checkpoint(fn: (...xs: Tensor[]) => Tensor, ...inputs: Tensor[]): Tensor {
  if (!isGradEnabled()) return fn(...inputs);
  const out = noGrad(() => fn(...inputs));
  return record(
    out,
    'checkpoint',
    inputs,
    (g, saved) => {
      const prev = isGradEnabled();
      setGradEnabled(true);
      try {
        const xs = saved.map((s, i) => {
          const d = s.detach();
          if (inputs[i]!.requiresGrad) d.requiresGrad_(true);
          return d;
        });
        tidy(() => {
          const y = fn(...xs);
          if (y.requiresGrad) y.backward(g);
        });
        // hand back scope-tracked handles and release the recomputation's leaves
        return xs.map((x) => {
          const gr = x.grad;
          const v = gr ? Tensor.view(gr, gr.shape, gr.strides, gr.offset) : null;
          x.dispose();
          return v;
        });
      } finally {
        setGradEnabled(prev);
      }
    },
    inputs,
  );
}
