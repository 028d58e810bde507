/** The README's 2-D spiral (host data): `classes` arms of `perClass` points, for the MLP demos in Node and the browser. */
export function spiral(perClass = 128, classes = 3): { x: Float32Array; y: Int32Array; n: number } {
  const x = new Float32Array(perClass * classes * 2);
  const y = new Int32Array(perClass * classes);
  for (let c = 0; c < classes; c++)
    for (let i = 0; i < perClass; i++) {
      const r = i / perClass, t = c * 4 + r * 4 + Math.sin(i * 12.9898) * 0.2;
      const k = c * perClass + i;
      x[2 * k] = r * Math.sin(t);
      x[2 * k + 1] = r * Math.cos(t);
      y[k] = c;
    }
  return { x, y, n: perClass * classes };
}
