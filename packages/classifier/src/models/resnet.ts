import { Tensor, tidy, profileScope, tensor } from '@foliar/tensor';
import { IMAGENET_MEAN, IMAGENET_STD } from '@foliar/data';
import { Module, Conv2d, BatchNorm2d, Linear, MaxPool2d, AdaptiveAvgPool2d, Sequential, kaimingNormalFanOut, type Layer, type InitOptions } from '@foliar/nn';

/** torchvision's BasicBlock: two 3x3 convs with batch norm and an optional 1x1 downsample. */
export class BasicBlock extends Module implements Layer {
  conv1: Conv2d;
  bn1: BatchNorm2d;
  conv2: Conv2d;
  bn2: BatchNorm2d;
  downsample: Sequential | null;
  constructor(inplanes: number, planes: number, stride: number, init: InitOptions) {
    super();
    this.conv1 = this.module('conv1', new Conv2d(inplanes, planes, 3, { stride, padding: 1, bias: false, ...init }));
    this.bn1 = this.module('bn1', new BatchNorm2d(planes, init));
    this.conv2 = this.module('conv2', new Conv2d(planes, planes, 3, { padding: 1, bias: false, ...init }));
    this.bn2 = this.module('bn2', new BatchNorm2d(planes, init));
    this.downsample =
      stride !== 1 || inplanes !== planes
        ? this.module('downsample', new Sequential(new Conv2d(inplanes, planes, 1, { stride, bias: false, ...init }), new BatchNorm2d(planes, init)))
        : null;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const out = this.bn2.forward(this.conv2.forward(this.bn1.forwardRelu(this.conv1.forward(x))));
      const identity = this.downsample ? this.downsample.forward(x) : x;
      return out.add(identity).relu();
    });
  }
}

export interface ResNetOptions extends InitOptions {
  numClasses?: number;
  /** Blocks per stage: [2, 2, 2, 2] is ResNet18, [3, 4, 6, 3] ResNet34. */
  layers?: [number, number, number, number];
  inChannels?: number;
}

/** Intermediate activations the forward can hand back (the golden case compares them). */
export interface ResNetFeatures {
  layer1?: Tensor;
  avgpool?: Tensor;
}

/**
 * ResNet with BasicBlocks exactly as torchvision builds it (module names included, so a torchvision
 * state dict converted to safetensors loads with `loadStateDict`). Any input size works: the
 * adaptive average pool makes the head independent of resolution.
 */
export class ResNet extends Module implements Layer {
  conv1: Conv2d;
  bn1: BatchNorm2d;
  maxpool: MaxPool2d;
  layer1: Sequential;
  layer2: Sequential;
  layer3: Sequential;
  layer4: Sequential;
  avgpool: AdaptiveAvgPool2d;
  fc: Linear;
  readonly numClasses: number;

  constructor(opts: ResNetOptions = {}) {
    super();
    const layers = opts.layers ?? [2, 2, 2, 2];
    this.numClasses = opts.numClasses ?? 1000;
    const init: InitOptions = { ...(opts.generator ? { generator: opts.generator } : {}), ...(opts.backend ? { backend: opts.backend } : {}) };
    this.conv1 = this.module('conv1', new Conv2d(opts.inChannels ?? 3, 64, 7, { stride: 2, padding: 3, bias: false, ...init }));
    this.bn1 = this.module('bn1', new BatchNorm2d(64, init));
    this.maxpool = this.module('maxpool', new MaxPool2d({ kernelSize: 3, stride: 2, padding: 1 }));
    let inplanes = 64;
    const stage = (planes: number, blocks: number, stride: number): Sequential => {
      const bs: BasicBlock[] = [];
      for (let i = 0; i < blocks; i++) {
        bs.push(new BasicBlock(inplanes, planes, i === 0 ? stride : 1, init));
        inplanes = planes;
      }
      return new Sequential(...bs);
    };
    this.layer1 = this.module('layer1', stage(64, layers[0], 1));
    this.layer2 = this.module('layer2', stage(128, layers[1], 2));
    this.layer3 = this.module('layer3', stage(256, layers[2], 2));
    this.layer4 = this.module('layer4', stage(512, layers[3], 2));
    this.avgpool = this.module('avgpool', new AdaptiveAvgPool2d(1));
    this.fc = this.module('fc', new Linear(512, this.numClasses, init));
    this.torchvisionInit(init);
  }

  /** torchvision's init: kaiming_normal(fan_out, relu) convs, BN weight 1 and bias 0; fc keeps Linear's default. */
  private torchvisionInit(init: InitOptions): void {
    for (const [, m] of this.namedModules()) {
      if (m instanceof Conv2d) {
        const w = kaimingNormalFanOut([...m.weight.shape], init);
        m.loadStateDict({ weight: w }, { strict: false });
        w.dispose();
      }
    }
  }

