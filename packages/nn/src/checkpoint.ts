import { Tensor, noGrad, record, setGradEnabled, isGradEnabled, tidy, defaultGenerator, collectGradInputs } from '@foliar/tensor';

/**
 * Activation checkpointing (torch.utils.checkpoint): runs `fn` without keeping its intermediate
 * activations and recomputes them during backward. Parameters used inside `fn` receive their
 * gradients during that recomputation. The default generator's state is replayed for the
 * recomputation (torch's preserve_rng_state), so dropout drawing from it sees the same masks; a
 * dropout with its own generator must be deterministic on its own. Tensors that need gradients must
 * be passed as `inputs` or be leaves (parameters): a leaf read inside `fn` joins the graph even when
 * no input needs a gradient (frozen layers with trained adapters).
 */
export function checkpoint(fn: (...xs: Tensor[]) => Tensor, ...inputs: Tensor[]): Tensor {
  if (!isGradEnabled()) return fn(...inputs);
  const rng = defaultGenerator.getState();
  const { result: out, tensors: used } = noGrad(() => collectGradInputs(() => tidy(() => fn(...inputs))));
  const leaves = used.filter((t) => !inputs.includes(t) && !t.gradFn);
  return record(
    out,
    'checkpoint',
    // the leaves only connect the graph: their gradients accumulate during the recomputation
    [...inputs, ...leaves],
    (g, saved) => {
      const prev = isGradEnabled();
      const after = defaultGenerator.getState();
      setGradEnabled(true);
      defaultGenerator.setState(rng);
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
        const grads = xs.map((x) => {
          const gr = x.grad;
          const v = gr ? Tensor.view(gr, gr.shape, gr.strides, gr.offset) : null;
          x.dispose();
          return v;
        });
        return [...grads, ...leaves.map(() => null)];
      } finally {
        defaultGenerator.setState(after);
        setGradEnabled(prev);
      }
    },
    inputs,
  );
}
