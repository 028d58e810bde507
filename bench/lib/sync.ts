import type * as ft from '@foliar/tensor';

/**
 * Waits for the device by reading one element of `t`: the work before it has finished when the
 * value arrives. The flat view is disposed too: a leaked view keeps t's buffer alive, and every call
 * would then get a fresh (zero-filled) buffer.
 */
export async function syncOne(t: ft.Tensor): Promise<void> {
  const flat = t.reshape([-1]);
  const v = flat.narrow(0, 0, 1);
  await v.data();
  v.dispose();
  flat.dispose();
}
