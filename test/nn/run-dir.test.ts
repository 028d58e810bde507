/**
 * Run-folder hygiene after kills: stale temp files and partial checkpoint folders of dead writers
 * (or of this process) go, those of live writers stay; JSONL logs are cut atomically.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, existsSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanStaleTemps, filterJsonl, pidAlive } from '@foliar/nn';

const tmp = mkdtempSync(join(tmpdir(), 'foliar-run-dir-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync('true');
  assert.ok(r.pid && !pidAlive(r.pid), 'a finished child is not alive');
  return r.pid!;
}

test('pidAlive: this process and its parent are alive; an exited child and nonsense pids are not', () => {
  assert.ok(pidAlive(process.pid));
  assert.ok(pidAlive(process.ppid));
  assert.not.ok(pidAlive(deadPid()));
  assert.not.ok(pidAlive(0), 'pid 0 would signal the process group');
  assert.not.ok(pidAlive(-1));
});

test('cleanStaleTemps removes the leftovers of dead writers and of this process, keeps live writers\' and real files', async () => {
  const run = join(tmp, 'run');
  const dead = deadPid();
  const live = process.ppid;
  const files = {
    staleTop: join(run, `config.json.tmp-${dead}-1a2b3c4d`),
    staleDeep: join(run, 'final', 'unet', `diffusion_pytorch_model.safetensors.tmp-${dead}-ff00`),
    ownOld: join(run, 'checkpoints', `best.safetensors.tmp-${process.pid}-k3j2`),
    liveTemp: join(run, `train.jsonl.tmp-${live}-abcd`),
    real: join(run, 'checkpoints', 'checkpoint-2', 'state.json'),
    lookalike: join(run, 'notes.tmp-x'),
  };
  const partialDead = join(run, 'checkpoints', `checkpoint-4.partial-${dead}`);
  const partialLive = join(run, 'checkpoints', `checkpoint-6.partial-${live}`);
  for (const f of Object.values(files)) {
    mkdirSync(join(f, '..'), { recursive: true });
    writeFileSync(f, 'x');
  }
  for (const d of [partialDead, partialLive]) {
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'trained.safetensors'), 'x');
  }
  const removed = (await cleanStaleTemps(run)).sort();
  assert.equal(removed, [files.staleTop, files.staleDeep, files.ownOld, partialDead].sort());
  for (const p of removed) assert.not.ok(existsSync(p), `${p} removed`);
  for (const p of [files.liveTemp, files.real, files.lookalike, partialLive]) assert.ok(existsSync(p), `${p} kept`);
  // `within` limits the search to the named subfolders
  const shared = join(tmp, 'shared');
  const mine = join(shared, 'checkpoints', `a.tmp-${dead}-1`), theirs = join(shared, 'photos', `b.tmp-${dead}-2`), top = join(shared, `c.tmp-${dead}-3`);
  for (const f of [mine, theirs, top]) {
    mkdirSync(join(f, '..'), { recursive: true });
    writeFileSync(f, 'x');
  }
  assert.equal((await cleanStaleTemps(shared, { within: ['checkpoints'] })).sort(), [mine, top].sort());
  assert.ok(existsSync(theirs));
  // a missing folder is not an error
  assert.equal(await cleanStaleTemps(join(tmp, 'nowhere')), []);
});

test('filterJsonl keeps the lines the predicate accepts, drops a torn last line, rewrites atomically', async () => {
  const log = join(tmp, 'train.jsonl');
  const lines = [1, 2, 3, 4, 5].map((step) => JSON.stringify({ step, loss: 1 / step }));
  writeFileSync(log, lines.join('\n') + '\n{"step": 6, "lo');
  const dropped = await filterJsonl(log, (r) => (r.step as number) <= 3);
  assert.is(dropped, 3);
  assert.is(readFileSync(log, 'utf8'), lines.slice(0, 3).join('\n') + '\n');
  assert.equal(readdirSync(tmp).filter((n) => n.includes('.tmp-')), [], 'no temp file left');
  // nothing to drop: the file is left as it is
  assert.is(await filterJsonl(log, () => true), 0);
  assert.is(await filterJsonl(join(tmp, 'missing.jsonl'), () => false), 0);
});

test.run();
