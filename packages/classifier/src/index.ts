// @foliar/classifier public API
export {};
