// @foliar/nn public API
export {};
