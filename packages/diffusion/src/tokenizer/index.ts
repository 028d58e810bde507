export { CLIPTokenizer, type TokenizerOptions, type CallOptions, type Encoding } from './clip-tokenizer.js';
export { cleanText, htmlUnescape, type Cleaning } from './clean.js';
export { bytesToUnicode } from './bytes.js';
