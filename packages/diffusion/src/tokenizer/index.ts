export { CLIPTokenizer, parseMerges, type TokenizerOptions, type CallOptions, type Encoding, type AddedTokenSpec } from './clip-tokenizer.js';
export { cleanText, type Cleaning } from './clean.js';
export { htmlUnescape } from './html-entities.js';
export { ftfyLite } from './ftfy-lite.js';
export { bytesToUnicode } from './bytes.js';
export { checkTokenizerCase, loadCaseTokenizers, type TokenizerCase, type CaseTokenizers, type CaseCheck } from './golden-check.js';
export { wordMerges } from './word-merges.js';