  /** Logits [N, numClasses]; `features` receives the layer1 and avgpool activations if given. */
  forward(x: Tensor, features?: ResNetFeatures): Tensor {
    if (x.rank !== 4) throw new RangeError(`ResNet expects input [N, C, H, W], got [${x.shape.join(', ')}]`);
    // profiler scopes (ft.profile) per stage; free when not profiling
    const stem = profileScope('stem', () => tidy(() => this.maxpool.forward(this.bn1.forwardRelu(this.conv1.forward(x)))));
    const l1 = profileScope('layer1', () => this.layer1.forward(stem));
    stem.dispose();
    if (features) features.layer1 = l1;
    const l4 = tidy(() => {
      const l2 = profileScope('layer2', () => this.layer2.forward(l1));
      const l3 = profileScope('layer3', () => this.layer3.forward(l2));
      return profileScope('layer4', () => this.layer4.forward(l3));
    });
    if (!features) l1.dispose();
    const pooled = profileScope('avgpool', () => this.avgpool.forward(l4));
    l4.dispose();
    if (features) features.avgpool = pooled;
    const logits = profileScope('fc', () => tidy(() => this.fc.forward(pooled.flatten(1))));
    if (!features) pooled.dispose();
    return logits;
  }
}

export function resnet18(opts: Omit<ResNetOptions, 'layers'> = {}): ResNet {
  return new ResNet({ ...opts, layers: [2, 2, 2, 2] });
}
export function resnet34(opts: Omit<ResNetOptions, 'layers'> = {}): ResNet {
  return new ResNet({ ...opts, layers: [3, 4, 6, 3] });
}

/** Stages of a ResNet whose activations `resnetFeatures` can hand back, shallow to deep. */
export const RESNET_FEATURE_LAYERS = ['stem', 'layer1', 'layer2', 'layer3', 'layer4'] as const;
export type ResNetFeatureLayer = (typeof RESNET_FEATURE_LAYERS)[number];

export interface ResNetFeaturesOptions {
  /**
   * Range of the images the extractor receives, mapped linearly to [0, 1] and then to the
   * normalisation the classifier trained with (`mean`, `std`: ImageNet's by default, as
   * `normalizeToChw`). Default [0, 1]; a VAE's images are [-1, 1].
   */
  inputRange?: [number, number];
  mean?: readonly number[];
  std?: readonly number[];
}

/**
 * A frozen feature extractor on a trained ResNet (e.g. for a perceptual loss): the activations of the
 * given stages, shallow to deep — 'stem' is conv1+bn1+ReLU before the max-pool (1/2 resolution),
 * 'layer1' 1/4, 'layer2' 1/8 … The forward stops at the deepest stage asked for. The model is put in
 * eval mode (BatchNorm's running statistics) and its parameters stop requiring gradients, so a loss
 * through it trains only what feeds it; gradients still flow to the input.
 */
export function resnetFeatures(model: ResNet, layers: readonly ResNetFeatureLayer[], opts: ResNetFeaturesOptions = {}): (x: Tensor) => Tensor[] {
  if (!layers.length) throw new RangeError('resnetFeatures: no layers asked for');
  for (const l of layers) if (!RESNET_FEATURE_LAYERS.includes(l)) throw new RangeError(`resnetFeatures: unknown layer "${String(l)}" (layers: ${RESNET_FEATURE_LAYERS.join(', ')})`);
  const [lo, hi] = opts.inputRange ?? [0, 1];
  if (!(hi > lo)) throw new RangeError(`resnetFeatures: inputRange [${lo}, ${hi}] is empty`);
  const mean = opts.mean ?? IMAGENET_MEAN, std = opts.std ?? IMAGENET_STD;
  model.eval();
  model.requiresGrad_(false);
  // ((x − lo)/(hi − lo) − mean)/std = x·scale + shift, per channel
  const scale = Float32Array.from(std, (s) => 1 / ((hi - lo) * s));
  const shift = Float32Array.from(std, (s, c) => (-lo / (hi - lo) - mean[c]!) / s);
  const deepest = Math.max(...layers.map((l) => RESNET_FEATURE_LAYERS.indexOf(l)));
  const stages = [model.layer1, model.layer2, model.layer3, model.layer4];
  return (x: Tensor): Tensor[] =>
    tidy(() => {
      if (x.rank !== 4 || x.shape[1] !== scale.length) throw new RangeError(`resnetFeatures: expected [N, ${scale.length}, H, W], got [${x.shape.join(', ')}]`);
      const be = model.conv1.weight.backend;
      const s = tensor(scale, { shape: [1, scale.length, 1, 1], backend: be }), b = tensor(shift, { shape: [1, shift.length, 1, 1], backend: be });
      const out: Tensor[] = [];
      let h = model.bn1.forwardRelu(model.conv1.forward(x.mul(s).add(b)));
      if (layers.includes('stem')) out.push(h);
      if (deepest >= 1) h = model.maxpool.forward(h);
      for (let i = 1; i <= deepest; i++) {
        h = stages[i - 1]!.forward(h);
        if (layers.includes(RESNET_FEATURE_LAYERS[i]!)) out.push(h);
      }
      return out;
    });
}
