import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as ft from '@foliar/tensor';
import { resnet18, type ResNetFeatures } from '@foliar/classifier';
import type { CaseContext, Handler } from '../context.js';
import { stateFromIndex, type WeightsIndex } from '../hash-init.js';

/** torchvision.models.resnet18 forward + backward in eval and train mode, weights by hash init. */
const resnetCase: Handler = async (ctx: CaseContext) => {
  const idx = JSON.parse(await readFile(join(ctx.dir, dirname(ctx.c.file), 'weights_index.json'), 'utf8')) as WeightsIndex;
  const sd = stateFromIndex(idx);
  const x = await ctx.t('x');
  const target = await ctx.t('target');
  for (const mode of ['eval', 'train'] as const) {
    if (!ctx.has(`${mode}/logits`)) continue;
    const model = resnet18({ numClasses: ctx.attr<number>('num_classes', 4), backend: ctx.backend });
    model.loadStateDict(sd, { context: 'golden resnet18' });
    model.train(mode === 'train');
    const feats: ResNetFeatures = {};
    const logits = model.forward(x, feats);
    const loss = ft.crossEntropy(logits, target);
    loss.backward();
    await ctx.check(`${mode}/logits`, logits, `${mode}/logits`);
    await ctx.check(`${mode}/loss`, loss, `${mode}/loss`);
    await ctx.check(`${mode}/layer1_out`, feats.layer1, `${mode}/layer1_out`);
    await ctx.check(`${mode}/avgpool_out`, feats.avgpool, `${mode}/avgpool_out`);
    const params = new Map(model.namedParameters());
    const buffers = new Map(model.namedBuffers());
    for (const name of Object.keys(ctx.c.tensors)) {
      if (name.startsWith(`${mode}/grad/`)) {
        const key = name.slice(`${mode}/grad/`.length);
        await ctx.check(name, params.get(key)?.grad, name, { rtol: 2e-4, atol: 1e-6 });
      } else if (name.startsWith(`${mode}/after/`)) {
        await ctx.check(name, buffers.get(name.slice(`${mode}/after/`.length)), name);
      }
    }
    model.dispose();
  }
};

export const resnetHandlers: Record<string, Handler> = { 'torchvision.models.resnet18': resnetCase };
