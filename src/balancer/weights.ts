/**
 * The SPEC's weight rule: 0 becomes the rounded mean of the non-zero weights (1 when all
 * are 0); then the weights are scaled to total exactly 100 (or the server count when there
 * are more than 100 servers), rounding down, and the remainder is handed out one point at a
 * time in insertion order.
 */
export function effectiveWeights(configured: readonly number[]): number[] {
  let sum = 0;
  let nonZero = 0;
  for (const w of configured) {
    if (w > 0) {
      sum += w;
      nonZero++;
    }
  }
  const fill = nonZero === 0 ? 1 : Math.max(1, Math.round(sum / nonZero));
  return configured.map((w) => (w > 0 ? w : fill));
}

export function rebalance(configured: readonly number[]): number[] {
  const n = configured.length;
  if (n === 0) return [];
  const eff = effectiveWeights(configured);
  const target = Math.max(100, n);
  const total = eff.reduce((a, b) => a + b, 0);
  const out = eff.map((w) => Math.floor((w * target) / total));
  let rest = target - out.reduce((a, b) => a + b, 0);
  for (let i = 0; rest > 0; i = (i + 1) % n, rest--) out[i]++;
  return out;
}
