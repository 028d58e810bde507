// The classifier's data pipeline draws from @foliar/data's Rng (`new Rng(seed, epoch, index)`: one
// sfc32 stream per key, so prefetching and exact resumption are deterministic); re-exported here.
export { Rng, hashKey } from '@foliar/data';
