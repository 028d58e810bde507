// The procedural leaves draw from @foliar/data's Rng on its mulberry32 core (`Rng.mulberry32(hashSeed(…))`),
// whose stream is frozen: the same seed renders the same bytes as before the move.
export { Rng, hashSeed, mix32 } from '@foliar/data';
