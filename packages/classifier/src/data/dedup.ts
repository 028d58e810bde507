// Exact-duplicate removal by decoded pixel content. A split is only leak-free if no image sits in
// both training and test data under two ids; Plant Pathology 2020 has such copies, some of them
// with different labels. Hashing decoded pixels (not file bytes) also catches re-encodings.
import { createHash } from 'node:crypto';
import type { LabeledImageSet, LabeledItem } from './layouts.js';
import { decodeImage } from './decode.js';

/** Decoded pixels of one item, as `dedupeByContent` hashes them. */
export interface ItemPixels {
  width: number;
  height: number;
  /** Interleaved 8-bit RGB, row-major. */
  data: Uint8Array;
}

export interface DuplicateGroup {
  /** sha256 (hex) of width, height and pixels. */
  hash: string;
  /** Ids of the identical images, sorted. */
  ids: string[];
  /** Label of each id (aligned with `ids`). */
  labels: number[];
  /** The copies carry different labels, so every one of them was removed. */
  conflicting: boolean;
}

export interface DedupResult {
  /** The input set without the removed items (order kept). */
  set: LabeledImageSet;
  /** Groups of more than one identical image. */
  groups: DuplicateGroup[];
  /** Removed items, sorted by id. */
  removed: { id: string; reason: 'duplicate' | 'conflicting-labels' }[];
  counts: { images: number; unique: number; duplicateGroups: number; conflictingGroups: number; removed: number };
}

/**
 * Decoded RGB pixels of a file item (sharp, alpha dropped, as training decodes them but at the
 * file's own size). Errors name the item and its file.
 */
export async function decodedPixels(item: LabeledItem): Promise<ItemPixels> {
  try {
    const img = await decodeImage(item.path);
    return { width: img.width, height: img.height, data: img.data };
  } catch (e) {
    // decodeImage's error already names the file; add the item it belongs to
    throw new Error(`dedupe: item "${item.id}": ${e instanceof Error ? e.message : String(e)}`);
  }
}

function pixelHash(p: ItemPixels): string {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(p.width, 0);
  head.writeUInt32LE(p.height, 4);
  return createHash('sha256').update(head).update(p.data).digest('hex');
}

// sharp decodes on its own thread pool; a few in flight keeps it busy without holding many
// full-size photographs in memory at once
const CONCURRENCY = 4;

/**
 * Find images with identical decoded pixels. In a group whose labels all agree the first item by
 * id is kept and the others are dropped; a group with disagreeing labels is dropped entirely (no
 * one knows which label is right). `pixels` decodes an item (default: `decodedPixels`, for files).
 */
export async function dedupeByContent(
  set: LabeledImageSet,
  pixels: (item: LabeledItem) => Promise<ItemPixels> = decodedPixels,
): Promise<DedupResult> {
  const ids = new Set<string>();
  for (const it of set.items) {
    if (ids.has(it.id)) throw new Error(`dedupe: ${set.source} has the id "${it.id}" twice (ids must be unique)`);
    ids.add(it.id);
  }
  const hashes = new Array<string>(set.items.length);
  let next = 0;
  const worker = async () => {
    while (next < set.items.length) {
      const i = next++;
      hashes[i] = pixelHash(await pixels(set.items[i]!));
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, set.items.length) }, worker));

  const byHash = new Map<string, number[]>();
  hashes.forEach((h, i) => {
    const g = byHash.get(h);
    if (g) g.push(i);
    else byHash.set(h, [i]);
  });
  const byId = (a: number, b: number) => {
    const x = set.items[a]!.id, y = set.items[b]!.id;
    return x < y ? -1 : x > y ? 1 : 0;
  };
  const groups: DuplicateGroup[] = [];
  const removed: DedupResult['removed'] = [];
  const drop = new Set<number>();
  for (const [hash, members] of byHash) {
    if (members.length < 2) continue;
    members.sort(byId);
    const labels = members.map((i) => set.items[i]!.label);
    const conflicting = labels.some((l) => l !== labels[0]);
    groups.push({ hash, ids: members.map((i) => set.items[i]!.id), labels, conflicting });
    for (const i of conflicting ? members : members.slice(1)) {
      drop.add(i);
      removed.push({ id: set.items[i]!.id, reason: conflicting ? 'conflicting-labels' : 'duplicate' });
    }
  }
  groups.sort((a, b) => (a.ids[0]! < b.ids[0]! ? -1 : 1));
  removed.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return {
    set: { ...set, items: set.items.filter((_, i) => !drop.has(i)), source: `${set.source}#dedup` },
    groups,
    removed,
    counts: {
      images: set.items.length,
      unique: byHash.size,
      duplicateGroups: groups.length,
      conflictingGroups: groups.filter((g) => g.conflicting).length,
      removed: removed.length,
    },
  };
}
