import { test, skip } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import * as D from '../../packages/classifier/src/data/index.js';
import { prepareData, resolveConfig, parseExtraTrain } from '../../packages/classifier/src/train/index.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const shared = process.env.FOLIAR_SHARED ?? resolve(repoRoot, '..', 'shared');
const leaves = join(shared, 'data', 'leaves');
const haveLeaves = existsSync(join(leaves, 'train.csv'));
if (!haveLeaves && process.env.FOLIAR_REQUIRE_SHARED) throw new Error(`leaves dataset not found at ${leaves} and FOLIAR_REQUIRE_SHARED is set`);
if (!haveLeaves) console.warn('SKIP leaves-dataset tests: ../shared not found');

const tmp = mkdtempSync(join(tmpdir(), 'foliar-data-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
let dirCount = 0;
const newDir = () => { const d = join(tmp, `d${dirCount++}`); mkdirSync(d, { recursive: true }); return d; };

/** Solid-colour JPEG/PNG written with sharp. */
async function writeImage(path: string, w = 8, h = 8, rgb: [number, number, number] = [200, 100, 50], format: 'jpeg' | 'png' = 'jpeg') {
  mkdirSync(dirname(path), { recursive: true });
  const img = sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });
  writeFileSync(path, await (format === 'jpeg' ? img.jpeg() : img.png()).toBuffer());
}

/** uvu has no assert.rejects: await the promise and check its error message. */
async function rejects(fn: () => Promise<unknown>, want: RegExp | ((e: Error) => boolean)) {
  const err = await fn().then(() => null, (e: Error) => e);
  assert.ok(err, `expected a rejection matching ${want}`);
  if (want instanceof RegExp) assert.match(err!.message, want);
  else assert.ok(want(err!), `unexpected error: ${err!.message}`);
}

const rgb = (w: number, h: number, f: (x: number, y: number, c: number) => number): D.RgbImage => {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = f(x, y, c);
  return { width: w, height: h, data };
};

// ---------------- CSV ----------------

test('csv: quotes, escaped quotes, embedded newlines, CRLF, BOM, blank lines', () => {
  const text = '\uFEFFa,b,c\r\n1,"x, y","say ""hi"""\r\n\r\n2,"multi\r\nline",\n3,,""\n';
  const t = D.parseCsv(text, { file: 'f.csv' });
  assert.equal(t.header, ['a', 'b', 'c']);
  assert.equal(t.rows, [['1', 'x, y', 'say "hi"'], ['2', 'multi\r\nline', ''], ['3', '', '']]);
  assert.equal(t.lines, [2, 4, 6]);
  const noTrail = D.parseCsv('h\nv');
  assert.equal(noTrail.rows, [['v']]);
  const cr = D.parseCsv('a,b\r1,2\r');
  assert.equal(cr.rows, [['1', '2']]);
});

test('csv: errors name file and line', () => {
  assert.throws(() => D.parseCsv('a,b\n1,"two\nlines",3\n', { file: 'w.csv' }), /w\.csv:2: expected 2 fields/);
  assert.throws(() => D.parseCsv('a,b\n1,2\n3,"open\n\n', { file: 'q.csv' }), /q\.csv:3: unterminated quoted field/);
  assert.throws(() => D.parseCsv('a,b\n1,x"y\n', { file: 'z.csv' }), /z\.csv:2: quote inside an unquoted field/);
  assert.throws(() => D.parseCsv('a,b\n"1"x,2\n', { file: 'z.csv' }), /z\.csv:2: unexpected character "x" after closing quote/);
  assert.throws(() => D.parseCsv('\n\n', { file: 'e.csv' }), /e\.csv:1: empty CSV/);
  const t = D.parseCsv('\n\nid,x\n1,2\n', { file: 'm.csv' });
  assert.throws(() => D.requireColumns(t, ['id', 'y', 'z']), /m\.csv:3: missing columns "y", "z"; columns found: "id", "x"/);
});

// ---------------- layouts ----------------

