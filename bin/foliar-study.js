#!/usr/bin/env node
// foliar-study: the study's two commands in a clone of the repository (the study is an example, run
// from its TypeScript sources with tsx, as `npm run study` does).
//   npx foliar-study [run] [study options]                      the study (npm run study -- …)
//   npx foliar-study worker --redis redis://host:port --store <dir> [--concurrency n]   a queue worker
// Signals reach the child, which stops after its current step or job (a second signal quits at once).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const COMMANDS = { run: '../examples/study.ts', worker: '../examples/study/queue/worker.ts' };
const argv = process.argv.slice(2);
if (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
  console.log('usage: foliar-study [run] [--profile smoke|quick|gpu64|full] [--queue redis://host:port --store <dir>] …   (run --help for all options)\n' +
    '       foliar-study worker --redis redis://host:port --store <dir> [--concurrency n] [--backend webgpu|cpu]');
  process.exit(0);
}
const name = argv[0] && !argv[0].startsWith('-') ? argv[0] : 'run';
if (!(name in COMMANDS)) {
  console.error(`foliar-study: unknown command '${name}' (commands: run, worker; foliar-study --help)`);
  process.exit(2);
}
const rest = name === argv[0] ? argv.slice(1) : argv;
const source = fileURLToPath(new URL(COMMANDS[name], import.meta.url));
let tsx;
try {
  tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
} catch {
  console.error('foliar-study: tsx is not installed; run `npm ci` in the repository first');
  process.exit(1);
}
if (!existsSync(source)) {
  console.error(`foliar-study: ${source} is missing; foliar-study runs in a clone of the foliar repository`);
  process.exit(1);
}
const child = spawn(process.execPath, [...process.execArgv, '--conditions=foliar-source', '--import', tsx, source, ...rest], { stdio: 'inherit' });
// Ctrl-C reaches the child through the terminal's process group; other signals are passed on
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => { if (s !== 'SIGINT') child.kill(s); });
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1) : 1)));
