// @foliar/diffusion public API
export {};
