// Readers for the labelled image layouts the classifier trains on:
// Plant Pathology 2020 (FGVC7, one-hot CSV), Plant Pathology 2021 (FGVC8,
// space-separated label strings) and a plain one-folder-per-class tree.
import { readdir, stat, access } from 'node:fs/promises';
import { join, resolve, extname, basename } from 'node:path';
import { resolveInside } from '@foliar/tensor';
import { readCsv, requireColumns, CsvError, isImageFile, IMAGE_EXTENSIONS, type CsvTable } from '@foliar/data';

export interface LabeledItem {
  /** Absolute path of the image file. */
  path: string;
  /** Image id (file name without extension for the CSV layouts). */
  id: string;
  /** Single class index into `classNames`. */
  label: number;
  /** Multi-hot view: indices into `labelNames` of every individual label (2021 layout only). */
  labels?: number[];
  /** Where the item is listed, `<csv>:<line>` (the CSV layouts), for error messages. */
  listedAt?: string;
}

export interface LabeledImageSet {
  classNames: string[];
  items: LabeledItem[];
  /** Human-readable origin, e.g. `plant-pathology-2020:/data/leaves/train.csv`. */
  source: string;
  /** Individual label names that `item.labels` index (2021 layout only). */
  labelNames?: string[];
}

/** The Plant Pathology 2020 classes, in the column order of its train.csv. */
export const PLANT_PATHOLOGY_2020_CLASSES = ['healthy', 'multiple_diseases', 'rust', 'scab'] as const;


export interface ReaderOptions {
  /** Skip the up-front check that every image file exists (default false). */
  skipFileCheck?: boolean;
}

export interface PlantPathology2020Options extends ReaderOptions {
  /** CSV file name inside `dir` (default `train.csv`). */
  csv?: string;
  /** Image folder inside `dir` (default `images`). */
  imagesDir?: string;
}

/**
 * Plant Pathology 2020: `image_id,healthy,multiple_diseases,rust,scab`, one-hot rows,
 * images at `images/<image_id>.jpg`. Extra columns are ignored.
 */
export async function readPlantPathology2020(dir: string, options: PlantPathology2020Options = {}): Promise<LabeledImageSet> {
  const root = resolve(dir);
  const csvPath = join(root, options.csv ?? 'train.csv');
  const imagesDir = join(root, options.imagesDir ?? 'images');
  const table = await readCsv(csvPath);
  const [idCol, ...classCols] = requireColumns(table, ['image_id', ...PLANT_PATHOLOGY_2020_CLASSES]);
  const items: LabeledItem[] = [];
  const seen = new Map<string, number>();
  for (let r = 0; r < table.rows.length; r++) {
    const row = table.rows[r];
    const line = table.lines[r];
    const id = row[idCol].trim();
    if (id === '') throw new CsvError(csvPath, line, 'empty image_id');
    const prev = seen.get(id);
    if (prev !== undefined) throw new CsvError(csvPath, line, `duplicate image_id "${id}" (first on line ${prev})`);
    seen.set(id, line);
    let label = -1;
    let ones = 0;
    for (let c = 0; c < classCols.length; c++) {
      const v = row[classCols[c]].trim();
      const x = Number(v);
      if (v === '' || (x !== 0 && x !== 1)) {
        throw new CsvError(csvPath, line, `column "${PLANT_PATHOLOGY_2020_CLASSES[c]}" must be 0 or 1, found ${JSON.stringify(v)}`);
      }
      if (x === 1) { ones++; label = c; }
    }
    if (ones !== 1) {
      throw new CsvError(csvPath, line, `expected exactly one 1 among ${PLANT_PATHOLOGY_2020_CLASSES.join(',')}, found ${ones} (image_id "${id}")`);
    }
    items.push({ path: resolveInside(imagesDir, `${id}.jpg`, `${csvPath}:${line}: image_id`), id, label, listedAt: `${csvPath}:${line}` });
  }
  const set: LabeledImageSet = { classNames: [...PLANT_PATHOLOGY_2020_CLASSES], items, source: `plant-pathology-2020:${csvPath}` };
  if (!options.skipFileCheck) await checkFilesExist(set);
  return set;
}

