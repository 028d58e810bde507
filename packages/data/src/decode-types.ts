// What decoding an image takes and how it fails: shared by the Node decoder (decode.ts, sharp) and
// the browser's (platform/browser.ts, createImageBitmap + OffscreenCanvas).
export type ResizeMode =
  /** Resize so the shorter side equals the target, then center-crop (torchvision Resize+CenterCrop). */
  | 'cover'
  /** Resize directly to the target size, ignoring aspect ratio. */
  | 'stretch';

export interface DecodeOptions {
  /** Target size: a square side or `[width, height]`. Omit to keep the original size. */
  size?: number | [number, number];
  /** How to reach `size` (default `cover`). */
  mode?: ResizeMode;
  /** Name shown in errors when `input` is a buffer. */
  name?: string;
}

export class ImageDecodeError extends Error {
  constructor(readonly file: string, cause: unknown) {
    super(`cannot decode image ${file}: ${cause instanceof Error ? cause.message.trim() : String(cause)}`);
    this.name = 'ImageDecodeError';
  }
}
