import { erf, powf } from '../scalar-math.js';

/**
 * Every elementwise op is one row: its WGSL expression and its CPU reference, over inputs
 * `a`, `b`, `c` (converted to f32) and scalar parameters `p0..p3`. The backends generate their
 * kernels from these rows.
 *
 * A unary row may carry its gradient, `grad`: the expression of g · f'(x) over `a` = the incoming
 * gradient g and `b` = the input x (same parameters as the forward). The table then holds a generated
 * row `<name>_grad` (both backends' backward kernel), and a row with `grad` and `method` gets a Tensor
 * method and its backward with no other code (`rowOp` in ./index.ts, tensor-methods.ts): adding
 * such an op is this one row plus a test. Ops whose backward reuses the output (exp, sqrt…) or
 * several rows compose it in ./index.ts.
 */
export interface ElementwiseDef {
  readonly arity: 0 | 1 | 2 | 3;
  readonly wgsl: string;
  readonly cpu: (a: number, b: number, c: number, p: readonly number[]) => number;
}

/** A row of the table as written: a definition, optionally with its gradient and Tensor method name. */
export interface ElementwiseRow extends ElementwiseDef {
  /** g · f'(x) over a = g, b = x: becomes the arity-2 row `<name>_grad`. */
  readonly grad?: { readonly wgsl: string; readonly cpu: (g: number, x: number, c: number, p: readonly number[]) => number };
  /** With `grad`: installs the method `x.<row name>()` (forward and backward from this row) on Tensor. */
  readonly method?: boolean;
}

const SQRT1_2 = Math.SQRT1_2;
const GELU_TANH_K = Math.sqrt(2 / Math.PI);
const sig = (x: number): number => 1 / (1 + Math.exp(-x));
const f32 = Math.fround;

