// pool kernels (CPU reference): registered with registerKernel('cpu', …).
export {};
