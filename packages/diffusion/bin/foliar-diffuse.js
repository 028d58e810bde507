#!/usr/bin/env node
// foliar-diffuse. In a clone of the repository (TypeScript sources and tsx present) it runs the
// sources as `npm run diffuse` does (node --conditions=foliar-source --import tsx), so `npx
// foliar-diffuse` works right after `npm ci`, with no build and never a stale one; in an installed
// package it runs the built dist/. npm links this file (it exists before any build; a bin pointing
// into dist/ is not linked by `npm ci`, which runs before `npm run build`).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const source = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const built = new URL('../dist/cli/main.js', import.meta.url);

let tsx = null;
try {
  tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
} catch {
  // no tsx (an installed package): run dist/
}

if (tsx && existsSync(source)) {
  const args = [...process.execArgv, '--conditions=foliar-source', '--import', tsx, source, ...process.argv.slice(2)];
  const child = spawn(process.execPath, args, { stdio: 'inherit' });
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, () => child.kill(s));
  child.on('exit', (code, signal) => {
    for (const s of signals) process.removeAllListeners(s);
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
} else if (existsSync(fileURLToPath(built))) {
  await import(built.href);
} else {
  console.error('foliar-diffuse: neither the TypeScript sources with tsx nor a build (dist/) found; run `npm ci` (and `npm run build`) in the repository');
  process.exit(1);
}