const ROWS = {
  // arity 0: fills
  fill: { arity: 0, wgsl: 'p0', cpu: (_a, _b, _c, p) => p[0]! },
  // unary
  copy: { arity: 1, wgsl: 'a', cpu: (a) => a },
  neg: { arity: 1, wgsl: '-a', cpu: (a) => -a },
  exp: { arity: 1, wgsl: 'exp(a)', cpu: (a) => Math.exp(a) },
  log: { arity: 1, wgsl: 'log(a)', cpu: (a) => Math.log(a) },
  sqrt: { arity: 1, wgsl: 'sqrt(a)', cpu: (a) => Math.sqrt(a) },
  rsqrt: { arity: 1, wgsl: 'inverseSqrt(a)', cpu: (a) => 1 / Math.sqrt(a) },
  abs: { arity: 1, wgsl: 'abs(a)', cpu: (a) => Math.abs(a) },
  sign: { arity: 1, wgsl: 'sign(a)', cpu: (a) => Math.sign(a) },
  sin: { arity: 1, wgsl: 'sin(a)', cpu: (a) => Math.sin(a) },
  cos: { arity: 1, wgsl: 'cos(a)', cpu: (a) => Math.cos(a) },
  tanh: {
    arity: 1, wgsl: 'f_tanh(a)', cpu: (a) => Math.tanh(a), method: true,
    grad: { wgsl: 'a * (1.0 - f_tanh(b) * f_tanh(b))', cpu: (g, x) => g * (1 - Math.tanh(x) ** 2) },
  },
  sigmoid: {
    arity: 1, wgsl: 'f_sigmoid(a)', cpu: (a) => sig(a), method: true,
    grad: { wgsl: 'a * f_sigmoid(b) * (1.0 - f_sigmoid(b))', cpu: (g, x) => g * sig(x) * (1 - sig(x)) },
  },
  // NaN propagates as in PyTorch (WGSL max/min may drop it; `a > 0 ? a : 0` would too)
  relu: {
    arity: 1, wgsl: 'select(0.0, a, a > 0.0 || f_isnan(a))', cpu: (a) => (a > 0 || a !== a ? a : 0), method: true,
    grad: { wgsl: 'select(0.0, a, b > 0.0 && !f_isnan(b))', cpu: (g, x) => (x > 0 ? g : 0) },
  },
  silu: {
    arity: 1, wgsl: 'a * f_sigmoid(a)', cpu: (a) => a * sig(a), method: true,
    grad: { wgsl: 'a * (f_sigmoid(b) * (1.0 + b * (1.0 - f_sigmoid(b))))', cpu: (g, x) => g * (sig(x) * (1 + x * (1 - sig(x)))) },
  },
  gelu: {
    arity: 1, wgsl: '0.5 * a * (1.0 + f_erf(a * 0.70710678118654752))', cpu: (a) => 0.5 * a * (1 + erf(a * SQRT1_2)),
    grad: {
      wgsl: 'a * (0.5 * (1.0 + f_erf(b * 0.70710678118654752)) + b * 0.39894228040143268 * exp(-0.5 * b * b))',
      cpu: (g, x) => g * (0.5 * (1 + erf(x * SQRT1_2)) + x * 0.3989422804014327 * Math.exp(-0.5 * x * x)),
    },
  },
  gelu_tanh: {
    arity: 1,
    wgsl: '0.5 * a * (1.0 + f_tanh(0.79788456080286536 * (a + 0.044715 * a * a * a)))',
    cpu: (a) => 0.5 * a * (1 + Math.tanh(GELU_TANH_K * (a + 0.044715 * a * a * a))),
    grad: {
      wgsl: `a * (0.5 * (1.0 + f_tanh(0.79788456080286536 * (b + 0.044715 * b * b * b))) +
      0.5 * b * (1.0 - f_tanh(0.79788456080286536 * (b + 0.044715 * b * b * b)) * f_tanh(0.79788456080286536 * (b + 0.044715 * b * b * b))) *
      0.79788456080286536 * (1.0 + 0.134145 * b * b))`,
      cpu: (g, x) => {
        const t = Math.tanh(GELU_TANH_K * (x + 0.044715 * x * x * x));
        return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_TANH_K * (1 + 0.134145 * x * x));
      },
    },
  },
  quick_gelu: {
    arity: 1, wgsl: 'a * f_sigmoid(1.702 * a)', cpu: (a) => a * sig(1.702 * a),
    grad: {
      wgsl: 'a * (f_sigmoid(1.702 * b) * (1.0 + 1.702 * b * (1.0 - f_sigmoid(1.702 * b))))',
      cpu: (g, x) => g * (sig(1.702 * x) * (1 + 1.702 * x * (1 - sig(1.702 * x)))),
    },
  },
  square: { arity: 1, wgsl: 'a * a', cpu: (a) => a * a },
  reciprocal: { arity: 1, wgsl: '1.0 / a', cpu: (a) => 1 / a },
  floor: { arity: 1, wgsl: 'floor(a)', cpu: (a) => Math.floor(a) },
  // unary with scalar params
  add_scalar: { arity: 1, wgsl: 'a + p0', cpu: (a, _b, _c, p) => a + p[0]! },
  mul_scalar: { arity: 1, wgsl: 'a * p0', cpu: (a, _b, _c, p) => a * p[0]! },
  pow_scalar: { arity: 1, wgsl: 'f_pow(a, p0)', cpu: (a, _b, _c, p) => powf(a, p[0]!) },
  rpow_scalar: { arity: 1, wgsl: 'f_pow(p0, a)', cpu: (a, _b, _c, p) => powf(p[0]!, a) },
  clamp: {
    arity: 1, wgsl: 'select(min(max(a, p0), p1), a, f_isnan(a))', cpu: (a, _b, _c, p) => Math.min(Math.max(a, p[0]!), p[1]!),
    // pass the gradient where p0 <= x <= p1
    grad: { wgsl: 'select(0.0, a, b >= p0 && b <= p1 && !f_isnan(b))', cpu: (g, x, _c, p) => (x >= p[0]! && x <= p[1]! ? g : 0) },
  },
  axpb: { arity: 1, wgsl: 'a * p0 + p1', cpu: (a, _b, _c, p) => a * p[0]! + p[1]! },
  // binary
  add: { arity: 2, wgsl: 'a + b', cpu: (a, b) => a + b },
  sub: { arity: 2, wgsl: 'a - b', cpu: (a, b) => a - b },
  mul: { arity: 2, wgsl: 'a * b', cpu: (a, b) => a * b },
  div: { arity: 2, wgsl: 'a / b', cpu: (a, b) => a / b },
  pow: { arity: 2, wgsl: 'f_pow(a, b)', cpu: (a, b) => powf(a, b) },
  // NaN in either operand gives NaN (Math.max/min do so already)
  maximum: { arity: 2, wgsl: 'select(select(max(a, b), b, f_isnan(b)), a, f_isnan(a))', cpu: (a, b) => Math.max(a, b) },
  minimum: { arity: 2, wgsl: 'select(select(min(a, b), b, f_isnan(b)), a, f_isnan(a))', cpu: (a, b) => Math.min(a, b) },
  // comparisons with NaN are false, except ne (NaN != NaN), as in PyTorch; the NaN tests are explicit
  // because WGSL lets compilers assume floats are never NaN (lavapipe gave ne(NaN, NaN) = 0)
  lt: { arity: 2, wgsl: 'select(0.0, 1.0, a < b && !f_isnan(a) && !f_isnan(b))', cpu: (a, b) => (a < b ? 1 : 0) },
  le: { arity: 2, wgsl: 'select(0.0, 1.0, a <= b && !f_isnan(a) && !f_isnan(b))', cpu: (a, b) => (a <= b ? 1 : 0) },
  gt: { arity: 2, wgsl: 'select(0.0, 1.0, a > b && !f_isnan(a) && !f_isnan(b))', cpu: (a, b) => (a > b ? 1 : 0) },
  ge: { arity: 2, wgsl: 'select(0.0, 1.0, a >= b && !f_isnan(a) && !f_isnan(b))', cpu: (a, b) => (a >= b ? 1 : 0) },
  eq: { arity: 2, wgsl: 'select(0.0, 1.0, a == b && !f_isnan(a) && !f_isnan(b))', cpu: (a, b) => (a === b ? 1 : 0) },
  ne: { arity: 2, wgsl: 'select(0.0, 1.0, a != b || f_isnan(a) || f_isnan(b))', cpu: (a, b) => (a !== b ? 1 : 0) },
  // a * p0 + b * p1: fused scaled add (axpy, lerp, optimizer-style updates)
  axpby: { arity: 2, wgsl: 'a * p0 + b * p1', cpu: (a, b, _c, p) => a * p[0]! + b * p[1]! },
  // (a - b)²: the MSE loss's elementwise term (mseLoss in ../nn.ts)
  sq_diff: { arity: 2, wgsl: '(a - b) * (a - b)', cpu: (a, b) => (a - b) * (a - b) },
  // ternary
  // the MSE loss's input gradient: g · p0 · (input - target), a = g, b = input, c = target
  mse_dinput: { arity: 3, wgsl: 'a * p0 * (b - c)', cpu: (g, b, c, p) => g * p[0]! * (b - c) },
  // a NaN condition is true (PyTorch's bool(NaN)); tested on the bits, as `NaN != 0.0` folded to false on lavapipe
  where: { arity: 3, wgsl: 'select(c, b, a != 0.0 || f_isnan(a))', cpu: (a, b, c) => (a !== 0 ? b : c) },
  // a + p0 * b * c: addcmul
  addcmul: { arity: 3, wgsl: 'a + p0 * b * c', cpu: (a, b, c, p) => a + p[0]! * b * c },
  // GEGLU (diffusers' feed-forward): hidden a times gelu(gate b), and its two gradients, written by one
  // paired kernel straight into the two halves of the projection's gradient (geglu() in ./index.ts)
  geglu: { arity: 2, wgsl: 'a * 0.5 * b * (1.0 + f_erf(b * 0.70710678118654752))', cpu: (a, b) => a * 0.5 * b * (1 + erf(b * SQRT1_2)) },
  // d hidden = g · gelu(gate): a = g, b = hidden (unread: the same inputs as its pair geglu_dgate), c = gate
  geglu_dh: { arity: 3, wgsl: 'a * 0.5 * c * (1.0 + f_erf(c * 0.70710678118654752))', cpu: (g, _h, c) => g * 0.5 * c * (1 + erf(c * SQRT1_2)) },
  // d gate = g · hidden · gelu'(gate): a = g, b = hidden, c = gate
  geglu_dgate: {
    arity: 3,
    wgsl: 'a * b * (0.5 * (1.0 + f_erf(c * 0.70710678118654752)) + c * 0.39894228040143268 * exp(-0.5 * c * c))',
    cpu: (g, h, x) => g * h * (0.5 * (1 + erf(x * SQRT1_2)) + x * 0.3989422804014327 * Math.exp(-0.5 * x * x)),
  },
} satisfies Record<string, ElementwiseRow>;

