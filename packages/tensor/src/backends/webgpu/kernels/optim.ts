// optim kernels (WebGPU): registered with registerKernel('webgpu', …).
export {};
