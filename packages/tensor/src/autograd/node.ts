import type { Tensor } from '../tensor.js';

/**
 * Offered to a backward by the engine: the gradient already accumulated for input `i` (another use
 * of the same tensor delivered it first), or null. Taking it is a promise: the gradient the backward
 * returns for input i must include it (a kernel adds it in its store), and the engine then stores that
 * gradient instead of summing the two with an extra kernel, and disposes the taken tensor afterwards.
 */
export type TakeAccumulated = (i: number) => Tensor | null;

export type BackwardFn = (grad: Tensor, saved: readonly Tensor[], take: TakeAccumulated) => readonly (Tensor | null | undefined)[];

/** One recorded operation: its inputs (null where no gradient is needed), what it saved, its backward. */
export class Node {
  private fn: BackwardFn | null;
  /** Profiler scope path active when the forward op ran: its backward kernels are attributed to '<scope> (backward)'. */
  scope = '';
  constructor(
    readonly name: string,
    public inputs: (Tensor | null)[],
    fn: BackwardFn,
    public saved: Tensor[],
  ) {
    this.fn = fn;
  }
  get freed(): boolean {
    return this.fn === null;
  }
  apply(grad: Tensor, take: TakeAccumulated = () => null): readonly (Tensor | null | undefined)[] {
    if (!this.fn) {
      throw new Error(
        `autograd: the graph through '${this.name}' was already freed; call backward({ retainGraph: true }) to backpropagate twice`,
      );
    }
    return this.fn(grad, this.saved, take);
  }
  /** Releases what the node saved; the node can no longer backpropagate. */
  free(): void {
    if (!this.fn) return;
    this.fn = null;
    for (const t of this.saved) t.dispose();
    this.saved = [];
    this.inputs = [];
  }
}
