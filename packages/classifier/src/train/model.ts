// Model registry: the study's ResNets and a tiny ResNet-like net for fast CPU tests.
import { tidy, type Tensor } from '@foliar/tensor';
import { Module, Conv2d, BatchNorm2d, Linear, AdaptiveAvgPool2d, Sequential, type Layer } from '@foliar/nn';
import { BasicBlock, resnet18, resnet34 } from '../models/resnet.js';

export type Arch = 'resnet18' | 'resnet34' | 'tiny';
/** Every Arch, for checks of files and flags. */
export const ARCHS: readonly Arch[] = ['resnet18', 'resnet34', 'tiny'];

/** A classifier: logits [N, numClasses] from images [N, 3, H, W]. */
export type Classifier = Module & Layer;

/**
 * Same structure as ResNet (conv-BN-ReLU stem, BasicBlocks with a strided downsample, global
 * average pool, linear head) at widths 8-16-32: enough to exercise every layer type the real
 * model uses while training in seconds on the CPU backend.
 */
export class TinyResNet extends Module implements Layer {
  conv1: Conv2d;
  bn1: BatchNorm2d;
  layers: Sequential;
  avgpool: AdaptiveAvgPool2d;
  fc: Linear;
  constructor(numClasses: number) {
    super();
    this.conv1 = this.module('conv1', new Conv2d(3, 8, 3, { stride: 1, padding: 1, bias: false }));
    this.bn1 = this.module('bn1', new BatchNorm2d(8));
    this.layers = this.module('layers', new Sequential(new BasicBlock(8, 16, 2, {}), new BasicBlock(16, 32, 2, {})));
    this.avgpool = this.module('avgpool', new AdaptiveAvgPool2d(1));
    this.fc = this.module('fc', new Linear(32, numClasses));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.fc.forward(this.avgpool.forward(this.layers.forward(this.bn1.forwardRelu(this.conv1.forward(x)))).flatten(1)));
  }
}

/** Builds a freshly initialised model (from the default generator: seed it first). */
export function buildModel(arch: Arch, numClasses: number): Classifier {
  switch (arch) {
    case 'resnet18': return resnet18({ numClasses });
    case 'resnet34': return resnet34({ numClasses });
    case 'tiny': return new TinyResNet(numClasses);
    default: throw new Error(`unknown arch ${JSON.stringify(arch)} (known: resnet18, resnet34, tiny)`);
  }
}
