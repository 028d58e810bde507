/**
 * A backend's say in 'auto' attention, registered by its kernel module: whether its fused kernel beats
 * the math path for these head dims (WebGPU: the subgroup kernel for heads up to 16 wide,
 * ops/attention/webgpu-subgroup.ts). Its own module so that kernel modules can register without
 * importing the op (which imports the backends).
 */
import type { Backend } from '../../backend.js';

const fusedPreferred = new Map<string, (be: Backend, d: number, dv: number) => boolean>();

export function preferFusedAttention(backend: string, when: (be: Backend, d: number, dv: number) => boolean): void {
  fusedPreferred.set(backend, when);
}

export function fusedAttentionPreferred(be: Backend, d: number, dv: number): boolean {
  return fusedPreferred.get(be.name)?.(be, d, dv) ?? false;
}
