import { readFile, readdir } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { resolveInside } from '@foliar/tensor';
import { parseCsvRecords, isImageFile, IMAGE_EXTENSIONS } from '@foliar/data';
import type { ImageRef } from './image-check.js';

/** An image with its caption (text-to-image training). */
export interface CaptionedImage {
  image: string;
  caption: string;
  /** Where the image is listed (`<dir>/metadata.jsonl line 3`, `<csv> row 7`), for error messages. */
  listedAt?: string;
}

/** The image files of a folder (png, jpg, jpeg, webp), sorted by name. */
export async function listImageFiles(dir: string): Promise<string[]> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`image folder ${dir} does not exist`);
  const files = (await readdir(dir)).filter((f) => isImageFile(f)).sort().map((f) => join(dir, f));
  if (!files.length) throw new Error(`image folder ${dir} has no ${IMAGE_EXTENSIONS.join('/')} files`);
  return files;
}

/**
 * RFC 4180 CSV → rows of fields, through @foliar/data's parser (the classifier reads CSVs with the
 * same one): quoted fields, CRLF / LF / CR line ends, a leading BOM dropped, blank lines skipped; a
 * quote inside an unquoted field, text after a closing quote and an unterminated quoted field are
 * errors (CsvError) naming `file` and the line.
 */
export function parseCsv(text: string, file = '<csv>'): string[][] {
  return parseCsvRecords(text, file).records;
}

async function readCsv(path: string): Promise<{ header: string[]; rows: string[][] }> {
  if (!existsSync(path)) throw new Error(`CSV file ${path} not found`);
  const all = parseCsv(await readFile(path, 'utf8'), path);
  if (!all.length) throw new Error(`CSV file ${path} is empty`);
  const header = all[0]!.map((h) => h.trim());
  all.slice(1).forEach((r, i) => {
    if (r.length !== header.length) throw new Error(`${path} row ${i + 2}: ${r.length} fields, the header has ${header.length}`);
  });
  return { header, rows: all.slice(1) };
}

function column(path: string, header: string[], name: string): number {
  const i = header.indexOf(name);
  if (i < 0) throw new Error(`${path} has no column '${name}' (columns: ${header.join(', ')})`);
  return i;
}

/**
 * diffusers' imagefolder layout: `<dir>/metadata.jsonl` with one `{"file_name": …, "text": …}` per line
 * (the caption key is configurable), file names relative to the folder (a name leading outside it is refused).
 */
export async function readCaptionedFolder(dir: string, captionKey = 'text', opts: { checkFiles?: boolean } = {}): Promise<CaptionedImage[]> {
  const meta = join(dir, 'metadata.jsonl');
  if (!existsSync(meta)) throw new Error(`${dir} has no metadata.jsonl (diffusers imagefolder layout: {"file_name": …, "${captionKey}": …} per line)`);
  const out: CaptionedImage[] = [];
  const lines = (await readFile(meta, 'utf8')).split(/\r?\n/);
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(line) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`${meta} line ${i + 1}: not JSON (${(e as Error).message})`);
    }
    if (typeof j.file_name !== 'string') throw new Error(`${meta} line ${i + 1}: no "file_name" string`);
    if (typeof j[captionKey] !== 'string') throw new Error(`${meta} line ${i + 1}: no "${captionKey}" string`);
    const image = resolveInside(dir, j.file_name, `${meta} line ${i + 1}: file_name`);
    // the trainers' image check lists every missing file at once (checkFiles: false leaves it to them)
    if ((opts.checkFiles ?? true) && !existsSync(image)) throw new Error(`${meta} line ${i + 1}: image ${image} not found`);
    out.push({ image, caption: j[captionKey] as string, listedAt: `${meta} line ${i + 1}` });
  });
  if (!out.length) throw new Error(`${meta} lists no images`);
  return out;
}

export interface CaptionCsvOptions {
  /** Column of image paths or ids (default 'file_name'). */
  imageColumn?: string;
  /** Column of captions (default 'text'); ignored with `captionTemplate`. */
  captionColumn?: string;
  /** Folder of the images (default: the CSV's folder); Plant Pathology 2020: `images`. */
  imageDir?: string;
  /** Appended to the image column's values (Plant Pathology 2020: '.jpg'). */
  imageExt?: string;
  /**
   * Captions from one-hot label columns, e.g. 'a photo of a {label} leaf': {label} is the name of the
   * column holding 1 (Plant Pathology 2020: healthy, multiple_diseases, rust, scab) with '_' → ' '.
   */
  captionTemplate?: string;
  /** With captionTemplate: the label columns (default: every column but the image column). */
  labelColumns?: string[];
}