test('readPlantPathology2020 on the shared leaves dataset matches labels_fgvc8.csv', async () => {
  if (!haveLeaves) skip('the leaves dataset (../shared/data/leaves) not found', 'shared');
  const set = await D.readPlantPathology2020(leaves);
  assert.equal(set.classNames, ['healthy', 'multiple_diseases', 'rust', 'scab']);
  // Independent truth for the counts: train.csv's one-hot rows, parsed naively here (the shared copy
  // changes, e.g. when conflicting duplicates were removed, so no number is hard-coded)
  const rows = readFileSync(join(leaves, 'train.csv'), 'utf8').trim().split(/\r?\n/).slice(1).map((l) => l.split(','));
  assert.is(set.items.length, rows.length);
  assert.equal(D.classCounts(set), [1, 2, 3, 4].map((c) => rows.filter((r) => r[c] === '1').length));
  // Independent truth: the 2020 class recorded in the other CSV, parsed naively here.
  const lines = readFileSync(join(leaves, 'labels_fgvc8.csv'), 'utf8').trim().split(/\r?\n/);
  const cols = lines[0].split(',');
  const truth = new Map(lines.slice(1).map((l) => { const f = l.split(','); return [f[cols.indexOf('image_id')], f[cols.indexOf('pp2020_class')]]; }));
  for (const it of set.items) {
    assert.is(set.classNames[it.label], truth.get(it.id), it.id);
    assert.is(it.path, join(leaves, 'images', `${it.id}.jpg`));
  }
  const auto = await D.readDataset(leaves);
  assert.is(auto.items.length, rows.length);
  assert.ok(auto.source.startsWith('plant-pathology-2020:'));
});

test('readPlantPathology2020: missing column, bad one-hot rows, missing images', async () => {
  const d = newDir();
  await writeImage(join(d, 'images', 'a.jpg'));
  await writeImage(join(d, 'images', 'b.jpg'));
  writeFileSync(join(d, 'train.csv'), 'image_id,healthy,multiple_diseases,scab\na,1,0,0\n');
  await rejects(() => D.readPlantPathology2020(d), /missing column "rust"; columns found: "image_id", "healthy", "multiple_diseases", "scab"/);
  writeFileSync(join(d, 'train.csv'), 'image_id,healthy,multiple_diseases,rust,scab\na,1,0,0,0\nb,0,1,1,0\n');
  await rejects(() => D.readPlantPathology2020(d), /train\.csv:3: expected exactly one 1 .* found 2 \(image_id "b"\)/);
  writeFileSync(join(d, 'train.csv'), 'image_id,healthy,multiple_diseases,rust,scab\na,1,0,0,0\nb,0,0,0,0\n');
  await rejects(() => D.readPlantPathology2020(d), /train\.csv:3: expected exactly one 1 .* found 0/);
  writeFileSync(join(d, 'train.csv'), 'image_id,healthy,multiple_diseases,rust,scab\na,1,0,0,0\nb,0,yes,0,0\n');
  await rejects(() => D.readPlantPathology2020(d), /train\.csv:3: column "multiple_diseases" must be 0 or 1, found "yes"/);
  const rows = ['a', 'b', ...Array.from({ length: 7 }, (_, i) => `gone${i}`)].map((id, i) => `${id},0,0,${i % 2},${1 - (i % 2)}`);
  writeFileSync(join(d, 'train.csv'), `image_id,healthy,multiple_diseases,rust,scab\n${rows.join('\n')}\n`);
  const err = await D.readPlantPathology2020(d).then(() => null, (e: Error) => e);
  assert.ok(err, 'expected missing-file error');
  assert.match(err!.message, /7 of 9 image files are missing/);
  assert.match(err!.message, /gone0\.jpg/);
  assert.match(err!.message, /and 2 more/);
  assert.not.match(err!.message, /gone6/);
  const ok = await D.readPlantPathology2020(d, { skipFileCheck: true });
  assert.equal(ok.items.slice(0, 2).map((i) => [i.id, i.label]), [['a', 3], ['b', 2]]);
});

