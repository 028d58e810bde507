// Which files count as images: one list for every folder foliar reads (classifier layouts, extra
// training images, prediction folders, diffusion instance and image folders). sharp decodes all four.

/** Image file extensions foliar reads, lower case with the dot. */
export const IMAGE_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg', '.webp'];

const SET = new Set(IMAGE_EXTENSIONS);

/** Whether `name` (a file name or path) has an image extension (any case); hidden files (`.x.png`) do not count. */
export function isImageFile(name: string): boolean {
  const base = name.slice(Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\')) + 1);
  return !base.startsWith('.') && SET.has(base.includes('.') ? base.slice(base.lastIndexOf('.')).toLowerCase() : '');
}
