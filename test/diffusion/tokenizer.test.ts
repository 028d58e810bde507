import { suite } from '../harness.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CLIPTokenizer, cleanText, htmlUnescape, bytesToUnicode, checkTokenizerCase, loadCaseTokenizers, wordMerges, createTinyPipeline,
  type TokenizerCase, type CaseTokenizers,
} from '@foliar/diffusion';
import { shared, assertExact, skip } from '../helpers.js';

/**
 * CLIP BPE tokenizer: the golden cases (openai/CLIP and transformers ids for the real merges file and
 * the 1000-token tiny folders), hand-computed merges, added tokens, padding/truncation, folder formats,
 * and the 'openai' cleaning against strings produced by ftfy 6.3.1 + Python's html.unescape.
 */
const test = suite('CLIP tokenizer');

const golden = shared('golden', 'CLIP tokenizer golden cases');
const gz = golden ? join(golden, 'clip_tokenizer', 'bpe_simple_vocab_16e6.txt.gz') : '';
let full: CLIPTokenizer | null = null;
let tmp = '';

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'foliar-tok-'));
  if (golden) full = await CLIPTokenizer.fromMergesGz(gz);
});
test.after(() => rmSync(tmp, { recursive: true, force: true }));

async function rejects(fn: () => Promise<unknown>, re: RegExp): Promise<void> {
  let msg: string | null = null;
  try {
    await fn();
  } catch (e) {
    msg = (e as Error).message;
  }
  if (msg === null) throw new Error(`expected a rejection matching ${re}`);
  assert.match(msg, re);
}

// ---------------------------------------------------------------- golden cases

test('every golden case matches openai/CLIP and transformers (full + tiny vocabularies)', async () => {
  if (!golden) skip('../shared/golden not found', 'shared');
  const data = JSON.parse(readFileSync(join(golden, 'clip_tokenizer', 'clip_tokenizer_cases.json'), 'utf8')) as { cases: TokenizerCase[] };
  const toks: CaseTokenizers = await loadCaseTokenizers(golden);
  assert.ok(toks.full && toks.fullOpenai, 'full tokenizers loaded');
  assert.equal(Object.keys(toks.tiny ?? {}).sort(), ['tiny-sd-current', 'tiny-sd-v012']);
  const failures: string[] = [];
  let openaiOk = 0;
  let disagreeing = 0;
  for (const [i, c] of data.cases.entries()) {
    const r = checkTokenizerCase(toks, c);
    if (!r.ok) failures.push(`case ${i} ${JSON.stringify(c.prompt).slice(0, 50)}: ${r.detail.split('; ').filter((s) => !s.endsWith(' ok')).join('; ')}`);
    assert.not.match(r.detail, /skipped/, `case ${i} skipped a field: ${r.detail}`);
    if (r.detail.includes('openai_encode ok')) openaiOk++;
    if (c.agree_full === false) disagreeing++;
  }
  assert.equal(failures, [], failures.join('\n'));
  assert.ok(data.cases.length >= 30 && disagreeing >= 5, 'the file has its ~30 cases, some where cleaning differs');
  console.log(`  clip_tokenizer: ${data.cases.length} cases; openai encode matched ${openaiOk}/${data.cases.length} with 'openai' cleaning (${disagreeing} where cleaning differs)`);
});

