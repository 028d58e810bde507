// packages/tensor/src has no import circle: tensor.ts holds the tensor's data and identity and imports
// no op; the op methods are installed by tensor-methods.ts, which index.ts loads (issue 13).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolve, relative } from 'node:path';
import { importGraph, cycles } from '../../scripts/import-cycles.js';

const root = resolve(import.meta.dirname, '../../packages/tensor/src');

test('packages/tensor/src: no run-time import cycle', () => {
  const found = cycles(importGraph(root)).map((c) => c.map((f) => relative(root, f)).join(' -> '));
  assert.equal(found, [], `import cycles:\n${found.join('\n')}`);
});

test('tensor.ts imports no op, autograd pass or methods module', () => {
  const deps = [...importGraph(root).get(resolve(root, 'tensor.ts'))!].map((f) => relative(root, f));
  for (const d of deps) assert.ok(!/^ops\/|autograd\/backward|tensor-methods/.test(d), `tensor.ts imports ${d}`);
});

test('the checker finds a cycle when there is one', () => {
  const g = new Map([['a', new Set(['b'])], ['b', new Set(['c'])], ['c', new Set(['a'])], ['d', new Set(['a'])]]);
  assert.equal(cycles(g), [['a', 'b', 'c']]);
});

test.run();