export interface PlantPathology2021Options extends ReaderOptions {
  /** CSV file name inside `dir` (default `train.csv`). */
  csv?: string;
  /** Image folder inside `dir` (default: `train_images` if present, else `images`). */
  imagesDir?: string;
}

/**
 * Plant Pathology 2021: `image,labels`, where `image` is a file name (e.g. `800113bb65efe69e.jpg`)
 * and `labels` is a space-separated label string.
 *
 * As in the 2021 competition's single-label view, each distinct label *combination* is one class:
 * `"scab frog_eye_leaf_spot complex"` is its own class. Combinations are identified regardless of
 * token order, and a class is named by its first spelling in the file. `classNames` is the sorted
 * union of those names. The individual labels are kept as a multi-hot view: `item.labels` indexes
 * `labelNames` (the sorted union of single tokens), for multi-label training.
 */
export async function readPlantPathology2021(dir: string, options: PlantPathology2021Options = {}): Promise<LabeledImageSet> {
  const root = resolve(dir);
  const csvPath = join(root, options.csv ?? 'train.csv');
  const imagesDir = options.imagesDir !== undefined
    ? join(root, options.imagesDir)
    : (await isDirectory(join(root, 'train_images'))) ? join(root, 'train_images') : join(root, 'images');
  const table = await readCsv(csvPath);
  const [imageCol, labelsCol] = requireColumns(table, ['image', 'labels']);

  const nameOfKey = new Map<string, string>(); // canonical (sorted tokens) -> first spelling
  const tokenSet = new Set<string>();
  const parsed: { file: string; name: string; key: string; tokens: string[]; line: number }[] = [];
  const seen = new Map<string, number>();
  for (let r = 0; r < table.rows.length; r++) {
    const row = table.rows[r];
    const line = table.lines[r];
    const file = row[imageCol].trim();
    if (file === '') throw new CsvError(csvPath, line, 'empty image name');
    const prev = seen.get(file);
    if (prev !== undefined) throw new CsvError(csvPath, line, `duplicate image "${file}" (first on line ${prev})`);
    seen.set(file, line);
    const tokens = row[labelsCol].trim().split(/\s+/).filter((t) => t !== '');
    if (tokens.length === 0) throw new CsvError(csvPath, line, `empty labels for image "${file}"`);
    if (new Set(tokens).size !== tokens.length) throw new CsvError(csvPath, line, `repeated label in "${row[labelsCol]}"`);
    const key = [...tokens].sort().join(' ');
    const name = tokens.join(' ');
    if (!nameOfKey.has(key)) nameOfKey.set(key, name);
    for (const t of tokens) tokenSet.add(t);
    parsed.push({ file: resolveInside(imagesDir, file, `${csvPath}:${line}: image`), name, key, tokens, line });
  }
  const classNames = [...nameOfKey.values()].sort();
  const classIndex = new Map<string, number>();
  for (const [key, name] of nameOfKey) classIndex.set(key, classNames.indexOf(name));
  const labelNames = [...tokenSet].sort();
  const items: LabeledItem[] = parsed.map((p) => ({
    path: p.file,
    id: basename(p.file, extname(p.file)),
    label: classIndex.get(p.key)!,
    labels: p.tokens.map((t) => labelNames.indexOf(t)).sort((a, b) => a - b),
    listedAt: `${csvPath}:${p.line}`,
  }));
  const set: LabeledImageSet = { classNames, items, source: `plant-pathology-2021:${csvPath}`, labelNames };
  if (!options.skipFileCheck) await checkFilesExist(set);
  return set;
}

/**
 * One subfolder per class (names sorted, as torchvision's ImageFolder), images directly inside
 * (`IMAGE_EXTENSIONS` of @foliar/data: `.png`, `.jpg`, `.jpeg`, `.webp`, any case). Hidden entries are ignored; an empty class folder is an error.
 */
