// Lint-like guards of issue 13 over packages/*/src: every `as unknown as` says why (a comment on the
// line or the line above), and no `.mul(1)` makes a copy or a fresh handle (Tensor.share() does).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');
function sources(dir: string, out: string[] = []): string[] {
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (n === 'node_modules' || n === 'dist') continue;
    if (statSync(p).isDirectory()) sources(p, out);
    else if (n.endsWith('.ts')) out.push(p);
  }
  return out;
}
const files = readdirSync(join(root, 'packages')).flatMap((pkg) => {
  const src = join(root, 'packages', pkg, 'src');
  try { return statSync(src).isDirectory() ? sources(src) : []; } catch { return []; }
});

test('every `as unknown as` in packages/ carries a comment saying why', () => {
  const bare: string[] = [];
  for (const f of files) {
    const lines = readFileSync(f, 'utf8').split('\n');
    lines.forEach((l, i) => {
      if (!l.includes('as unknown as') || /^\s*(\/\/|\*)/.test(l)) return;
      if (l.includes('//') || /^\s*\/\//.test(lines[i - 1] ?? '')) return;
      bare.push(`${relative(root, f)}:${i + 1}`);
    });
  }
  assert.equal(bare, [], `casts without a comment:\n${bare.join('\n')}`);
});

test('no .mul(1) in packages/ (use share() for a new handle)', () => {
  const found = files.flatMap((f) =>
    readFileSync(f, 'utf8').split('\n').flatMap((l, i) => (/\.mul\(1\)/.test(l) && !/^\s*(\/\/|\*)/.test(l) ? [`${relative(root, f)}:${i + 1}`] : [])),
  );
  assert.equal(found, []);
});

test.run();