test('readPlantPathology2021 on a temp dir: combined labels, union of classes, multi-hot view', async () => {
  const d = newDir();
  const files = ['p.jpg', 'q.jpg', 'r.jpg', 's.jpg', 't.jpg'];
  for (const f of files) await writeImage(join(d, 'train_images', f));
  writeFileSync(join(d, 'train.csv'), 'image,labels\r\np.jpg,healthy\r\nq.jpg,scab frog_eye_leaf_spot complex\r\nr.jpg,rust\r\ns.jpg,complex scab  frog_eye_leaf_spot\r\nt.jpg,scab\r\n');
  const set = await D.readDataset(d);
  assert.ok(set.source.startsWith('plant-pathology-2021:'));
  assert.equal(set.classNames, ['healthy', 'rust', 'scab', 'scab frog_eye_leaf_spot complex']);
  assert.equal(set.items.map((i) => set.classNames[i.label]), ['healthy', 'scab frog_eye_leaf_spot complex', 'rust', 'scab frog_eye_leaf_spot complex', 'scab']);
  assert.equal(set.labelNames, ['complex', 'frog_eye_leaf_spot', 'healthy', 'rust', 'scab']);
  assert.equal(set.items[1].labels, [0, 1, 4]);
  assert.equal(set.items[3].labels, [0, 1, 4]);
  assert.is(set.items[0].id, 'p');
  assert.is(set.items[0].path, join(d, 'train_images', 'p.jpg'));
  writeFileSync(join(d, 'train.csv'), 'image,label\np.jpg,healthy\n');
  await rejects(() => D.readPlantPathology2021(d), /missing column "labels"; columns found: "image", "label"/);
  await rejects(() => D.readDataset(d), /unrecognised CSV header/);
  writeFileSync(join(d, 'train.csv'), 'image,labels\np.jpg,healthy\nq.jpg,\n');
  await rejects(() => D.readPlantPathology2021(d), /train\.csv:3: empty labels/);
});

test('readImageFolder on a temp dir (sorted classes, png+jpg, ignores other files)', async () => {
  const d = newDir();
  await writeImage(join(d, 'rust', 'b.JPG'));
  await writeImage(join(d, 'rust', 'a.png'), 8, 8, [1, 2, 3], 'png');
  await writeImage(join(d, 'healthy', 'c.jpeg'));
  writeFileSync(join(d, 'healthy', 'notes.txt'), 'x');
  writeFileSync(join(d, 'README.md'), 'x');
  const set = await D.readDataset(d);
  assert.equal(set.classNames, ['healthy', 'rust']);
  assert.equal(set.items.map((i) => [i.id, i.label]), [['healthy/c', 0], ['rust/a', 1], ['rust/b', 1]]);
  mkdirSync(join(d, 'scab'));
  await rejects(() => D.readImageFolder(d), /class folder "scab" has no/);
  await rejects(() => D.readImageFolder(newDir()), /no class subfolders/);
});

// ---------------- decode ----------------

test('decode: cover (shorter side + center crop) and stretch resize', async () => {
  const d = newDir();
  // 40x20: left quarter red, middle half green, right quarter blue.
  const raw = rgb(40, 20, (x, _y, c) => (x < 10 ? [255, 0, 0] : x < 30 ? [0, 255, 0] : [0, 0, 255])[c]);
  const file = join(d, 'bands.png');
  writeFileSync(file, await sharp(Buffer.from(raw.data), { raw: { width: 40, height: 20, channels: 3 } }).png().toBuffer());
  const full = await D.decodeImage(file);
  assert.is(full.width, 40);
  assert.equal([...full.data], [...raw.data]); // lossless PNG round trip
  const cover = await D.decodeImage(file, { size: 10 });
  assert.equal([cover.width, cover.height], [10, 10]);
  // the center crop of the 20x20-equivalent window is all green
  for (let p = 0; p < 100; p++) assert.ok(cover.data[p * 3 + 1] > 240 && cover.data[p * 3] < 15 && cover.data[p * 3 + 2] < 15, `pixel ${p}`);
  const stretch = await D.decodeImage(file, { size: [8, 4], mode: 'stretch' });
  assert.equal([stretch.width, stretch.height], [8, 4]);
  assert.ok(stretch.data[0] > 240, 'left edge red');
  assert.ok(stretch.data[(7) * 3 + 2] > 240, 'right edge blue');
  // greyscale + alpha input still gives RGB
  const ga = join(d, 'ga.png');
  writeFileSync(ga, await sharp({ create: { width: 3, height: 2, channels: 4, background: { r: 9, g: 9, b: 9, alpha: 0.5 } } }).greyscale().png().toBuffer());
  const g = await D.decodeImage(ga);
  assert.is(g.data.length, 3 * 2 * 3);
});

