// @foliar/data public API: what every foliar package reads data with (CSV, which files are images).
export { parseCsv, parseCsvRecords, readCsv, requireColumns, CsvError, type CsvTable, type CsvOptions } from './csv.js';
export { IMAGE_EXTENSIONS, isImageFile } from './images.js';
