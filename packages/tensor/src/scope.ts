/**
 * Scoped cleanup (like tf.tidy): every tensor created inside `tidy(fn)` is disposed when fn returns,
 * except the tensors fn returns. Autograd nodes created in the scope and no longer reachable from a
 * kept tensor are freed too, so a forward pass whose result is dropped holds no memory.
 */
import type { Tensor } from './tensor.js';
import type { Node } from './autograd/node.js';

interface Scope {
  tensors: Set<Tensor>;
  nodes: Set<Node>;
  /** Tensors keep() took out of this scope: their autograd graph stays alive as the result's does. */
  kept: Set<Tensor>;
}

const stack: Scope[] = [];

export function trackTensor(t: Tensor): void {
  stack[stack.length - 1]?.tensors.add(t);
}
export function trackNode(n: Node): void {
  stack[stack.length - 1]?.nodes.add(n);
}
/** Removes a tensor from scope tracking: it outlives the enclosing tidy(). */
export function keep<T extends Tensor>(t: T): T {
  for (const s of stack) {
    s.tensors.delete(t);
    s.kept.add(t);
  }
  return t;
}

type Kept = Tensor | Kept[] | { [k: string]: Kept } | unknown;

/**
 * Brand carried by every Tensor: this module cannot import the Tensor class (tensor.ts imports this
 * one to track the tensors it makes), so it recognises tensors by the brand instead of `instanceof`.
 */
export const TENSOR: unique symbol = Symbol.for('foliar.tensor');

function isTensor(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && (v as { [TENSOR]?: unknown })[TENSOR] === true;
}

function collect(v: Kept, out: Set<Tensor>): void {
  if (isTensor(v)) out.add(v);
  else if (Array.isArray(v)) for (const x of v) collect(x, out);
  else if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    for (const x of Object.values(v)) collect(x, out);
  }
}

function endScope(s: Scope, result: unknown): void {
  const kept = new Set<Tensor>();
  collect(result, kept);
  // Nodes reachable from the result or from keep()'s tensors stay alive; the others are freed with
  // their saved tensors.
  const live = new Set<Node>();
  const todo: Node[] = [];
  for (const t of kept) if (t.gradFn) todo.push(t.gradFn);
  // a kept tensor disposed before the scope ended keeps nothing alive
  for (const t of s.kept) if (t.gradFn && !t.isDisposed) todo.push(t.gradFn);
  while (todo.length) {
    const n = todo.pop()!;
    if (live.has(n)) continue;
    live.add(n);
    for (const i of n.inputs) if (i?.gradFn) todo.push(i.gradFn);
  }
  for (const n of s.nodes) if (!live.has(n)) n.free();
  for (const t of s.tensors) if (!kept.has(t)) t.dispose();
  const parent = stack[stack.length - 1];
  if (parent) {
    for (const t of kept) if (s.tensors.has(t)) parent.tensors.add(t);
    for (const n of s.nodes) if (live.has(n)) parent.nodes.add(n);
  }
}

export function tidy<T>(fn: () => T): T {
  const s: Scope = { tensors: new Set(), nodes: new Set(), kept: new Set() };
  stack.push(s);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    endScope(s, undefined);
    throw e;
  }
  stack.pop();
  if (result instanceof Promise) throw new Error('tidy() takes a synchronous function; use tidyAsync() for async work');
  endScope(s, result);
  return result;
}

/** Like tidy, for async functions. Do not interleave two tidyAsync scopes concurrently. */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  const s: Scope = { tensors: new Set(), nodes: new Set(), kept: new Set() };
  stack.push(s);
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    stack.splice(stack.indexOf(s), 1);
    endScope(s, undefined);
    throw e;
  }
  stack.splice(stack.indexOf(s), 1);
  endScope(s, result);
  return result;
}
