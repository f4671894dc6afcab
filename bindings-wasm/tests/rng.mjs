// A seeded xorshift32 generator for the tests that shuffle or edit at
// random: the same seed gives the same run.

/** A function returning floats in [0, 1), from `seed`. */
export function rng(seed) {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >> 17;
    x ^= x << 5; x >>>= 0;
    return x / 2 ** 32;
  };
}
