// @foliar/tensor public API
export {};
