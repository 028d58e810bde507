// Import-graph check: lists the import cycles (strongly connected components of more than one module)
// among the .ts files of a folder. Type-only imports (`import type`, `export type`) are erased by the
// compiler and cannot form a run-time circle, so they are ignored unless --with-types is given.
// usage: node --import tsx scripts/import-cycles.ts [folder, default packages/tensor/src] [--with-types] [--json]
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { join, resolve, dirname, relative } from 'node:path';

export type ImportGraph = Map<string, Set<string>>;

export function importGraph(root: string, withTypes = false): ImportGraph {
  const files: string[] = [];
  const walk = (d: string): void => { for (const n of readdirSync(d)) { const p = join(d, n); if (statSync(p).isDirectory()) walk(p); else if (n.endsWith('.ts') && !n.endsWith('.d.ts')) files.push(p); } };
  walk(root);
  const graph: ImportGraph = new Map();
  const re = /^\s*(import|export)\s+(type\s+)?([^'";]*?\s+from\s+)?['"](\.[^'"]+)['"]/gm;
  for (const f of files) {
    const src = readFileSync(f, 'utf8');
    const deps = new Set<string>();
    for (const m of src.matchAll(re)) {
      if (m[2] && !withTypes) continue;
      // `import { type A, type B } from` is type-only too
      if (!withTypes && m[3] && /^\s*\{([^}]*)\}/.test(m[3].replace(/^(import|export)/, '')) ) {
        const names = m[3].match(/\{([^}]*)\}/)![1]!.split(',').map((s) => s.trim()).filter(Boolean);
        if (names.length && names.every((n) => n.startsWith('type '))) continue;
      }
      const target = resolve(dirname(f), m[4]!.replace(/\.js$/, '.ts'));
      if (existsSync(target)) deps.add(target);
      else if (existsSync(join(target.replace(/\.ts$/, ''), 'index.ts'))) deps.add(join(target.replace(/\.ts$/, ''), 'index.ts'));
    }
    graph.set(f, deps);
  }
  return graph;
}

/** Tarjan's strongly connected components of size > 1 (or a module importing itself). */
export function cycles(graph: ImportGraph): string[][] {
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>(), on = new Set<string>(), stack: string[] = [], out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index); low.set(v, index); index++; stack.push(v); on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = []; let w: string;
      do { w = stack.pop()!; on.delete(w); comp.push(w); } while (w !== v);
      if (comp.length > 1 || graph.get(v)?.has(v)) out.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

if (process.argv[1] && resolve(process.argv[1]) === new URL(import.meta.url).pathname) {
  const args = process.argv.slice(2);
  const root = resolve(args.find((a) => !a.startsWith('--')) ?? 'packages/tensor/src');
  const found = cycles(importGraph(root, args.includes('--with-types')));
  if (args.includes('--json')) console.log(JSON.stringify(found.map((c) => c.map((f) => relative(root, f)))));
  else {
    for (const c of found) console.log(`cycle of ${c.length} modules: ${c.map((f) => relative(root, f)).join(' ')}`);
    console.log(`${found.length} import cycle(s) in ${relative(process.cwd(), root) || '.'}`);
  }
  process.exit(found.length ? 1 : 0);
}
