// Seeds to latents: the rules of mel_tf/seeds.py (SEED_TO_Z, TRUNCATION and
// VARIATION, written into every exported JSON), so that seed s here is the icon
// `mel-generate --seed=s` writes. Integer steps are exact BigInt
// arithmetic modulo 2^64; the Box-Muller step is in doubles, rounded to float32
// at the end.

const MASK64 = (1n << 64n) - 1n;
const GAMMA = 0x9E3779B97F4A7C15n;
const TWO_POW_53 = 9007199254740992;
// The tags of mel_tf/seeds.py: ASCII "truncate" and "variants".
const TRUNCATION_TAG = 0x7472756E63617465n;
const VARIATION_TAG = 0x76617269616E7473n;
export const MIN_TRUNCATION = 0.05;

// Seeds the page accepts: the whole unsigned 64-bit range, written in decimal.
export const MAX_SEED = MASK64;
const SEED_RULE = `a whole number from 0 to ${MAX_SEED}`;

// The SplitMix64 output function.
function mix(x) {
  x = ((x ^ (x >> 30n)) * 0xBF58476D1CE4E5B9n) & MASK64;
  x = ((x ^ (x >> 27n)) * 0x94D049BB133111EBn) & MASK64;
  return x ^ (x >> 31n);
}

// Outputs 1..count of SplitMix64 for `seed` (a BigInt, taken modulo 2^64).
export function splitmix64(seed, count) {
  const out = new Array(count);
  let state = BigInt(seed) & MASK64;
  for (let k = 0; k < count; k++) {
    state = (state + GAMMA) & MASK64;
    out[k] = mix(state);
  }
  return out;
}

// The normals n_0, n_1, ... of a seed, each rounded to float32, one at a time.
function* normalStream(seed) {
  let state = BigInt(seed) & MASK64;
  const uniform = () => {
    state = (state + GAMMA) & MASK64;
    // (x >> 11) < 2^53 is exact as a double; the division by 2^53 is exact too.
    return (Number(mix(state) >> 11n) + 1) / TWO_POW_53;
  };
  for (;;) {
    const r = Math.sqrt(-2 * Math.log(uniform()));
    const t = 2 * Math.PI * uniform();
    yield Math.fround(r * Math.cos(t));
    yield Math.fround(r * Math.sin(t));
  }
}

// n_0 .. n_{count-1} of `seed` as a Float32Array.
function normals(seed, count) {
  const out = new Float32Array(count);
  const stream = normalStream(seed);
  for (let i = 0; i < count; i++) out[i] = stream.next().value;
  return out;
}

// Output index + 1 of SplitMix64 seeded with (seed XOR tag), computed directly.
export function derivedSeed(seed, tag, index = 0) {
  const start = (BigInt(seed) & MASK64) ^ tag;
  return mix((start + BigInt(index + 1) * GAMMA) & MASK64);
}

// `num` latents of `dim` entries from `seed`, as one Float32Array [num * dim];
// a finite `truncation` redraws the entries beyond it (TRUNCATION).
export function latentsForSeed(seed, num, dim, truncation = Infinity) {
  const z = normals(seed, num * dim);
  return truncation === Infinity ? z : truncate(z, seed, truncation);
}

// TRUNCATION in mel_tf/seeds.py: each entry beyond +-t, in order, takes the next
// value within +-t of the seed's resample stream. Float32 values compared as doubles.
export function truncate(values, seed, t) {
  const out = Float32Array.from(values);
  let stream = null;
  for (let i = 0; i < out.length; i++) {
    if (Math.abs(out[i]) <= t) continue;
    stream = stream || normalStream(derivedSeed(seed, TRUNCATION_TAG));
    let r;
    do { r = stream.next().value; } while (Math.abs(r) > t);
    out[i] = r;
  }
  return out;
}

