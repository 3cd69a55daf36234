/**
 * Preloaded into the server under test (`node --expose-gc --import <this file> src/cli.ts ...`):
 * on SIGUSR2 it runs a full GC and prints one JSON line with the memory figures, so the memory
 * test can measure the server from outside without a debug endpoint in the product.
 */
process.on("SIGUSR2", () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  process.stdout.write(
    `${JSON.stringify({ msg: "gc-stats", gc: gc !== undefined, rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers })}\n`,
  );
});
