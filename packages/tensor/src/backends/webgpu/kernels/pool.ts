// pool kernels (WebGPU): registered with registerKernel('webgpu', …).
export {};