test('decode: truncated JPEG and garbage give an error naming the file', async () => {
  const d = newDir();
  const good = join(d, 'good.jpg');
  await writeImage(good, 64, 64);
  const bytes = readFileSync(good);
  const bad = join(d, 'truncated.jpg');
  writeFileSync(bad, bytes.subarray(0, Math.floor(bytes.length / 2)));
  await rejects(() => D.decodeImage(bad), (e: Error) => e instanceof D.ImageDecodeError && e.message.includes(bad));
  writeFileSync(join(d, 'junk.jpg'), 'not an image');
  await rejects(() => D.decodeImage(join(d, 'junk.jpg')), /cannot decode image .*junk\.jpg/);
  await rejects(() => D.decodeImage(new Uint8Array(bytes.subarray(0, 100)), { name: 'buf#3' }), /cannot decode image buf#3/);
});

// ---------------- transforms ----------------

test('normalizeToChw: CHW layout and (x/255 - mean)/std', () => {
  const img = rgb(2, 1, (x, _y, c) => [[255, 0, 128], [0, 51, 255]][x][c]);
  const out = D.normalizeToChw(img);
  const m = D.IMAGENET_MEAN, s = D.IMAGENET_STD;
  const want = [(1 - m[0]) / s[0], (0 - m[0]) / s[0], (0 - m[1]) / s[1], (0.2 - m[1]) / s[1], (128 / 255 - m[2]) / s[2], (1 - m[2]) / s[2]];
  want.forEach((v, i) => assert.ok(Math.abs(out[i] - v) < 1e-5, `${i}: ${out[i]} vs ${v}`));
  const buf = new Float32Array(10).fill(7);
  D.normalizeToChw(img, buf, 2, { mean: [0, 0, 0], std: [1, 1, 1] });
  assert.equal([...buf].map((v) => Math.round(v * 255)), [1785, 1785, 255, 0, 0, 51, 128, 255, 1785, 1785]);
});

test('flips and 90° rotations move pixels as expected', () => {
  // 3 wide, 2 high; value encodes (x, y)
  const img = rgb(3, 2, (x, y, c) => 10 * y + x + 100 * c);
  const at = (im: D.RgbImage, x: number, y: number) => im.data[(y * im.width + x) * 3];
  const h = D.horizontalFlip(img);
  assert.is(at(h, 0, 0), 2);
  assert.is(at(h, 2, 1), 10);
  const v = D.verticalFlip(img);
  assert.is(at(v, 1, 0), 11);
  const r = D.rotate90(img, 1); // CCW: top-right corner moves to top-left
  assert.equal([r.width, r.height], [2, 3]);
  assert.is(at(r, 0, 0), 2);
  assert.is(at(r, 1, 0), 12);
  assert.is(at(r, 0, 2), 0);
  assert.equal(D.rotate90(img, -1).data, D.rotate90(img, 3).data);
  assert.equal(D.rotate90(D.rotate90(img, 2), 2).data, img.data);
  assert.equal(D.rotate90(r, 3).data, img.data);
  assert.equal(D.rotate90(img, 2).data, D.horizontalFlip(D.verticalFlip(img)).data);
  assert.equal(D.horizontalFlip(h).data, img.data);
});

test('rotate: 0° is identity, 90° equals rotate90 on a square image, corners get the fill', () => {
  const img = rgb(6, 6, (x, y, c) => (x * 37 + y * 11 + c * 5) % 256);
  assert.equal(D.rotate(img, 0).data, img.data);
  assert.equal(D.rotate(img, 90).data, D.rotate90(img, 1).data);
  assert.equal(D.rotate(img, -90).data, D.rotate90(img, 3).data);
  const white = rgb(9, 9, () => 255);
  const r = D.rotate(white, 45, [0, 0, 0]);
  assert.is(r.data[0], 0); // corner lies outside the rotated square
  assert.is(r.data[(4 * 9 + 4) * 3], 255); // center unchanged
});

test('resizeBilinear: identity, constants, antialiased 2x reduction (PIL bilinear weights)', () => {
  const img = rgb(5, 3, (x, y, c) => (x * 50 + y * 7 + c) % 256);
  assert.equal(D.resizeBilinear(img, 5, 3).data, img.data);
  const flat = D.resizeBilinear(rgb(13, 7, () => 77), 4, 9);
  assert.ok(flat.data.every((v) => v === 77));
  // Row [100,100,200,200] -> 2 px. Output 0 centered at 1.0 with support 2: taps x=0,1,2 with
  // triangle weights .75,.75,.25 (x=-1 is outside and dropped) -> (75+75+50)/1.75 = 114.29.
  const row = rgb(4, 1, (x) => (x < 2 ? 100 : 200));
  const out = D.resizeBilinear(row, 2, 1);
  assert.equal([out.data[0], out.data[3]], [114, 186]);
  assert.throws(() => D.resizeBilinear(img, 2, 2, { x: 3, y: 0, w: 3, h: 3 }), /outside 5x3/);
});

test('randomResizedCropBox follows torchvision: bounds, scale/ratio ranges, fallback, determinism', () => {
  for (let k = 0; k < 500; k++) {
    const rng = new D.Rng(7, k);
    const b = D.randomResizedCropBox(128, 96, rng, [0.2, 0.9], [0.75, 4 / 3]);
    assert.ok(b.x >= 0 && b.y >= 0 && b.x + b.w <= 128 && b.y + b.h <= 96, JSON.stringify(b));
    const frac = (b.w * b.h) / (128 * 96);
    if (b.w === 128 && b.h === 96) continue; // fallback (center crop of whole image) allowed
    assert.ok(frac > 0.2 - 0.02 && frac < 0.9 + 0.02, `area ${frac}`);
    const ar = b.w / b.h;
    assert.ok(ar > 0.75 * 0.9 && ar < (4 / 3) * 1.1, `ratio ${ar}`);
  }
  assert.equal(D.randomResizedCropBox(100, 100, new D.Rng(1), [2, 3]), { x: 0, y: 0, w: 100, h: 100 });
  assert.equal(D.randomResizedCropBox(200, 50, new D.Rng(1), [2, 3]), { x: 66, y: 0, w: 67, h: 50 }); // torchvision: h = 50, w = round(50 * 4/3)
  assert.equal(D.randomResizedCropBox(128, 128, new D.Rng(3, 4)), D.randomResizedCropBox(128, 128, new D.Rng(3, 4)));
  const out = D.randomResizedCrop(rgb(128, 96, () => 5), new D.Rng(2), { size: [32, 24] });
  assert.equal([out.width, out.height], [32, 24]);
});

test('colour adjustments: identity, brightness 0, saturation 0, hue rotation, seeded jitter', () => {
  const img = rgb(4, 4, (x, y, c) => (x * 60 + y * 20 + c * 40) % 256);
  assert.equal(D.adjustColor(img, { brightness: 1, contrast: 1, saturation: 1, hue: 0 }).data, img.data);
  assert.ok(D.adjustColor(img, { brightness: 0 }).data.every((v) => v === 0));
  const gray = D.adjustColor(img, { saturation: 0 });
  for (let p = 0; p < 16; p++) {
    const [r, g, b] = img.data.subarray(p * 3, p * 3 + 3);
    const want = Math.round(0.2989 * r + 0.587 * g + 0.114 * b);
    assert.ok(Math.abs(gray.data[p * 3] - want) <= 1 && gray.data[p * 3] === gray.data[p * 3 + 2], `pixel ${p}`);
  }
  const red = rgb(1, 1, (_x, _y, c) => (c === 0 ? 255 : 0));
  assert.equal([...D.adjustColor(red, { hue: 1 / 3 }).data], [0, 255, 0]);
  assert.equal([...D.adjustColor(red, { hue: 0.5 }).data], [0, 255, 255]);
  assert.equal([...D.adjustColor(red, { hue: -1 / 3 }).data], [0, 0, 255]);
  const contrast0 = D.adjustColor(img, { contrast: 0 });
  assert.ok(contrast0.data.every((v) => v === contrast0.data[0]), 'contrast 0 gives a flat image');
  const opts = { brightness: 0.3, contrast: 0.3, saturation: 0.3, hue: 0.1 };
  assert.equal(D.colorJitter(img, new D.Rng(9, 1), opts).data, D.colorJitter(img, new D.Rng(9, 1), opts).data);
  assert.not.equal(D.colorJitter(img, new D.Rng(9, 1), opts).data, D.colorJitter(img, new D.Rng(9, 2), opts).data);
});

test('trainTransform / evalTransform output sizes', () => {
  const img = rgb(40, 30, (x, y) => (x + y) % 256);
  const tr = D.trainTransform({ size: 16, verticalFlip: true, rotate90: true, rotationDegrees: 10, colorJitter: { brightness: 0.2, hue: 0.05 } });
  for (let k = 0; k < 20; k++) { const o = tr(img, new D.Rng(k)); assert.equal([o.width, o.height], [16, 16]); }
  const ev = D.evalTransform(16, 20)(img, new D.Rng(0));
  assert.equal([ev.width, ev.height], [16, 16]);
});

// ---------------- split / sampling ----------------

function fakeSet(counts: number[]): D.LabeledImageSet {
  const items: D.LabeledItem[] = [];
  counts.forEach((n, c) => { for (let i = 0; i < n; i++) items.push({ path: `/x/${c}_${i}.jpg`, id: `${c}_${i}`, label: c }); });
  // interleave so class order is not contiguous
  items.sort((a, b) => (a.id.split('_')[1] + a.id).localeCompare(b.id.split('_')[1] + b.id));
  return { classNames: counts.map((_, c) => `c${c}`), items, source: 'fake' };
}

test('stratifiedSplit: per-class fractions, disjoint and complete, deterministic by seed', () => {
  const set = fakeSet([100, 41, 7]);
  const s = D.stratifiedSplit(set, { train: 0.7, val: 0.15 }, 42);
  assert.equal(D.classCounts(s.val), [15, 6, 1]);
  assert.equal(D.classCounts(s.test), [15, 6, 1]);
  assert.equal(D.classCounts(s.train), [70, 29, 5]);
  const ids = [...s.train.items, ...s.val.items, ...s.test.items].map((i) => i.id).sort();
  assert.equal(ids, set.items.map((i) => i.id).sort());
  const again = D.stratifiedSplit(set, { train: 0.7, val: 0.15 }, 42);
  assert.equal(again.val.items.map((i) => i.id), s.val.items.map((i) => i.id));
  const other = D.stratifiedSplit(set, { train: 0.7, val: 0.15 }, 43);
  assert.not.equal(other.val.items.map((i) => i.id), s.val.items.map((i) => i.id));
  assert.throws(() => D.stratifiedSplit(set, { train: 0.7, val: 0.2, test: 0.2 }, 1), /sum to 1/);
});

test('subsampleByClass: exact counts, complement, errors', async () => {
  const set = fakeSet([10, 5, 8]);
  const { subset, rest } = D.subsampleByClass(set, { c0: 4, c2: 8 }, 3);
  assert.equal(D.classCounts(subset), [4, 0, 8]);
  assert.equal(D.classCounts(rest), [6, 5, 0]);
  assert.equal(D.subsampleByClass(set, [4, 0, 8], 3).subset.items, subset.items);
  assert.throws(() => D.subsampleByClass(set, { c1: 6 }, 3), /class "c1" has 5 items, fewer than the 6 asked/);
  assert.throws(() => D.subsampleByClass(set, { rust: 1 }, 3), /unknown class "rust"/);
  if (!haveLeaves) skip('the leaves dataset (../shared/data/leaves) not found', 'shared');
  const leavesSet = await D.readPlantPathology2020(leaves, { skipFileCheck: true });
  const kaggle = { healthy: 516, multiple_diseases: 91, rust: 622, scab: 592 };
  const a = D.subsampleByClass(leavesSet, kaggle, 2020);
  assert.equal(D.classCounts(a.subset), [516, 91, 622, 592]);
  const all = D.classCounts(leavesSet);
  assert.equal(D.classCounts(a.rest), [all[0]! - 516, all[1]! - 91, all[2]! - 622, all[3]! - 592]);
  assert.equal(D.subsampleByClass(leavesSet, kaggle, 2020).subset.items.map((i) => i.id), a.subset.items.map((i) => i.id));
});

test('classBalancedSampler: balanced in expectation, reproducible per epoch', () => {
  const labels = Array.from({ length: 200 }, (_, i) => (i < 180 ? 0 : 1));
  const sampler = D.classBalancedSampler(labels, { seed: 5, numSamples: 20000 });
  const e0 = sampler(0);
  const frac1 = e0.reduce((a, i) => a + labels[i], 0) / e0.length;
  assert.ok(Math.abs(frac1 - 0.5) < 0.02, `minority fraction ${frac1}`);
  assert.equal(sampler(0), e0);
  assert.not.equal(sampler(1), e0);
  const seen = new Set(e0);
  assert.ok(seen.size > 190, 'indices within a class are drawn uniformly');
});

test('classWeights: inverse and effective-number weights', () => {
  assert.equal(D.classWeights([1, 3], 'inverse'), [1.5, 0.5]);
  const eff = D.classWeights([1, 2], 'effective', 0.5); // raw 1 and 0.5/0.75 -> sum 5/3
  assert.ok(Math.abs(eff[0] - 1.2) < 1e-12 && Math.abs(eff[1] - 0.8) < 1e-12, String(eff));
  const near0 = D.classWeights([10, 1000], 'effective', 0);
  assert.equal(near0, [1, 1]);
  assert.equal(D.classWeights([5, 5, 5], 'inverse'), [1, 1, 1]);
  assert.equal(D.classWeights([2, 0], 'inverse'), [2, 0]);
});

// ---------------- loader ----------------

/** In-memory dataset: image of sample i is filled with i % 251; asynchronous with jittered delays. */
function memoryDataset(n: number, size = 4) {
  const stats = { active: 0, maxActive: 0, calls: 0 };
  const ds: D.ImageDataset = {
    length: n,
    async get(i: number) {
      stats.calls++;
      stats.active++;
      stats.maxActive = Math.max(stats.maxActive, stats.active);
      await new Promise((r) => setTimeout(r, (i * 7) % 5));
      stats.active--;
      return { image: rgb(size, size, () => i % 251), label: i % 3 };
    },
  };
  return { ds, stats };
}

async function collect(it: AsyncIterable<D.Batch>) { const out: D.Batch[] = []; for await (const b of it) out.push(b); return out; }
const identity: D.Normalization = { mean: [0, 0, 0], std: [1, 1, 1] };

test('DataLoader: every index once per epoch with prefetching, images/labels aligned, bounded concurrency', async () => {
  const { ds, stats } = memoryDataset(23);
  const loader = new D.DataLoader(ds, { batchSize: 4, imageSize: 4, seed: 11, prefetch: 3, concurrency: 3, normalization: identity });
  assert.is(loader.batchesPerEpoch(), 6);
  for (const epoch of [0, 1]) {
    const batches = await collect(loader.epoch(epoch));
    assert.equal(batches.map((b) => b.size), [4, 4, 4, 4, 4, 3]);
    assert.equal(batches.map((b) => b.batchIndex), [0, 1, 2, 3, 4, 5]);
    const all = batches.flatMap((b) => [...b.indices]);
    assert.equal([...all].sort((a, b) => a - b), Array.from({ length: 23 }, (_, i) => i));
    assert.equal(all, [...loader.order(epoch)]);
    for (const b of batches) {
      assert.is(b.images.length, b.size * 3 * 16);
      for (let k = 0; k < b.size; k++) {
        assert.is(b.labels[k], b.indices[k] % 3);
        assert.is(Math.round(b.images[k * 48 + 20] * 255), b.indices[k] % 251);
      }
    }
  }
  assert.ok(stats.maxActive > 1 && stats.maxActive <= 3, `max concurrent gets ${stats.maxActive}`);
  assert.not.equal([...loader.order(0)], [...loader.order(1)]);
});

test('DataLoader: order and augmentation reproducible from (seed, epoch); exact resume; dropLast', async () => {
  const { ds } = memoryDataset(19, 8);
  // A transform whose output depends on its RNG: brightness noise plus a random flip.
  const tf: D.ImageTransform = (img, rng) => D.adjustColor(rng.bernoulli(0.5) ? D.horizontalFlip(img) : img, { brightness: rng.uniform(0.5, 1) });
  const make = (prefetch: number, concurrency: number) => new D.DataLoader(ds, { batchSize: 5, imageSize: 8, seed: 3, transform: tf, prefetch, concurrency });
  const a = await collect(make(0, 1).epoch(2));
  const b = await collect(make(4, 6).epoch(2));
  assert.equal(a.map((x) => [...x.indices]), b.map((x) => [...x.indices]));
  a.forEach((x, i) => assert.equal(x.images, b[i].images, `batch ${i} images`));
  const resumed = await collect(make(2, 2).epoch(2, { fromBatch: 2 }));
  assert.equal(resumed.map((x) => x.batchIndex), [2, 3]);
  resumed.forEach((x, i) => { assert.equal(x.indices, a[i + 2].indices); assert.equal(x.images, a[i + 2].images); });
  const other = await collect(make(2, 2).epoch(3));
  assert.not.equal(other.map((x) => [...x.indices]), a.map((x) => [...x.indices]));
  const dropped = new D.DataLoader(ds, { batchSize: 5, imageSize: 8, dropLast: true });
  assert.equal((await collect(dropped.epoch(0))).map((x) => x.size), [5, 5, 5]);
  const ordered = new D.DataLoader(ds, { batchSize: 5, imageSize: 8, shuffle: false });
  assert.equal([...ordered.order(4)], Array.from({ length: 19 }, (_, i) => i));
});

test('DataLoader: sampler, cache, size mismatch error', async () => {
  const { ds, stats } = memoryDataset(10);
  const sampler = D.classBalancedSampler(Array.from({ length: 10 }, (_, i) => i % 3), { seed: 1, numSamples: 12 });
  const loader = new D.DataLoader(ds, { batchSize: 4, imageSize: 4, sampler, cache: true });
  const e0 = await collect(loader.epoch(0));
  assert.equal(e0.flatMap((b) => [...b.indices]), [...sampler(0)]);
  const calls = stats.calls;
  await collect(loader.epoch(0));
  assert.is(stats.calls, calls, 'second pass served from cache');
  const bad = new D.DataLoader(ds, { batchSize: 4, imageSize: 5 });
  await rejects(() => collect(bad.epoch(0)), /sample \d+ is 4x4 after transform, expected 5x5/);
});

test('ImageFileDataset + DataLoader on real leaves (decode at 32px, cached)', async () => {
  if (!haveLeaves) skip('the leaves dataset (../shared/data/leaves) not found', 'shared');
  const set = await D.readPlantPathology2020(leaves);
  const small = { ...set, items: set.items.slice(0, 12) };
  const ds = new D.ImageFileDataset(small, { size: 32, cache: true });
  const loader = new D.DataLoader(ds, { batchSize: 8, imageSize: 24, seed: 1, transform: D.trainTransform({ size: 24, colorJitter: { brightness: 0.2 } }) });
  const batches = await collect(loader.epoch(0));
  assert.equal(batches.map((b) => b.size), [8, 4]);
  assert.is(batches[0].images.length, 8 * 3 * 24 * 24);
  assert.ok(batches[0].images.every(Number.isFinite));
  const again = await collect(loader.epoch(0));
  assert.equal(again[1].images, batches[1].images);
  const labels = batches.flatMap((b) => [...b.labels]).sort();
  assert.equal(labels, batches.flatMap((b) => [...b.indices]).map((i) => small.items[i].label).sort());
});

// ---------------- extra training images ----------------

test('extraTrain: extra images join the training split only, labelled as their class; bad folders and classes are named', async () => {
  const d = newDir();
  for (let i = 0; i < 5; i++) await writeImage(join(d, `syn-${i}.png`), 12, 12, [250, 10 * i, 0], 'png');
  writeFileSync(join(d, 'seeds.jsonl'), '{}');
  const base = { data: null, counts: { healthy: 20, multiple_diseases: 6, rust: 20, scab: 20 }, imageSize: 16, batchSize: 4, valFraction: 0.2, testFraction: 0.2 };
  const plain = await prepareData(resolveConfig(base));
  const more = await prepareData(resolveConfig(base, { extraTrain: [{ className: 'multiple_diseases', dir: d, limit: 4 }] }));
  assert.equal(more.trainCounts, plain.trainCounts);
  assert.equal(more.extraCounts, [0, 4, 0, 0]);
  assert.is(more.trainLoader.dataset.length, plain.trainLoader.dataset.length + 4);
  assert.equal(more.val.items.map((i) => i.id), plain.val.items.map((i) => i.id));
  assert.equal(more.test.items.map((i) => i.id), plain.test.items.map((i) => i.id));
  assert.match(more.description, /\+ 4 extra multiple_diseases/);
  // the extra items come last, decoded at the training size with their class label
  const n = plain.trainLoader.dataset.length;
  const s = await more.trainLoader.dataset.get(n + 2);
  assert.is(s.label, 1);
  assert.is(s.image.width, 16);
  assert.ok(s.image.data[0]! > 200, 'the extra image is the one written (red)');
  assert.equal(parseExtraTrain('multiple_diseases=runs/syn:400'), { className: 'multiple_diseases', dir: 'runs/syn', limit: 400 });
  assert.equal(parseExtraTrain('rust=a=b'), { className: 'rust', dir: 'a=b' });
  assert.throws(() => parseExtraTrain('runs/syn'), /expected <class>=<folder>/);
  await rejects(() => prepareData(resolveConfig(base, { extraTrain: [{ className: 'mildew', dir: d }] })), /unknown class "mildew"/);
  await rejects(() => prepareData(resolveConfig(base, { extraTrain: [{ className: 'rust', dir: join(d, 'nope') }] })), /nope.*does not exist/);
  await rejects(() => prepareData(resolveConfig(base, { extraTrain: [{ className: 'rust', dir: newDir() }] })), /has no \.png\/\.jpg\/\.jpeg\/\.webp images/);
  assert.throws(() => resolveConfig(base, { extraTrain: [{ className: 'rust', dir: d, limit: 0 }] }), /extraTrain\[0\]\.limit/);
});

test.run();
