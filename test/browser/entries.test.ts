/**
 * Each package's browser entry (src/browser.ts, package.json `exports` condition `browser`) exports
 * the Node entry's API but an explicit list of Node-only names: a name added to index.ts must be added
 * to browser.ts too, or listed here as Node-only, so the two cannot drift apart unnoticed.
 */
import { test } from '../harness.js';
import * as assert from 'uvu/assert';

const NODE_ONLY: Record<string, string[]> = {
  tensor: ['openAtomic', 'writeFileAtomic', 'atomicTempPath', 'resolveInside', 'UnsafePathError', 'SafetensorsFile', 'readSafetensorsHeader', 'writeSafetensors'],
  report: ['writePng', 'readPng'],
  nn: ['cleanStaleTemps', 'filterJsonl', 'pidAlive', 'reportCliError', 'debugWanted', 'runTrainLoop', 'prepareOutputDir', 'existingRunOutputs', 'latestCheckpoint', 'readCheckpointState', 'loadCheckpointWeights', 'writeLossCurve', 'emaDecayAt', 'BEST_CHECKPOINT'],
  diffusion: [
    // golden tokenizer check, image sets on disk, random presets written to folders
    'checkTokenizerCase', 'loadCaseTokenizers', 'generateImageSet', 'imageSetFile', 'createRandomPipeline', 'writeShardedWeights', 'weightFileNames', 'parseSize',
  ],
};
/** Whole modules of the Node entry that the browser entry leaves out (diffusion's training, the classifier's datasets, training and CLI). */
const NODE_ONLY_MODULES: Record<string, string[]> = {
  diffusion: ['../../packages/diffusion/src/training/index.ts'],
  classifier: ['../../packages/classifier/src/data/index.ts', '../../packages/classifier/src/train/index.ts'],
};

for (const pkg of ['tensor', 'data', 'report', 'nn', 'diffusion', 'classifier']) {
  test(`@foliar/${pkg}: the browser entry exports the Node entry's API but its Node-only names`, async () => {
    const node = await import(`../../packages/${pkg}/src/index.ts`) as Record<string, unknown>;
    let browser: Record<string, unknown>;
    try {
      browser = await import(`../../packages/${pkg}/src/browser.ts`) as Record<string, unknown>;
    } catch {
      browser = node; // the package has one entry for both (its platform port differs: package.json `imports`)
    }
    const excluded = new Set(NODE_ONLY[pkg] ?? []);
    for (const m of NODE_ONLY_MODULES[pkg] ?? []) for (const k of Object.keys(await import(m) as object)) excluded.add(k);
    const missing = Object.keys(node).filter((k) => !(k in browser) && !excluded.has(k));
    assert.equal(missing, [], `exported in Node but not in the browser (add to src/browser.ts, or list as Node-only here): ${missing.join(', ')}`);
    const extra = Object.keys(browser).filter((k) => !(k in node));
    assert.equal(extra, [], `exported in the browser but not in Node: ${extra.join(', ')}`);
    for (const k of Object.keys(browser)) if (k in node) assert.ok(browser[k] === node[k], `${k}: the same object in both entries`);
  });
}

test.run();
