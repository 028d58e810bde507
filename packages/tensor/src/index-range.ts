/**
 * The error every backend raises for an index outside [0, size): PyTorch refuses these, and the
 * clamped or all-zero rows a kernel would otherwise produce are silent wrong answers.
 */
export function indexOutOfRange(op: string, what: string, value: number, size: number, where = ''): RangeError {
  return new RangeError(`${op}: ${what} ${value} is out of range [0, ${size})${where}`);
}

/** The note an index error adds when one id outside the range is allowed (crossEntropy's ignoreIndex). */
export function ignoreNote(ignore: number | undefined): string {
  return ignore === undefined ? '' : ` (and is not the ignoreIndex ${ignore})`;
}