type Rows = typeof ROWS;
/** Rows that carry a gradient, and the names of their generated backward rows. */
export type WithGrad = { [K in keyof Rows]: Rows[K] extends { grad: object } ? K : never }[keyof Rows];
type GradName = `${WithGrad}_grad`;
export type ElementwiseName = keyof Rows | GradName;
/** Rows with `method` (and `grad`): each is a Tensor method of the same name. */
export type ElementwiseMethod = { [K in keyof Rows]: Rows[K] extends { method: true; grad: object } ? K : never }[keyof Rows];

function gradRows(rows: Readonly<Record<string, ElementwiseRow>>): Record<GradName, ElementwiseDef> {
  const out: Record<string, ElementwiseDef> = {};
  for (const [name, row] of Object.entries(rows)) if (row.grad) out[`${name}_grad`] = { arity: 2, wgsl: row.grad.wgsl, cpu: row.grad.cpu };
  // cast: Object.entries loses the literal keys; the loop makes one `${name}_grad` per row with grad
  return out as Record<GradName, ElementwiseDef>;
}

/** Every kernel row: the rows as written plus one generated `<name>_grad` row per gradient. */
export const ELEMENTWISE: Readonly<Record<ElementwiseName, ElementwiseDef>> = { ...ROWS, ...gradRows(ROWS) };

/** The rows that are Tensor methods (tensor-methods.ts installs them). */
export const ELEMENTWISE_METHODS: readonly ElementwiseMethod[] = Object.entries(ROWS as Readonly<Record<string, ElementwiseRow>>).flatMap(([name, row]) =>
  // cast: Object.entries loses the literal keys; a row with method and grad is an ElementwiseMethod
  row.method && row.grad ? [name as ElementwiseMethod] : [],
);

/** Rounds through f32 like the device does (used by tests comparing backends). */
export const toF32 = f32;