test('checkTokenizerCase fails on a wrong id and skips what was not loaded', async () => {
  if (!golden) skip('../shared/golden not found', 'shared');
  const c: TokenizerCase = { prompt: 'a leaf', hf_input_ids_unpadded: [49406, 320, 7232, 49407], openai_encode: [320, 7232] };
  assert.ok(checkTokenizerCase({ full: full!, fullOpenai: full! }, c).ok);
  const bad = checkTokenizerCase({ full: full! }, { ...c, hf_input_ids_unpadded: [49406, 320, 7233, 49407] });
  assert.not.ok(bad.ok);
  assert.match(bad.detail, /hf_input_ids_unpadded FAIL \(first difference at 2: got 7232, want 7233/);
  assert.match(bad.detail, /openai_encode skipped/);
});

test('loading the gz vocabulary and tokenizing the cases is fast', async () => {
  if (!golden) skip('../shared/golden not found', 'shared');
  const data = JSON.parse(readFileSync(join(golden, 'clip_tokenizer', 'clip_tokenizer_cases.json'), 'utf8')) as { cases: TokenizerCase[] };
  const t0 = performance.now();
  const t = await CLIPTokenizer.fromMergesGz(gz);
  const load = performance.now() - t0;
  const t1 = performance.now();
  for (const c of data.cases) t.call(c.prompt);
  const run = performance.now() - t1;
  console.log(`  load ${load.toFixed(0)} ms, ${data.cases.length} prompts ${run.toFixed(1)} ms`);
  // loose bounds (shared CI machines); typical: load ~150 ms, prompts ~10 ms
  assert.ok(load < 1500, `load took ${load} ms`);
  assert.ok(run < 1000, `tokenizing took ${run} ms`);
});

// ---------------------------------------------------------------- vocabulary structure

test('byte alphabet: 256 distinct printable characters, printable ASCII kept', () => {
  const enc = bytesToUnicode();
  assert.is(new Set(enc).size, 256);
  for (const c of enc) assert.not.match(c, /[\s\p{C}]/u, `byte char ${JSON.stringify(c)} is printable`);
  for (let b = 33; b <= 126; b++) assert.is(enc[b], String.fromCharCode(b));
  assert.is(enc[32], '\u0120'); // space -> 'Ġ' (the 33rd moved byte after 0..31)
});

test('real vocabulary layout: sizes and special ids from the merges file', () => {
  if (!full) skip('the CLIP merges file in ../shared/golden not found', 'shared');
  assert.is(full.vocabSize, 49408);
  assert.is(full.bosTokenId, 49406);
  assert.is(full.eosTokenId, 49407);
  assert.is(full.padTokenId, 49407);
  assert.is(full.modelMaxLength, 77);
  // 'a' alone is the byte token 'a</w>': 256 + position of 'a' among the printable bytes (97 - 33)
  assertExact(full.encode('a'), [256 + 64]);
  assertExact(full.encode('!'), [256 + 0]);
});

test('hand-computed merges: lowest rank first, </w> on the last symbol', () => {
  const t = CLIPTokenizer.byteLevel(['l o', 'lo w</w>', 'e r</w>']);
  // ids: bytes 0..255, bytes+</w> 256..511, merges 512.., then sot, eot
  assert.is(t.vocabSize, 512 + 3 + 2);
  assert.is(t.bosTokenId, 515);
  const w = 119 - 33; // 'w' among the printable bytes
  assertExact(t.encode('lower'), [512, w, 514]); // l o -> lo; "lo w" is not a merge; e r</w> -> er</w>
  assertExact(t.encode('low'), [513]); // l o, then lo w</w>
  assertExact(t.encode('LOW lower'), [513, 512, w, 514]);
  assert.is(t.decode(t.encode('low lower')), 'low lower');
});

test('tiny folders: special tokens and max length from the json configs', async () => {
  if (!golden) skip('../shared/golden not found', 'shared');
  for (const d of ['tiny-sd-v012', 'tiny-sd-current']) {
    const t = await CLIPTokenizer.fromFolder(join(golden, d, 'tokenizer'));
    assert.is(t.vocabSize, 1000);
    assert.is(t.bosTokenId, 998);
    assert.is(t.eosTokenId, 999);
    assert.is(t.padTokenId, 999);
    assert.is(t.modelMaxLength, 77);
  }
});

// ---------------------------------------------------------------- call / decode

test('call: bos/eos, truncation keeping eos, padding, attention mask, batches', () => {
  if (!full) skip('the CLIP merges file in ../shared/golden not found', 'shared');
  const long = Array.from({ length: 100 }, (_, i) => `word${i}`).join(' ');
  const { inputIds, attentionMask } = full.call(['a leaf', long]);
  assertExact(inputIds[0]!.slice(0, 4), [49406, 320, 7232, 49407]);
  assertExact(inputIds[0]!.slice(4), new Array(73).fill(49407));
  assertExact(attentionMask[0]!, [1, 1, 1, 1, ...new Array(73).fill(0)]);
  assert.is(inputIds[1]!.length, 77);
  assert.is(inputIds[1]![76], 49407);
  assertExact(inputIds[1]!.slice(1, 76), full.encode(long).slice(0, 75));
  assert.ok(attentionMask[1]!.every((m) => m === 1));
  const unpadded = full.call('a leaf', { padding: false });
  assertExact(unpadded.inputIds[0]!, [49406, 320, 7232, 49407]);
  assert.is(full.call(long, { padding: false, truncation: false }).inputIds[0]!.length, full.encode(long).length + 2);
  const longest = full.call(['a', 'a leaf'], { padding: 'longest' });
  assertExact(longest.inputIds[0]!, [49406, 320, 49407, 49407]);
  assertExact(longest.attentionMask[0]!, [1, 1, 1, 0]);
  assertExact(full.call('a', { maxLength: 5, addSpecialTokens: false }).inputIds[0]!, [320, 49407, 49407, 49407, 49407]);
  assert.throws(() => full!.call('a', { maxLength: 1 }), /maxLength 1/);
});

test('openai-style padding with id 0 via padTokenId, "!" still an ordinary token', async () => {
  if (!golden) skip('../shared/golden not found', 'shared');
  const t = await CLIPTokenizer.fromMergesGz(gz, { padTokenId: 0 });
  assert.is(t.padTokenId, 0);
  assertExact(t.call('a leaf').inputIds[0]!, [49406, 320, 7232, 49407, ...new Array(73).fill(0)]);
  assertExact(t.encode('hi!!!'), full!.encode('hi!!!'));
  await rejects(() => CLIPTokenizer.fromMergesGz(gz, { padTokenId: 49408 }), /padTokenId 49408 is outside the vocabulary/);
});

test('decode: bytes back to UTF-8, </w> as spaces, special tokens optional', () => {
  if (!full) skip('the CLIP merges file in ../shared/golden not found', 'shared');
  for (const s of ['a photo of a leaf', 'café naïve résumé', 'emoji 🍃🌿 leaf', '日本語のテキスト', 'word 0 word 1 3 . 1 4']) {
    assert.is(full.decode(full.encode(s)), s);
  }
  const ids = full.call('a leaf', { padding: false }).inputIds[0]!;
  assert.is(full.decode(ids), '<|startoftext|> a leaf <|endoftext|>');
  assert.is(full.decode(ids, { skipSpecialTokens: true }), 'a leaf');
  assert.throws(() => full!.decode([49999]), /id 49999 is not in the vocabulary/);
});

// ---------------------------------------------------------------- added tokens

test('added tokens: appended ids, matched before BPE in the lower-cased text', async () => {
  if (!golden) skip('../shared/golden not found', 'shared');
  const t = await CLIPTokenizer.fromMergesGz(gz);
  const plain = t.encode('a photo of a <diseaes-leaf> leaf');
  assert.ok(plain.length > 6, 'without the added token the identifier is split by BPE');
  const [id] = t.addTokens(['<diseaes-leaf>']);
  assert.is(id, 49408);
  assert.is(t.vocabSize, 49409);
  assertExact(t.addTokens(['<diseaes-leaf>', 'sks2']), [49408, 49409]);
  // words from the golden ids of "a photo of a … leaf": a=320 photo=1125 of=539 leaf=7232
  assertExact(t.encode('a photo of a <diseaes-leaf> leaf'), [320, 1125, 539, 320, 49408, 7232]);
  assertExact(t.encode('A <DISEAES-LEAF>leaf'), [320, 49408, 7232]);
  assertExact(t.encode('x<diseaes-leaf>'), [...t.encode('x'), 49408]);
  assert.is(t.decode(t.encode('a <diseaes-leaf> leaf')), 'a <diseaes-leaf> leaf');
  // special added tokens are matched in the raw text only, case-sensitively
  const [sp] = t.addTokens(['<Rare>'], { special: true });
  assertExact(t.encode('a <Rare>'), [320, sp!]);
  assert.ok(!t.encode('a <rare>').includes(sp!));
  assert.equal(t.addedTokens, ['<diseaes-leaf>', 'sks2', '<Rare>']);
  assert.is(t.decode(t.encode('<Rare> a'), { skipSpecialTokens: true }), 'a');
});

test('special tokens in the text are split out raw; other spellings are BPE-encoded (transformers)', () => {
  if (!full) skip('the CLIP merges file in ../shared/golden not found', 'shared');
  assertExact(full.encode('<|startoftext|>a<|endoftext|>'), [49406, 320, 49407]);
  const upper = full.encode('<|ENDOFTEXT|>');
  assert.not.ok(upper.includes(49407), 'tokenizers does not match special tokens after normalisation');
});

// ---------------------------------------------------------------- folders and formats

test('save -> fromFolder round trip keeps vocab, merges, specials and added tokens', async () => {
  if (!golden) skip('../shared/golden not found', 'shared');
  const t = await CLIPTokenizer.fromFolder(join(golden, 'tiny-sd-v012', 'tokenizer'));
  t.addTokens(['<diseaes-leaf>']);
  const dir = join(tmp, 'saved');
  await t.save(dir);
  const back = await CLIPTokenizer.fromFolder(dir);
  assert.is(back.vocabSize, 1001);
  const p = 'A photo of a <diseaes-leaf> leaf, highly detailed 8k';
  assertExact(back.call(p).inputIds[0]!, t.call(p).inputIds[0]!);
  assert.is(back.tokenId('<diseaes-leaf>'), 1000);
  const vocab = JSON.parse(readFileSync(join(dir, 'vocab.json'), 'utf8')) as Record<string, number>;
  assert.is(Object.keys(vocab).length, 1000, 'added tokens go to added_tokens.json, not vocab.json');
});

test('tokenizer.json only (HF tokenizers format) gives the same ids as vocab.json + merges.txt', async () => {
  if (!golden) skip('../shared/golden not found', 'shared');
  const src = join(golden, 'tiny-sd-current', 'tokenizer');
  const dir = join(tmp, 'tokjson');
  mkdirSync(dir);
  copyFileSync(join(src, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  copyFileSync(join(src, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  const a = await CLIPTokenizer.fromFolder(dir);
  const b = await CLIPTokenizer.fromFolder(src);
  const c = CLIPTokenizer.fromVocabAndMerges(
    JSON.parse(readFileSync(join(src, 'vocab.json'), 'utf8')) as Record<string, number>,
    readFileSync(join(src, 'merges.txt'), 'utf8'),
  );
  for (const p of ['tomato leaf with early blight disease, yellow spots', "It's 3:45pm — café 🍃"]) {
    assertExact(a.call(p).inputIds[0]!, b.call(p).inputIds[0]!);
    assertExact(c.call(p).inputIds[0]!, b.call(p).inputIds[0]!);
  }
});

test('bad input: clear errors naming the file, line or token', async () => {
  const dir = join(tmp, 'bad');
  mkdirSync(dir);
  await rejects(() => CLIPTokenizer.fromFolder(dir), /neither vocab\.json \+ merges\.txt nor tokenizer\.json/);
  writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
  await rejects(() => CLIPTokenizer.fromFolder(dir), /tokenizer\.json: invalid JSON/);
  writeFileSync(join(dir, 'tokenizer.json'), '{"model": {"type": "WordPiece", "vocab": {}}}');
  await rejects(() => CLIPTokenizer.fromFolder(dir), /model\.type is "WordPiece"/);
  assert.throws(() => CLIPTokenizer.byteLevel(['a b', 'abc']), /merge 2 is not two space-separated symbols: "abc"/);
  assert.throws(() => CLIPTokenizer.fromVocabAndMerges({ a: 0 }, '#version: 0.2\n'), /bos token "<\|startoftext\|>" is not in the vocabulary/);
  await rejects(() => CLIPTokenizer.fromMergesGz(join(dir, 'nope.txt.gz')), /nope\.txt\.gz: cannot read gzip merges file/);
});

// ---------------------------------------------------------------- cleaning

test('transformers cleaning: NFC, Unicode White_Space, per-code-point lowercase', () => {
  assert.is(cleanText('E\u0301TÉ  \t\nX', 'transformers'), 'été x');
  assert.is(cleanText('ΣΑΣ', 'transformers'), 'σασ'); // Rust char::to_lowercase has no final-sigma rule
  assert.is(cleanText('ΣΑΣ', 'openai'), 'σας'); // Python str.lower() has it
  if (!full) skip('the CLIP merges file in ../shared/golden not found', 'shared');
  // U+0085 is White_Space (Rust/Python \s) though not JS \s; U+FEFF is the reverse
  assertExact(full.encode('a\u0085b'), full.encode('a b'));
  assertExact(full.encode('a\ufeffb'), [...full.encode('a'), ...full.encode('\ufeff'), ...full.encode('b')]);
  assert.ok(full.encode('\ufeff').length > 0);
});

// [input, ftfy.fix_text + html.unescape x2 + whitespace collapse + lower()] with ftfy 6.3.1, Python 3.11
const FTFY_REFERENCE: [string, string][] = [
  ['caf\u00c3\u00a9 it\u00e2\u20ac\u2122s', "caf\u00e9 it's"],
  ['na\u00efve caf\u00c3\u00a9', 'na\u00efve caf\u00e9'],
  ['\u00c2\u00a35 and \u00c3\u00bcber', '\u00a35 and \u00fcber'],
  ['\u00e2\u20ac\u0153quoted\u00e2\u20ac\u009d', '"quoted"'],
  ['\u00f0\u0178\u02dc\u20ac emoji mojibake', '\ud83d\ude00 emoji mojibake'],
  ['plain \u00c9\u2026 text', 'plain \u00e9\u2026 text'],
  ['\u00c9\u00c3\u00a9', '\u00e9\u00e9'],
  ['&amp;amp;amp;', '&'],
  ['&ampfoo &amp &lt3 &copy2024 &notit; &notin; &EACUTE; &Eacute; &#39; &#x27; &#128; &#0; &#xD800; &#99999999; &#1; &#65534;', "&foo & <3 \u00a92024 \u00acit; \u2209 \u00e9 \u00e9 ' ' \u20ac \ufffd \ufffd \ufffd"],
  ['<b>&amp;amp;</b>', '<b>&</b>'],
  ['\uff26\uff35\uff2c\uff2c \uff76\uff9e\uff77\uff9e\u3000space \uffe5', 'full \u30ac\u30ae space \u00a5'],
  ['\ufb01 \ufb02 \ufb03 \u0132 \u0149 \u01c5', "fi fl ffi ij 'n d\u017e"],
  ['\u2018a\u2019 \u201cb\u201d \u201ac\u201b \u201ed\u201f \u02bce', '\'a\' "b" \'c\' "d" \'e'],
  ['\u001b[36mblue\u001b[0m', 'blue'],
  ['ctrl\u0001\u0002\u007f\u206a\ufeff\ufff9x', 'ctrlx'],
  ['c1 \u0080 \u0085 \u009d \u0096', 'c1 \u20ac \u2026 \u009d \u2013'],
  ['e\u0301 NFC', '\u00e9 nfc'],
  ['\u03a3\u0391\u03a3 \u038c\u03a3\u039f\u03a3', '\u03c3\u03b1\u03c2 \u03cc\u03c3\u03bf\u03c2'],
  ['tab\u001cfs', 'tabfs'],
  ['\u0130stanbul', 'i\u0307stanbul'],
  ['&lang; &rang; &apos; &hellip;', "\u27e8 \u27e9 ' \u2026"],
  ['line\r\nbreak\u2028x', 'line break x'],
  ['&amp;amp;amp;lt; &amp;amp;amp;amp;amp;amp; x', '< & x'],
  ['&lt;b&gt; &amp;amp;amp;amp;amp;', '<b> &'],
];

test("'openai' cleaning matches ftfy 6.3.1 + html.unescape on the covered fixes", () => {
  for (const [input, want] of FTFY_REFERENCE) assert.is(cleanText(input, 'openai'), want, JSON.stringify(input));
});

test("htmlUnescape follows Python's html.unescape (HTML 4 names, numeric rules)", () => {
  // expected values from Python 3.11 html.unescape
  assert.is(htmlUnescape('&amp;lt; &ampx &notin; &notit; &#x41;&#66 &#150; &#0; &#xDFFF; &#11; &unknown; &'), '&lt; &x \u2209 \u00acit; AB \u2013 \ufffd \ufffd  &unknown; &');
  // an HTML5-only name is outside the covered set (Python gives "≂̸"): left as is, documented
  assert.is(htmlUnescape('&NotEqualTilde;'), '&NotEqualTilde;');
});

test('wordMerges: each listed word becomes one token, even where merges of other words compete; other words stay spelled out', async () => {
  // "cat" ranks "c a" before scab's "s c", so BPE splits "scab" as s|ca|b unless the builder chains those pieces
  const words = ['cat', 'scab', 'a photo of a rust leaf', 'us', 'used', 'rusty', 'multiple diseases'];
  const tok = CLIPTokenizer.byteLevel(wordMerges(words));
  for (const w of ['cat', 'scab', 'photo', 'rust', 'rusty', 'us', 'used', 'leaf', 'multiple', 'diseases', 'of']) {
    assert.equal(tok.encode(w).map((id) => tok.idToToken(id)), [`${w}</w>`], w);
  }
  assert.equal(tok.encode('A Photo of a RUST leaf').length, 6, 'cleaning lowercases before BPE');
  assert.ok(tok.encode('<diseaes-leaf>').length > 3, 'an identifier outside the list stays several tokens');
  assert.ok(tok.encode('sky').length === 3, 'an unlisted word is spelled byte by byte');
  // ids cover the vocabulary even where two merges spell the same token: an embedding of vocabSize rows fits every id
  const maxId = Math.max(...['cat', 'scab', 'sca', 'ca'].map((t) => tok.tokenId(`${t}`) ?? 0), tok.eosTokenId);
  assert.ok(tok.vocabSize > maxId, `vocabSize ${tok.vocabSize} > largest id ${maxId}`);
  // save → reload keeps the ids
  const dir = join(tmp, 'words');
  await tok.save(dir);
  const back = await CLIPTokenizer.fromFolder(dir);
  assert.equal(back.encode('a photo of a scab leaf'), tok.encode('a photo of a scab leaf'));
  assert.throws(() => wordMerges(['<diseaes-leaf>']), /not a plain word/);
  // a tiny pipeline built on the words: its text encoder's table covers the ids
  const pipe = createTinyPipeline({ words: ['rust', 'scab'], textEncoder: { max_position_embeddings: 16 } });
  try {
    assert.is(pipe.tokenizer.encode('rust scab').length, 2);
    assert.is(pipe.textEncoder.config.vocab_size, pipe.tokenizer.vocabSize);
  } finally {
    pipe.dispose();
  }
});

test.run();
