#!/usr/bin/env node
// Runs the whole test suite: every uvu test file (each in its own process, so one crash cannot hide
// the others), then the golden runner over ../shared/golden on both backends. Prints per-file
// results and ends with the line CI reads: "N passed, N failed, N skipped".
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve, relative } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const filter = args.find((a) => !a.startsWith('--'));
const noGolden = args.includes('--no-golden');
const nodeArgs = ['--conditions=foliar-source', '--import', 'tsx'];
const env = { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' };

function listTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listTests(p));
    else if (/\.test\.ts$/.test(name)) out.push(p);
  }
  return out;
}

const strip = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');
let passed = 0, failed = 0, skipped = 0;
const failures = [];
const t0 = Date.now();

for (const file of listTests(join(root, 'test'))) {
  const rel = relative(root, file);
  if (filter && !rel.includes(filter)) continue;
  const started = Date.now();
  const r = spawnSync(process.execPath, [...nodeArgs, join(root, 'node_modules/uvu/bin.js'), join(root, 'test'), rel.replace(/^test\//, '').replace(/[.+]/g, '\\$&') + '$'], {
    cwd: root, env, encoding: 'utf8', timeout: 15 * 60 * 1000, maxBuffer: 64 * 1024 * 1024,
  });
  const out = strip((r.stdout ?? '') + (r.stderr ?? ''));
  const num = (label) => Number((out.match(new RegExp(`${label}:\\s+(\\d+)`)) ?? [])[1] ?? NaN);
  const total = num('Total'), ok = num('Passed'), skip = num('Skipped');
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  if (Number.isNaN(total) || r.status !== 0) {
    const f = Number.isNaN(total) ? 1 : Math.max(total - ok - (skip || 0), 1);
    failed += f;
    passed += Number.isNaN(ok) ? 0 : ok;
    failures.push(rel);
    console.log(`FAIL ${rel} (${secs}s, exit ${r.status ?? r.signal})`);
    console.log(out.split('\n').filter((l) => !/^Warning: maxDynamic/.test(l)).slice(-60).join('\n'));
  } else {
    passed += ok;
    skipped += skip || 0;
    const notices = out.split('\n').filter((l) => /SKIP/.test(l));
    console.log(`ok   ${rel}: ${ok} passed${skip ? `, ${skip} skipped` : ''} (${secs}s)`);
    for (const n of notices) console.log(`     ${n.trim()}`);
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
