/** @foliar/data: the one CSV parser (records and table views, strict errors naming file and line) and the one image-extension list. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseCsv, parseCsvRecords, CsvError, IMAGE_EXTENSIONS, isImageFile } from '@foliar/data';

test('parseCsvRecords: records with their start lines; quotes, CRLF/CR, BOM, blank lines', () => {
  const r = parseCsvRecords('\ufeffa,b\r\n"x, ""y""",2\n\n"two\nlines",4\r5,6', 'f.csv');
  assert.equal(r.records, [['a', 'b'], ['x, "y"', '2'], ['two\nlines', '4'], ['5', '6']]);
  assert.equal(r.lines, [1, 2, 4, 6]);
  const t = parseCsv(' a ,b\n1,2\n', { file: 't.csv' });
  assert.equal(t.header, ['a', 'b']);
  assert.equal(t.rows, [['1', '2']]);
});

test('strict errors name file and line', () => {
  const err = (text: string) => {
    try {
      parseCsvRecords(text, 'e.csv');
    } catch (e) {
      assert.instance(e, CsvError);
      return (e as Error).message;
    }
    return assert.unreachable('expected a CsvError') as never;
  };
  assert.match(err('a,b\n1,x"y\n'), /^e\.csv:2: quote inside an unquoted field/);
  assert.match(err('a,b\n"1"x,2\n'), /^e\.csv:2: unexpected character "x" after closing quote/);
  assert.match(err('a,b\n1,2\n3,"open\n\n'), /^e\.csv:3: unterminated quoted field/);
  assert.throws(() => parseCsv('a,b\n1,2,3\n', { file: 'w.csv' }), /w\.csv:2: expected 2 fields/);
  assert.equal(parseCsvRecords('', 'x.csv').records, []);
});

test('one image-extension list, webp included, any case, hidden files excluded', () => {
  assert.equal([...IMAGE_EXTENSIONS], ['.png', '.jpg', '.jpeg', '.webp']);
  for (const f of ['a.png', 'b.JPG', 'c.jpeg', 'd.webp', 'dir/e.WebP', 'C:\\x\\f.jpg']) assert.ok(isImageFile(f), f);
  for (const f of ['a.gif', 'b.txt', '.hidden.png', 'dir/._e.jpg', 'png']) assert.not.ok(isImageFile(f), f);
});

test.run();
