import * as assert from 'uvu/assert';
import { suite } from '../harness.js';
import { redactRedisUrl, redisConnection } from '../../examples/study/queue/queue.js';
import { errorLines } from './cluster.js';

/** The queue's address handling, and the failure digest the queue tests print (no Redis needed). */
const test = suite('study queue: addresses and failure digests');

test('a password reaches the connection but never a log line', () => {
  const url = 'redis://:s3cret@10.0.0.5:6380/2';
  const c = redisConnection(url) as { host: string; port: number; password?: string; db?: number };
  assert.equal([c.host, c.port, c.password, c.db], ['10.0.0.5', 6380, 's3cret', 2]);
  assert.is(redactRedisUrl(url), 'redis://:***@10.0.0.5:6380/2');
  assert.not.match(redactRedisUrl('redis://user:pa%40ss@h:1'), /pa/);
  assert.is(redactRedisUrl('redis://127.0.0.1:6379'), 'redis://127.0.0.1:6379');
  assert.is(redactRedisUrl('not a url'), 'not a url');
});

test('errorLines: exceptions and a stopped study, in order, progress lines and deep stacks left out', () => {
  const out = [
    'foliar study, smoke profile',
    'tiny 1/2 1.02 it/s ETA 1s loss 1.49 (no error here)',
    'study 15/32 0.33 stages/s ETA 51s jobs 22/25 done, 1 failed',
    '',
    'study stopped: job drift [seed 1] (f8d7) failed after 3 attempts: boom',
    'TypeError: x is not a function',
    '    at a (file.ts:1:1)',
    '    at b (file.ts:2:1)',
    '    at c (file.ts:3:1)',
    '    at d (file.ts:4:1)',
    'report written',
  ].join('\n');
  assert.equal(errorLines(out, 10), [
    'study stopped: job drift [seed 1] (f8d7) failed after 3 attempts: boom',
    'TypeError: x is not a function',
    '    at a (file.ts:1:1)',
    '    at b (file.ts:2:1)',
    '    at c (file.ts:3:1)',
  ]);
  assert.equal(errorLines(out, 1), ['study stopped: job drift [seed 1] (f8d7) failed after 3 attempts: boom']);
  assert.equal(errorLines('all good\n  at the end', 5), [], 'a stack frame alone is not an error line');
});

test.run();
