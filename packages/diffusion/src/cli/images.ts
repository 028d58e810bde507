// Moved to ../images.ts (library code, not the CLI's) and ./grid-file.ts (the PNG grid file, Node);
// kept for importers not yet updated.
export { tensorToImages, NonFiniteImageError } from '../images.js';
export { saveGrid } from './grid-file.js';
