/**
 * The demo page on http://127.0.0.1:8080/ : bundles it (scripts/build-browser.mjs), writes its model
 * files beside it the first time (a tiny ResNet trained for a minute on procedural leaves, a tiny
 * pipeline folder), and serves examples/browser/dist. Open the address in a browser with WebGPU.
 *   npm run demo:browser [-- --port 8080] [--retrain]
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as ft from '@foliar/tensor';
import { buildBrowser, prepareModels, serveStatic, DIST } from './harness.js';

const args = process.argv.slice(2);
const port = Number(args[args.indexOf('--port') + 1] ?? 8080) || 8080;
console.log(buildBrowser().trim());
const models = join(DIST, 'models');
if (args.includes('--retrain') || !existsSync(join(models, 'classifier.safetensors'))) {
  await ft.init();
  console.log(`writing ${models} on ${ft.describeBackend()}`);
  await prepareModels(models, { trainSteps: 150, log: (s) => console.log(s) });
}
const { url } = await serveStatic(DIST, port);
console.log(`demo page: ${url}  (Ctrl-C stops)`);