export async function readImageFolder(dir: string): Promise<LabeledImageSet> {
  const root = resolve(dir);
  if (!(await isDirectory(root))) throw new Error(`dataset folder ${root} ${(await exists(root)) ? 'is not a folder' : 'does not exist'}`);
  const entries = await readdir(root, { withFileTypes: true });
  const classNames = entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
  if (classNames.length === 0) throw new Error(`${root}: no class subfolders found (expected one folder per class)`);
  const items: LabeledItem[] = [];
  for (let c = 0; c < classNames.length; c++) {
    const classDir = join(root, classNames[c]);
    const files = (await readdir(classDir, { withFileTypes: true }))
      .filter((e) => e.isFile() && isImageFile(e.name))
      .map((e) => e.name)
      .sort();
    if (files.length === 0) throw new Error(`${classDir}: class folder "${classNames[c]}" has no ${IMAGE_EXTENSIONS.join('/')} images`);
    for (const f of files) items.push({ path: join(classDir, f), id: `${classNames[c]}/${basename(f, extname(f))}`, label: c });
  }
  return { classNames, items, source: `image-folder:${root}` };
}

export type DatasetLayout = 'plant-pathology-2020' | 'plant-pathology-2021' | 'image-folder';

/**
 * Detect the layout of `dir`: a `train.csv` (or `options.csv`) whose header has
 * `image_id` + the 2020 class columns → 2020; `image,labels` → 2021; otherwise class subfolders.
 */
export async function detectLayout(dir: string, options: { csv?: string } = {}): Promise<DatasetLayout> {
  const root = resolve(dir);
  if (!(await isDirectory(root))) throw new Error(`dataset folder ${root} ${(await exists(root)) ? 'is not a folder' : 'does not exist'}`);
  const csvPath = join(root, options.csv ?? 'train.csv');
  if (await exists(csvPath)) {
    const table: CsvTable = await readCsv(csvPath, { strictWidth: false });
    const h = new Set(table.header);
    if (h.has('image_id') && PLANT_PATHOLOGY_2020_CLASSES.every((c) => h.has(c))) return 'plant-pathology-2020';
    if (h.has('image') && h.has('labels')) return 'plant-pathology-2021';
    throw new Error(
      `${csvPath}: unrecognised CSV header (${table.header.join(',')}); expected ` +
        `"image_id,${PLANT_PATHOLOGY_2020_CLASSES.join(',')}" (Plant Pathology 2020) or "image,labels" (2021)`,
    );
  }
  if (options.csv !== undefined) throw new Error(`${csvPath}: CSV file not found`);
  return 'image-folder';
}

/** Read `dir` in whichever supported layout it has (see `detectLayout`). */
export async function readDataset(dir: string, options: { csv?: string } & ReaderOptions = {}): Promise<LabeledImageSet> {
  const layout = await detectLayout(dir, options);
  switch (layout) {
    case 'plant-pathology-2020': return readPlantPathology2020(dir, options);
    case 'plant-pathology-2021': return readPlantPathology2021(dir, options);
    case 'image-folder': return readImageFolder(dir);
  }
}

/** Throw one error listing the first few missing image files (and how many in all). */
export async function checkFilesExist(set: LabeledImageSet, show = 5): Promise<void> {
  const missing: string[] = [];
  const chunk = 256; // bounded parallelism: thousands of concurrent stats would exhaust file handles
  for (let i = 0; i < set.items.length; i += chunk) {
    const part = set.items.slice(i, i + chunk);
    const ok = await Promise.all(part.map((it) => exists(it.path)));
    ok.forEach((o, k) => { if (!o) missing.push(part[k].path); });
  }
  if (missing.length > 0) {
    const list = missing.slice(0, show).map((m) => `  ${m}`).join('\n');
    const more = missing.length > show ? `\n  … and ${missing.length - show} more` : '';
    throw new Error(`${set.source}: ${missing.length} of ${set.items.length} image files are missing:\n${list}${more}`);
  }
}

async function exists(p: string): Promise<boolean> {
  try { await access(p); return true; } catch { return false; }
}

async function isDirectory(p: string): Promise<boolean> {
  try { return (await stat(p)).isDirectory(); } catch { return false; }
}
