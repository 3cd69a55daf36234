/** Polls `cond` every 10 ms until it holds; throws after `ms` (for state changes that emit no event). */
export async function until(
  cond: () => boolean | Promise<boolean>,
  ms = 5000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
