import { rand, randn, type Generator, type Backend, Tensor } from '@foliar/tensor';

/** Parameter initialisers (PyTorch's defaults), drawing from a seeded generator. */
export interface InitOptions {
  generator?: Generator;
  backend?: Backend;
}

export function uniform(shape: number[], bound: number, opts: InitOptions = {}): Tensor {
  return rand(shape, { low: -bound, high: bound, generator: opts.generator, backend: opts.backend });
}

export function normal(shape: number[], std: number, opts: InitOptions = {}): Tensor {
  return randn(shape, { std, generator: opts.generator, backend: opts.backend });
}

/** fan_in of a weight [out, in, ...kernel]. */
export function fanIn(shape: number[]): number {
  return shape.length < 2 ? shape[0]! : shape.slice(1).reduce((a, b) => a * b, 1);
}

/** kaiming_uniform_(a=√5), the default of nn.Linear and nn.Conv2d: bound = 1/√fan_in. */
export function defaultWeight(shape: number[], opts: InitOptions = {}, fan = fanIn(shape)): Tensor {
  return uniform(shape, 1 / Math.sqrt(fan), opts);
}

/** kaiming_normal_(mode='fan_out', nonlinearity='relu'), torchvision's ResNet conv init. */
export function kaimingNormalFanOut(shape: number[], opts: InitOptions = {}): Tensor {
  const fanOut = shape[0]! * shape.slice(2).reduce((a, b) => a * b, 1);
  return normal(shape, Math.sqrt(2 / fanOut), opts);
}
