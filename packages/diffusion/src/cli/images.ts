// Moved to ../images.ts (library code, not the CLI's); kept for importers not yet updated.
export { tensorToImages, saveGrid, NonFiniteImageError } from '../images.js';
