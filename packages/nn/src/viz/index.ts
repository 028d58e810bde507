// Deprecated: the pictures (rasters, PNG, bitmap font, grids, charts) moved to @foliar/report. This
// module re-exports them so that existing imports keep working; import from @foliar/report instead.
export * from '@foliar/report';
/**
 * @deprecated Use `RgbImage` (channels optional, absent = 3) or `Raster` (channels stated) from
 * @foliar/data. This is @foliar/data's `Raster` under @foliar/nn's old name (its `channels` is required).
 */
export type { Raster as RgbImage } from '@foliar/report';
