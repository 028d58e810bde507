/**
 * Scalar math shared by the CPU reference and mirrored in WGSL (`WGSL_PRELUDE`): functions WGSL lacks
 * (erf) or defines differently from PyTorch (pow of a negative base, tanh overflow).
 */

/** erf with |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit), computed in f64. */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}

/** PyTorch pow: a negative base with an integral exponent is defined. */
export function powf(a: number, b: number): number {
  return Math.pow(a, b);
}

export const WGSL_PRELUDE = /* wgsl */ `
fn f_erf(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}
fn f_pow(a: f32, b: f32) -> f32 {
  if (a >= 0.0) { if (a == 0.0 && b == 0.0) { return 1.0; } return pow(a, b); }
  let r = pow(-a, b);
  if (b != floor(b)) { var nanBits = 0x7fc00000u; return bitcast<f32>(nanBits); }
  return select(r, -r, (i32(b) & 1) == 1);
}
// NaN test on the bits: WGSL lets compilers assume floats are never NaN, so x != x may fold to false
fn f_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn f_tanh(x: f32) -> f32 { return tanh(clamp(x, -15.0, 15.0)); }
fn f_sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
`;
