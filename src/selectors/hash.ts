/** Small, fast, well-mixed 32-bit hashes for client addresses and server keys. */

export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a over UTF-16 code units, then fmix32. */
export function hashString(s: string, seed = 0x811c9dc5): number {
  let h = seed;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

/** Uniform in (0, 1) from two 32-bit values. */
export function unit(a: number, b: number): number {
  const h = fmix32(Math.imul(a ^ fmix32(b + 0x9e3779b9), 0x9e3779b1) ^ b);
  return (h + 0.5) / 4294967296;
}
