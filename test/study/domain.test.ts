/** The 1-NN two-sample accuracy: about 0.5 for two draws of one distribution, 1 for separated ones. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { oneNnTwoSample } from '../../examples/study/domain.js';

function gaussianRows(n: number, dim: number, shift: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  const out = new Float32Array(n * dim);
  for (let i = 0; i < out.length; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()) + shift;
  return out;
}

test('two draws of the same distribution are near chance', () => {
  const r = oneNnTwoSample(gaussianRows(200, 8, 0, 1), gaussianRows(200, 8, 0, 2), 8);
  assert.is(r.perSet, 200);
  assert.ok(Math.abs(r.accuracy - 0.5) < 0.1, `accuracy ${r.accuracy}`);
});

test('separated distributions are told apart, and the larger set is cut to the smaller', () => {
  const r = oneNnTwoSample(gaussianRows(50, 8, 0, 3), gaussianRows(400, 8, 3, 4), 8);
  assert.is(r.perSet, 50);
  assert.ok(r.accuracy > 0.95, `accuracy ${r.accuracy}`);
  assert.ok(r.realSelf > 0.95 && r.syntheticSelf > 0.95);
});

test('a synthetic set that copies the real one scores below chance-free separation', () => {
  // identical rows: each row's nearest other row at distance 0 is its copy in the other set
  const real = gaussianRows(30, 4, 0, 5);
  const r = oneNnTwoSample(real, real.slice(), 4);
  assert.ok(r.accuracy < 0.1, `memorised copies look like one set: ${r.accuracy}`);
});

test('bad shapes are refused with the sizes', () => {
  assert.throws(() => oneNnTwoSample(new Float32Array(7), new Float32Array(8), 4), /not multiples of dim 4/);
  assert.throws(() => oneNnTwoSample(new Float32Array(4), new Float32Array(8), 4), /at least 2 rows/);
});

test.run();