/** Captioned images from a CSV (a caption column, or a template over one-hot label columns). */
export async function readCaptionedCsv(csv: string, o: CaptionCsvOptions = {}): Promise<CaptionedImage[]> {
  const { header, rows } = await readCsv(csv);
  const img = column(csv, header, o.imageColumn ?? 'file_name');
  const base = resolve(dirname(csv), o.imageDir ?? '.');
  const labels = o.captionTemplate ? (o.labelColumns ?? header.filter((_, i) => i !== img)).map((l) => [l, column(csv, header, l)] as const) : [];
  const cap = o.captionTemplate ? -1 : column(csv, header, o.captionColumn ?? 'text');
  return rows.map((r, i) => {
    const image = resolveInside(base, `${r[img]!.trim()}${o.imageExt ?? ''}`, `${csv} row ${i + 2}: ${header[img]}`);
    let caption: string;
    if (o.captionTemplate) {
      const on = labels.filter(([, c]) => Number(r[c]) === 1);
      if (on.length !== 1) throw new Error(`${csv} row ${i + 2}: ${on.length} label columns hold 1 (expected exactly one of ${labels.map(([l]) => l).join(', ')})`);
      caption = o.captionTemplate.replaceAll('{label}', on[0]![0].replaceAll('_', ' '));
    } else caption = r[cap]!;
    return { image, caption, listedAt: `${csv} row ${i + 2}` };
  });
}

/**
 * The images of one class of a one-hot label CSV (Plant Pathology 2020 train.csv: image_id, healthy,
 * multiple_diseases, rust, scab; images at `<csv dir>/images/<image_id>.jpg`).
 */
export async function readClassImagesFromCsv(csv: string, className: string, o: { imageColumn?: string; imageDir?: string; imageExt?: string } = {}): Promise<string[]> {
  const refs = await readClassImageRefsFromCsv(csv, className, o);
  const missing = refs.filter((r) => !existsSync(r.path));
  if (missing.length) throw new Error(`${csv}: ${missing.length} of ${refs.length} '${className}' images are missing (first: ${missing[0]!.path}, ${missing[0]!.listedAt})`);
  return refs.map((r) => r.path);
}

/** readClassImagesFromCsv's images with the CSV row of each, missing files included (the trainers' image check lists them). */
export async function readClassImageRefsFromCsv(csv: string, className: string, o: { imageColumn?: string; imageDir?: string; imageExt?: string } = {}): Promise<ImageRef[]> {
  const { header, rows } = await readCsv(csv);
  const img = column(csv, header, o.imageColumn ?? 'image_id');
  const cls = column(csv, header, className);
  const base = resolve(dirname(csv), o.imageDir ?? 'images');
  const out = rows
    .map((r, i) => [r, i] as const)
    .filter(([r]) => Number(r[cls]) === 1)
    .map(([r, i]) => ({ path: resolveInside(base, `${r[img]!.trim()}${o.imageExt ?? '.jpg'}`, `${csv} row ${i + 2}: ${header[img]}`), listedAt: `${csv} row ${i + 2}` }));
  if (!out.length) throw new Error(`${csv}: no row has ${className} = 1`);
  return out;
}

/** Image paths from a CSV column (relative to `imageDir`, default the CSV's folder; `imageExt` appended). */
export async function readImageCsv(csv: string, o: { imageColumn?: string; imageDir?: string; imageExt?: string } = {}): Promise<string[]> {
  const refs = await readImageRefsCsv(csv, o);
  const missing = refs.find((r) => !existsSync(r.path));
  if (missing) throw new Error(`${missing.listedAt}: image ${missing.path} not found`);
  return refs.map((r) => r.path);
}

/** readImageCsv's images with the CSV row of each, missing files included (the trainers' image check lists them). */
export async function readImageRefsCsv(csv: string, o: { imageColumn?: string; imageDir?: string; imageExt?: string } = {}): Promise<ImageRef[]> {
  const { header, rows } = await readCsv(csv);
  const img = column(csv, header, o.imageColumn ?? 'file_name');
  const base = resolve(dirname(csv), o.imageDir ?? '.');
  const out = rows.map((r, i) => ({ path: resolveInside(base, `${r[img]!.trim()}${o.imageExt ?? ''}`, `${csv} row ${i + 2}: ${header[img]}`), listedAt: `${csv} row ${i + 2}` }));
  if (!out.length) throw new Error(`${csv} lists no images`);
  return out;
}
