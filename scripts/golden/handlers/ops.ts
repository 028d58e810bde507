import * as ft from '@foliar/tensor';
import type { Tensor } from '@foliar/tensor';

import { Skip, type CaseContext, type Handler } from '../context.js';

type Ins = Record<string, Tensor>;
type Outs = Tensor | Record<string, Tensor>;

/**
 * The generic op case: inputs by name, forward, compare outputs, then backward of
 * loss = Σ_k sum(out_k · R_k) and compare grad_<input> (see golden/README.md).
 */
async function opCase(ctx: CaseContext, fn: (x: Ins) => Outs): Promise<void> {
  const roles = ctx.c.roles ?? {};
  const gradNames = roles.grads ?? [];
  const ins: Ins = {};
  for (const name of roles.inputs ?? []) {
    const isFloat = ctx.c.tensors[name]?.dtype.startsWith('F') ?? true;
    ins[name] = await ctx.t(name, { requiresGrad: isFloat && gradNames.includes(`grad_${name}`) });
  }
  const res = fn(ins);
  const outs: Record<string, Tensor> = res instanceof ft.Tensor ? { out: res } : res;
  for (const name of roles.outputs ?? ['out']) await ctx.check(name, outs[name], name);
  const cot = roles.cotangents ?? [];
  if (cot.length) {
    let loss: Tensor | null = null;
    for (const cn of cot) {
      const outName = cn === 'R' ? 'out' : cn.slice(2);
      const o = outs[outName];
      if (!o) throw new Error(`cotangent ${cn} has no output '${outName}'`);
      const term = o.mul(await ctx.t(cn)).sum();
      loss = loss ? loss.add(term) : term;
    }
    loss!.backward();
    for (const g of gradNames) await ctx.check(g, ins[g.slice(5)]?.grad, g);
  }
}

const unary = (f: (x: Tensor) => Tensor): Handler => (ctx) => opCase(ctx, (i) => f(i.x!));

function fn<T extends (...a: never[]) => unknown>(name: string): T {
  const f = (ft as Record<string, unknown>)[name];
  if (typeof f !== 'function') throw new Skip(`op '${name}' not implemented yet`);
  return f as T;
}

type F = (...a: unknown[]) => Tensor;

async function optimizerCase(ctx: CaseContext, decoupled: boolean): Promise<void> {
  const p = await ctx.t('param0');
  const m = ft.zerosLike(p), v = ft.zerosLike(p);
  const betas = ctx.attr<[number, number]>('betas');
  const steps = ctx.attr<number>('steps', 2);
  for (let s = 1; s <= steps; s++) {
    const g = await ctx.t(`grad_step${s}`);
    ft.noGrad(() =>
      ft.adamStep(p, g, m, v, {
        lr: ctx.attr<number>('lr'),
        beta1: betas[0],
        beta2: betas[1],
        eps: ctx.attr<number>('eps'),
        weightDecay: ctx.attr<number>('weight_decay', 0),
        decoupled,
        step: s,
      }),
    );
    await ctx.check(`param_step${s}`, p, `param_step${s}`);
    await ctx.check(`exp_avg_step${s}`, m, `exp_avg_step${s}`);
    await ctx.check(`exp_avg_sq_step${s}`, v, `exp_avg_sq_step${s}`);
  }
}

function convOpts(ctx: CaseContext): Record<string, unknown> {
  return { stride: ctx.attr('stride', 1), padding: ctx.attr('padding', 0), dilation: ctx.attr('dilation', 1), groups: ctx.attr('groups', 1) };
}

