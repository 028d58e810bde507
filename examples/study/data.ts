/**
 * The study's images: the embedded procedural leaves (default) or a photograph folder in any
 * layout the classifier reads, deduplicated by decoded pixels before anything is split.
 */
import { LEAF_CLASSES, PP2020_COUNTS, protocolSplit, folderSource, syntheticSource, dedupeByContent, type ImageSource, type LabeledImageSet, type LabeledItem, type RgbImage, type DedupResult, type ProtocolSplit } from '@foliar/classifier';
import type { StudyProfile } from './profiles.js';

export interface StudyData {
  source: ImageSource;
  /** Deduplicated set the splits are drawn from. */
  set: LabeledImageSet;
  dedup: DedupResult;
  /** The classifier's `data` setting for this source (null: the procedural leaves). */
  classifierData: string | null;
  /** For the procedural leaves: the rendered pool's counts (the classifier renders the same pool). */
  poolCounts: Record<string, number> | null;
  describe: string;
}

/** Procedural pool: every class gets its training count plus validation and test images. */
function proceduralPool(p: StudyProfile): Record<string, number> {
  const train = p.trainCounts ?? PP2020_COUNTS;
  return Object.fromEntries(LEAF_CLASSES.map((c) => [c, (train[c] ?? 0) + p.valPerClass + p.testPerClass]));
}

export async function loadStudyData(p: StudyProfile, dataDir: string | null): Promise<StudyData> {
  let source: ImageSource;
  let poolCounts: Record<string, number> | null = null;
  if (dataDir) source = await folderSource(dataDir, p.imageSize);
  else {
    poolCounts = proceduralPool(p);
    source = syntheticSource(poolCounts, p.imageSize, 0);
  }
  // photographs: the file's own decoded pixels (re-encoded copies still match); procedural leaves:
  // the rendered image
  const dedup = dataDir
    ? await dedupeByContent(source.set)
    : await dedupeByContent(source.set, async (it) => (await source.open([it]).get(0)).image);
  const c = dedup.counts;
  const describe = `${source.set.source}: ${c.images} images, ${c.duplicateGroups} duplicate groups (${c.conflictingGroups} with conflicting labels), ${c.removed} removed → ${c.unique} kept`;
  return { source, set: dedup.set, dedup, classifierData: dataDir, poolCounts, describe };
}

/** Decoded images of `items` at the study's size (RGB, HWC). */
export async function imagesOf(data: StudyData, items: LabeledItem[]): Promise<RgbImage[]> {
  const ds = data.source.open(items);
  const out: RgbImage[] = [];
  for (let i = 0; i < ds.length; i++) out.push((await ds.get(i)).image);
  return out;
}

/** Items of one class in a set. */
export function itemsOf(set: LabeledImageSet, className: string): LabeledItem[] {
  const label = set.classNames.indexOf(className);
  if (label < 0) throw new Error(`class "${className}" is not in the data (classes: ${set.classNames.join(', ')})`);
  return set.items.filter((it) => it.label === label);
}

/** One stratified train/val/test split per seed, at the profile's sizes. */
export function studySplits(p: StudyProfile, set: LabeledImageSet): ProtocolSplit[] {
  return p.seeds.map((seed) => studySplit(p, set, seed));
}

/** One seed's split (it depends on no other seed): what a queued job rebuilds from the data dir. */
export function studySplit(p: StudyProfile, set: LabeledImageSet, seed: number): ProtocolSplit {
  return protocolSplit(set, { seed, trainCounts: p.trainCounts ?? { ...PP2020_COUNTS }, valPerClass: p.valPerClass, testPerClass: p.testPerClass });
}

/** The generator's prompt for a class (the study's, the gates' and the drift's; a queued job uses the same). */
export function classPromptOf(className: string): string {
  return `a photo of a ${className.replace(/_/g, ' ')} leaf`;
}