// The seed whose latent 0 is mixed into variation k of `seed` (VARIATION).
export function variationSeed(seed, k) {
  return derivedSeed(seed, VARIATION_TAG, k);
}

// Variation k of `seed` at strength s (VARIATION): a Float32Array [dim].
export function variationLatent(seed, k, dim, s, truncation = Infinity) {
  const a = latentsForSeed(seed, 1, dim, truncation);
  const b = latentsForSeed(variationSeed(seed, k), 1, dim, truncation);
  const c = Math.sqrt(1 - s * s);
  const out = new Float32Array(dim);
  // Two products and their sum, each rounded in double, as in Python.
  for (let i = 0; i < dim; i++) out[i] = c * a[i] + s * b[i];
  return out;
}

// Spherical interpolation as mel_tf.deploy.generate.slerp: a and b are Float32Arrays,
// the arithmetic is in doubles, the result float32. At t = 0 and t = 1 it
// returns a and b exactly.
export function slerp(a, b, t) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  const cos = dot / (Math.sqrt(na) * Math.sqrt(nb) + 1e-30);
  const omega = Math.acos(Math.min(1, Math.max(-1, cos)));
  const out = new Float32Array(a.length);
  const s = Math.sin(omega);
  if (s < 1e-6) {
    for (let i = 0; i < a.length; i++) out[i] = (1 - t) * a[i] + t * b[i];
    return out;
  }
  const wa = Math.sin((1 - t) * omega) / s, wb = Math.sin(t * omega) / s;
  for (let i = 0; i < a.length; i++) out[i] = wa * a[i] + wb * b[i];
  return out;
}

// Frame i of `frames` from a to b, the t of numpy.linspace(0, 1, frames)[i].
export function interpolationT(i, frames) {
  return i === frames - 1 ? 1 : i * (1 / (frames - 1));
}

// Reads a seed typed by a person: {seed: BigInt} or {error: "message"}.
export function parseSeed(text) {
  const s = String(text).trim();
  if (s === "") return { error: `Enter a seed: ${SEED_RULE}.` };
  if (/^-\s*\d+$/.test(s)) return { error: `A seed cannot be negative: enter ${SEED_RULE}.` };
  if (!/^\d+$/.test(s)) {
    const shown = s.length > 24 ? s.slice(0, 24) + "…" : s;
    return { error: `"${shown}" is not a seed: enter ${SEED_RULE}.` };
  }
  const digits = s.replace(/^0+(?=\d)/, "");
  if (digits.length > 20 || BigInt(digits) > MAX_SEED) {
    return { error: `That seed is too large: enter ${SEED_RULE}.` };
  }
  return { seed: BigInt(digits) };
}

// Reads a small whole number (a count) between lo and hi: {value} or {error}.
export function parseCount(text, lo, hi, what) {
  const s = String(text).trim();
  if (!/^\d{1,6}$/.test(s) || Number(s) < lo || Number(s) > hi) {
    return { error: `${what} must be a whole number from ${lo} to ${hi}.` };
  }
  return { value: Number(s) };
}

// Reads a truncation: "off" (or nothing) is Infinity, else a decimal number of
// at least MIN_TRUNCATION. {value} or {error}.
export function parseTruncation(text) {
  const s = String(text).trim().toLowerCase();
  if (s === "" || s === "off") return { value: Infinity };
  if (!/^\d{1,4}(\.\d{1,6})?$/.test(s) || Number(s) < MIN_TRUNCATION) {
    return { error: `Truncation must be "off" or a number of at least ${MIN_TRUNCATION}.` };
  }
  return { value: Number(s) };
}

// Reads a variation strength, a decimal number from 0 to 1. {value} or {error}.
export function parseStrength(text) {
  const s = String(text).trim();
  if (!/^\d(\.\d{1,6})?$/.test(s) || Number(s) > 1) {
    return { error: "The variation strength must be a number from 0 to 1." };
  }
  return { value: Number(s) };
}
