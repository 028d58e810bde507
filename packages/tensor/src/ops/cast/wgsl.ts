/**
 * WGSL for kernels that read an operand stored as float32 or float16 (issue 16): a read-only binding
 * plus a loader `<name>_at(i)` (element index → f32) or, for vec4 bindings, `<name>_at4(i)` (index of
 * a group of 4 elements → vec4<f32>). float16 is bound as packed u32 words (ops/cast/webgpu.ts: no
 * `enable f16`, so every adapter runs the same code) and unpacked with unpack2x16float; arithmetic
 * stays f32. A kernel's pipeline key must include the flag.
 */
export function readBinding(binding: number, name: string, f16: boolean): string {
  if (!f16) return `@group(0) @binding(${binding}) var<storage, read> ${name}: array<f32>;
fn ${name}_at(i: u32) -> f32 { return ${name}[i]; }`;
  return `@group(0) @binding(${binding}) var<storage, read> ${name}: array<u32>;
fn ${name}_at(i: u32) -> f32 { return unpack2x16float(${name}[i >> 1u])[i & 1u]; }`;
}

/** vec4 loads: element group i covers elements 4i..4i+3 (the operand's offset is a multiple of 4). */
export function readBindingVec4(binding: number, name: string, f16: boolean): string {
  if (!f16) return `@group(0) @binding(${binding}) var<storage, read> ${name}: array<vec4<f32>>;
fn ${name}_at4(i: u32) -> vec4<f32> { return ${name}[i]; }`;
  return `@group(0) @binding(${binding}) var<storage, read> ${name}: array<vec2<u32>>;
fn ${name}_at4(i: u32) -> vec4<f32> { let w = ${name}[i]; return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)); }`;
}

/** Pipeline-key suffix for a kernel's f16 operands. */
export function f16Key(...flags: boolean[]): string {
  return flags.some(Boolean) ? `:h${flags.map((f) => (f ? 1 : 0)).join('')}` : '';
}
