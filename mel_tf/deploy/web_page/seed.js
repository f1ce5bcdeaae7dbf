// Seeds to latents: the rule of mel_tf.generate.latents_for_seed (SEED_TO_Z in
// every exported JSON), so that seed s here is the icon `python -m
// mel_tf.generate --seed=s` writes. Integer steps are exact BigInt arithmetic
// modulo 2^64; the Box-Muller step is in doubles, rounded to float32 at the end.

const MASK64 = (1n << 64n) - 1n;
const GAMMA = 0x9E3779B97F4A7C15n;
const TWO_POW_53 = 9007199254740992;

// Seeds the page accepts: the whole unsigned 64-bit range, written in decimal.
export const MAX_SEED = MASK64;
const SEED_RULE = `a whole number from 0 to ${MAX_SEED}`;

// Outputs 1..count of SplitMix64 for `seed` (a BigInt, taken modulo 2^64).
export function splitmix64(seed, count) {
  const out = new Array(count);
  let state = BigInt(seed) & MASK64;
  for (let k = 0; k < count; k++) {
    state = (state + GAMMA) & MASK64;
    let x = state;
    x = ((x ^ (x >> 30n)) * 0xBF58476D1CE4E5B9n) & MASK64;
    x = ((x ^ (x >> 27n)) * 0x94D049BB133111EBn) & MASK64;
    out[k] = x ^ (x >> 31n);
  }
  return out;
}

// `num` latents of `dim` entries from `seed`, as one Float32Array [num * dim].
export function latentsForSeed(seed, num, dim) {
  const total = num * dim;
  const pairs = Math.ceil(total / 2);
  const x = splitmix64(seed, 2 * pairs);
  const out = new Float32Array(total);
  for (let j = 0; j < pairs; j++) {
    // (x >> 11) < 2^53 is exact as a double; the division by 2^53 is exact too.
    const u1 = (Number(x[2 * j] >> 11n) + 1) / TWO_POW_53;
    const u2 = (Number(x[2 * j + 1] >> 11n) + 1) / TWO_POW_53;
    const r = Math.sqrt(-2 * Math.log(u1));
    const t = 2 * Math.PI * u2;
    out[2 * j] = r * Math.cos(t);
    if (2 * j + 1 < total) out[2 * j + 1] = r * Math.sin(t);
  }
  return out;
}

// Spherical interpolation as mel_tf.generate.slerp: a and b are Float32Arrays,
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
