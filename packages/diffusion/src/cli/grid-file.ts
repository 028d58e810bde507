// A labelled grid of images as one PNG file (the CLI's output; Node).
import { imageGrid, writePng } from '@foliar/report';
import type { RgbImage } from '@foliar/data';

export function saveGrid(path: string, images: RgbImage[], labels?: string[], title?: string): void {
  writePng(path, imageGrid(images, { cols: Math.ceil(Math.sqrt(images.length)), ...(labels ? { labels } : {}), ...(title ? { title } : {}) }));
}
