#!/usr/bin/env node
// Runs the whole test suite: every uvu test file (each in its own process, so one crash cannot hide
// the others), then the golden runner over ../shared/golden on both backends. Prints per-file
// results and ends with the line CI reads: "N passed, N failed, N skipped".
//
// Skips are counted as skips: uvu's own (`test.skip`) and runtime skips (test/harness.ts: a test that
// finds it cannot run here, e.g. without a WebGPU adapter or ../shared, prints `SKIP "<test>": why`
// and, at exit, `Runtime skips: N`; uvu counts those tests as passed, so they move from passed to
// skipped here). A test that never ran (uvu drops a suite's tests silently when its `before` hook
// throws) counts as failed.
//
// usage: node scripts/test.mjs [filter] [--no-golden] [--dir <folder of tests, default test/>]
// (folders named `fixtures` are not searched: test/tooling/fixtures holds suites run by tests)
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve, relative } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const dirAt = args.indexOf('--dir');
const testDir = resolve(root, dirAt >= 0 ? args[dirAt + 1] ?? 'test' : 'test');
const filter = args.find((a, i) => !a.startsWith('--') && (dirAt < 0 || i !== dirAt + 1));
const noGolden = args.includes('--no-golden') || dirAt >= 0;
// --expose-gc: leak checks collect garbage before they count (test/helpers.ts settledMemory)
const nodeArgs = ['--expose-gc', '--conditions=foliar-source', '--import', 'tsx'];
const env = { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' };

function listTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== 'fixtures') out.push(...listTests(p));
    } else if (/\.test\.ts$/.test(name)) out.push(p);
  }
  return out;
}

const strip = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');
/**
 * A file's time limit. The longest file, the queued smoke study, took 422-639 s on one 2-core host
 * in one day (427 s on CI): 25 min leaves a slow host room, inside CI's 90.
 */
const FILE_TIMEOUT_MS = 25 * 60 * 1000;

/**
 * What a failing file's report shows: from uvu's first failure header (its message's head is what
 * says why; readers of a CI log see its first lines), 45 lines, then the last 15 (the summary, a crash
 * after the tests); a file that died before any header, its last 60 lines.
 */
function failureExcerpt(lines) {
  const head = lines.findIndex((l) => /^\s+FAIL\s/.test(l));
  if (head < 0 || lines.length - head <= 60) return lines.slice(head < 0 ? -60 : head).join('\n');
  return [...lines.slice(head, head + 45), `     [… ${lines.length - head - 60} lines …]`, ...lines.slice(-15)].join('\n');
}

let passed = 0, failed = 0, skipped = 0;
const failures = [];
const t0 = Date.now();

for (const file of listTests(testDir)) {
  const rel = relative(root, file);
  if (filter && !rel.includes(filter)) continue;
  const started = Date.now();
  const r = spawnSync(process.execPath, [...nodeArgs, join(root, 'node_modules/uvu/bin.js'), testDir, relative(testDir, file).replace(/[.+]/g, '\\$&') + '$'], {
    cwd: root, env, encoding: 'utf8', timeout: FILE_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024,
  });
  const out = strip((r.stdout ?? '') + (r.stderr ?? ''));
  const num = (label) => Number((out.match(new RegExp(`${label}:\\s+(\\d+)`)) ?? [])[1] ?? NaN);
  // uvu: Total = tests that were to run, Passed = those that returned (runtime skips included),
  // Skipped = test.skip / .only leftovers (not in Total)
  const total = num('Total'), uvuOk = num('Passed'), skip = num('Skipped') || 0;
  const runtimeSkips = Math.min(num('Runtime skips') || 0, Number.isNaN(uvuOk) ? 0 : uvuOk);
  const ok = uvuOk - runtimeSkips;
  const notRun = Number.isNaN(total) ? 0 : total - uvuOk;
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  if (Number.isNaN(total) || r.status !== 0 || notRun > 0) {
    const f = Number.isNaN(total) ? 1 : Math.max(notRun, 1);
    failed += f;
    passed += Number.isNaN(ok) ? 0 : ok;
    skipped += Number.isNaN(total) ? 0 : skip + runtimeSkips;
    failures.push(rel);
    const why = r.status === 0 && notRun > 0 ? `, ${notRun} of ${total} tests did not run (a before hook threw?)` : '';
    console.log(`FAIL ${rel} (${secs}s, exit ${r.status ?? r.signal}${why})`);
    console.log(failureExcerpt(out.split('\n').filter((l) => !/^Warning: maxDynamic/.test(l))));
  } else {
    passed += ok;
    skipped += skip + runtimeSkips;
    const notices = out.split('\n').filter((l) => /SKIP/.test(l));
    const sk = skip + runtimeSkips;
    console.log(`ok   ${rel}: ${ok} passed${sk ? `, ${sk} skipped` : ''} (${secs}s)`);
    for (const n of notices) console.log(`     ${n.slice(n.indexOf('SKIP')).trim()}`);
  }
}

if (!noGolden && !filter) {
  const shared = process.env.FOLIAR_SHARED ?? resolve(root, '..', 'shared');
  const golden = join(shared, 'golden');
  if (!existsSync(join(golden, 'manifest.json'))) {
    const msg = `golden fixtures not found at ${golden}`;
    if (process.env.FOLIAR_REQUIRE_SHARED) {
      console.log(`FAIL ${msg} (FOLIAR_REQUIRE_SHARED is set)`);
      failed++;
    } else console.log(`SKIP golden: ${msg}`);
  } else {
    for (const backend of ['webgpu', 'cpu']) {
      const started = Date.now();
      const r = spawnSync(process.execPath, [...nodeArgs, join(root, 'scripts/golden.ts'), golden, '--backend', backend], {
        cwd: root, env, encoding: 'utf8', timeout: 30 * 60 * 1000, maxBuffer: 64 * 1024 * 1024,
      });
      const out = strip((r.stdout ?? '') + (r.stderr ?? ''));
      const m = out.match(/golden: (\d+) passed, (\d+) failed, (\d+) skipped/);
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      if (!m) {
        failed++;
        failures.push(`golden (${backend})`);
        console.log(`FAIL golden --backend ${backend} (${secs}s, exit ${r.status})\n${out.slice(-4000)}`);
        continue;
      }
      passed += Number(m[1]);
      failed += Number(m[2]);
      skipped += Number(m[3]);
      for (const l of out.split('\n')) if (/^FAIL /.test(l)) console.log(`     [${backend}] ${l}`);
      console.log(`${Number(m[2]) ? 'FAIL' : 'ok  '} golden --backend ${backend}: ${m[0]} (${secs}s)`);
      if (Number(m[2])) failures.push(`golden (${backend})`);
    }
  }
}

console.log(`\ntest time ${((Date.now() - t0) / 1000).toFixed(0)}s${failures.length ? `; failing: ${failures.join(', ')}` : ''}`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed ? 1 : 0);