export const opsHandlers: Record<string, Handler> = {
  matmul: (ctx) => opCase(ctx, (i) => i.a!.matmul(i.b!)),
  linear: (ctx) => opCase(ctx, (i) => ft.linear(i.x!, i.weight!, i.bias)),
  embedding: (ctx) => opCase(ctx, (i) => ft.embedding(i.ids!, i.weight!)),
  softmax: (ctx) => opCase(ctx, (i) => i.x!.softmax(ctx.attr('dim', -1))),
  log_softmax: (ctx) => opCase(ctx, (i) => i.x!.logSoftmax(ctx.attr('dim', -1))),
  silu: unary((x) => x.silu()),
  relu: unary((x) => x.relu()),
  sigmoid: unary((x) => x.sigmoid()),
  tanh: unary((x) => x.tanh()),
  gelu_erf: unary((x) => x.gelu('none')),
  gelu_tanh: unary((x) => x.gelu('tanh')),
  gelu: (ctx) => opCase(ctx, (i) => i.x!.gelu(ctx.attr<string>('approximate', 'none') === 'tanh' ? 'tanh' : 'none')),
  quick_gelu: unary((x) => x.quickGelu()),
  mse_loss: (ctx) => opCase(ctx, (i) => ft.mseLoss(i.input!, i.target!, ctx.attr('reduction', 'mean'))),
  cross_entropy: (ctx) =>
    opCase(ctx, (i) =>
      ft.crossEntropy(i.logits!, i.target!, {
        reduction: ctx.attr('reduction', 'mean'),
        labelSmoothing: ctx.attr('label_smoothing', 0),
        ...(i.weight ? { weight: i.weight } : {}),
      }),
    ),
  conv2d: (ctx) => opCase(ctx, (i) => fn<F>('conv2d')(i.x, i.weight, i.bias ?? null, convOpts(ctx))),
  'pad+conv2d': (ctx) =>
    opCase(ctx, (i) => fn<F>('conv2d')(i.x!.pad(ctx.attr<number[]>('pad'), ctx.attr('pad_value', 0)), i.weight, i.bias ?? null, convOpts(ctx))),
  conv_transpose2d: (ctx) =>
    opCase(ctx, (i) =>
      fn<F>('convTranspose2d')(i.x, i.weight, i.bias ?? null, { ...convOpts(ctx), outputPadding: ctx.attr('output_padding', 0) }),
    ),
  interpolate: (ctx) =>
    opCase(ctx, (i) => {
      const size = ctx.c.attrs?.size as number[] | undefined;
      return fn<F>('interpolate')(i.x, { mode: ctx.attr('mode', 'nearest'), ...(size ? { size } : { scaleFactor: ctx.attr('scale_factor') }) });
    }),
  group_norm: (ctx) => opCase(ctx, (i) => fn<F>('groupNorm')(i.x, ctx.attr('num_groups'), i.weight, i.bias, ctx.attr('eps', 1e-5))),
  layer_norm: (ctx) => opCase(ctx, (i) => fn<F>('layerNorm')(i.x, ctx.attr('normalized_shape'), i.weight, i.bias, ctx.attr('eps', 1e-5))),
  batch_norm: (ctx) =>
    opCase(ctx, (i) => {
      const training = ctx.attr<boolean>('training');
      const out = fn<F>('batchNorm')(i.x, i.running_mean, i.running_var, i.weight, i.bias, {
        training,
        momentum: ctx.attr('momentum', 0.1),
        eps: ctx.attr('eps', 1e-5),
      });
      return training ? { out, running_mean_after: i.running_mean!, running_var_after: i.running_var! } : out;
    }),
  scaled_dot_product_attention: (ctx) =>
    opCase(ctx, (i) => fn<F>('scaledDotProductAttention')(i.q, i.k, i.v, ctx.attr('is_causal', false) ? { mask: 'causal' } : {})),
  avg_pool2d: (ctx) =>
    opCase(ctx, (i) =>
      fn<F>('avgPool2d')(i.x, {
        kernelSize: ctx.attr('kernel_size'),
        stride: ctx.attr('stride', ctx.attr('kernel_size')),
        padding: ctx.attr('padding', 0),
        countIncludePad: ctx.attr('count_include_pad', true),
        ceilMode: ctx.attr('ceil_mode', false),
      }),
    ),
  max_pool2d: (ctx) =>
    opCase(ctx, (i) =>
      fn<F>('maxPool2d')(i.x, {
        kernelSize: ctx.attr('kernel_size'),
        stride: ctx.attr('stride', ctx.attr('kernel_size')),
        padding: ctx.attr('padding', 0),
        dilation: ctx.attr('dilation', 1),
        ceilMode: ctx.attr('ceil_mode', false),
      }),
    ),
  adaptive_avg_pool2d: (ctx) => opCase(ctx, (i) => fn<F>('adaptiveAvgPool2d')(i.x, ctx.attr('output_size'))),
  Adam: (ctx) => optimizerCase(ctx, false),
  AdamW: (ctx) => optimizerCase(ctx, true),
};

