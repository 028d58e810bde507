/**
 * The error every backend raises for an index outside [0, size): PyTorch refuses these, and the
 * clamped or all-zero rows a kernel would otherwise produce are silent wrong answers.
 */
export function indexOutOfRange(op: string, what: string, value: number, size: number, where = ''): RangeError {
  return new RangeError(`${op}: ${what} ${value} is out of range [0, ${size})${where}`);
}
