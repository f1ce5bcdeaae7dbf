"""Seeds -> latents: the rules every exported model documents, and interpolation.

The same seed gives the same latents on every machine and in a phone app (see
`latents_for_seed` for the exact rule). Two controls change a seed's latent
under rules of their own, written into every exported JSON beside SEED_TO_Z:
truncation (TRUNCATION: entries beyond +-t are redrawn, fewer odd icons, less
variety) and variations (VARIATION: icons near a seed's). `latent_test_vectors`
gives the numbers that check a port of the rules (`mel-generate --print_latents`,
docs/mobile.md). numpy only.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

SPLITMIX64_GAMMA = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1

# Written into every exported JSON, so that an app can implement the rule.
SEED_TO_Z = {
    "algorithm": "mel_tf-splitmix64-box-muller-v1",
    "description": (
        "All integer arithmetic is on unsigned 64-bit integers, modulo 2^64; the seed "
        "is taken modulo 2^64 (a negative 64-bit seed is read as unsigned). "
        "x_k = mix(seed + k * 0x9E3779B97F4A7C15) for k = 1, 2, 3, ..., where "
        "mix(x): x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9; "
        "x = (x ^ (x >> 27)) * 0x94D049BB133111EB; return x ^ (x >> 31) "
        "(this is SplitMix64: x_1, x_2, ... are its outputs for that seed). "
        "u(x) = ((x >> 11) + 1) / 2^53, in (0, 1]. "
        "For j = 0, 1, 2, ...: r = sqrt(-2 ln u(x_{2j+1})), t = 2 pi u(x_{2j+2}), "
        "n_{2j} = r cos t, n_{2j+1} = r sin t (in double precision, then rounded to "
        "float32). Latent i (0-based) of a seed is n_{i*D} ... n_{i*D+D-1} for "
        "latent_dim D, so the first icons of a seed do not depend on how many are made."),
    "test_vectors": {"splitmix64 seed 1234567": [
        "6457827717110365317", "3203168211198807973", "9817491932198370423"]},
}


# The controls' rules, stated once here and written into every exported JSON
# beside SEED_TO_Z. The tags are ASCII "truncate" and "variants".
TRUNCATION_TAG = 0x7472756E63617465
VARIATION_TAG = 0x76617269616E7473
# Below this an entry redrawn takes more than 25 values of the stream on average.
MIN_TRUNCATION = 0.05

TRUNCATION = {
    "algorithm": "mel_tf-truncation-resample-v1",
    "description": (
        "Truncation t (a number >= 0.05, or infinity for off) of the latents of a seed. "
        "Let n_0, n_1, ... be the seed's normals of seed_to_z, float32, for all the "
        "latents made (latent i is n_{i*D} ... n_{i*D+D-1}). The seed's resample stream "
        "r_0, r_1, ... is the normals of seed_to_z for the seed R = mix((seed XOR "
        "0x7472756E63617465) + 0x9E3779B97F4A7C15), the first SplitMix64 output for "
        "seed XOR that tag. Going through i = 0, 1, 2, ... in order, every n_i with "
        "|n_i| > t is replaced by the next r_j (continuing where the previous "
        "replacement stopped) with |r_j| <= t; the r_j skipped are discarded. So the "
        "m-th entry beyond t becomes the m-th stream value within t. Comparisons take "
        "the float32 values exactly (as doubles) against t as a double. Entries within "
        "t are kept bit for bit: t = infinity gives the latents of seed_to_z, and latent "
        "i does not depend on how many latents are made after it. Each entry is then "
        "N(0, 1) conditioned on |n| <= t."),
    "test_vectors": {
        # Float32 values, each written as the shortest decimal that reads back as it.
        "seed 1234567: R": "671884056143739181",
        "seed 1234567, D 8, t 0.5": ["-0.33103386", "-0.48435152", "0.0070028165", "-0.43531963",
                                     "-0.42845666", "0.22483358", "-0.16236255", "0.37437922"],
        "seed 1234567, D 8, t 1.0": ["0.6687418", "0.54860145", "0.0070028165", "-0.6904752",
                                     "-0.42845666", "0.22483358", "-0.16236255", "0.71952"],
    },
}

VARIATION = {
    "algorithm": "mel_tf-variation-v1",
    "description": (
        "Variation k (k = 0, 1, 2, ...) of seed S at strength s (0 <= s <= 1), under "
        "truncation t (see truncation; infinity when off). a = latent 0 of seed S and "
        "b = latent 0 of seed V_k, both with truncation t, where V_k = x_{k+1} of "
        "SplitMix64 seeded with S XOR 0x76617269616E7473 (V_k = mix((S XOR "
        "0x76617269616E7473) + (k + 1) * 0x9E3779B97F4A7C15)). Then, in double "
        "precision, c = sqrt(1 - s * s) and z_i = float32((c * a_i) + (s * b_i)): each "
        "product rounded to double, then the sum, then rounded to float32 (no fused "
        "multiply-add). a and b are independent, so each entry of z is N(0, 1) when t is "
        "off: s = 0 gives the seed's own latent exactly, s = 1 an unrelated one. Under "
        "truncation |z_i| <= (c + s) * t <= sqrt(2) * t."),
    "test_vectors": {
        "seed 1234567: V_0, V_1, V_2": ["11723197349212541030", "18426820673135606084",
                                        "16050871548448425071"],
        "seed 1234567, D 8, k 2, s 0.3, t off": [
            "0.7262247", "0.90916663", "0.0042843614", "0.9446425", "-0.20980805",
            "-0.040475238", "0.14716513", "1.278883"],
        "seed 1234567, D 8, k 2, s 0.3, t 1.0": [
            "0.7262247", "0.64330727", "0.0042843614", "-0.7854158", "-0.20980805",
            "-0.040475238", "0.019143356", "0.97808194"],
    },
}


def splitmix64(seed: int, count: int) -> np.ndarray:
    """The first `count` outputs of SplitMix64 (Steele, Lea, Flood 2014) for `seed`.

    Output k (1-based) is mix(seed + k * 0x9E3779B97F4A7C15), all modulo 2^64:
    the generator is counter-based, so numpy computes every output at once.
    """
    seed = int(seed) & _MASK64
    with np.errstate(over="ignore"):
        k = np.arange(1, count + 1, dtype=np.uint64)
        x = np.uint64(seed) + k * np.uint64(SPLITMIX64_GAMMA)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def latents_for_seed(seed: int, num: int, latent_dim: int,
                     truncation: Optional[float] = None) -> np.ndarray:
    """`num` latent vectors [num, latent_dim] float32, i.i.d. N(0, 1), from `seed`.

    truncation: None (or infinity) for the rule below; a number t redraws every
    entry beyond +-t (TRUNCATION, `truncate`).

    The rule (SEED_TO_Z), simple enough for a Kotlin or Swift app:

        // all ULong / UInt64 arithmetic wraps modulo 2^64
        fun mix(x0: ULong): ULong {
            var x = x0
            x = (x xor (x shr 30)) * 0xBF58476D1CE4E5B9uL
            x = (x xor (x shr 27)) * 0x94D049BB133111EBuL
            return x xor (x shr 31)
        }
        var state = seed.toULong()
        fun next(): ULong { state += 0x9E3779B97F4A7C15uL; return mix(state) }   // SplitMix64
        fun uniform(): Double = ((next() shr 11).toDouble() + 1.0) / 9007199254740992.0  // (0, 1]
        // normals in pairs (Box-Muller), consumed in order:
        val r = sqrt(-2.0 * ln(uniform())); val t = 2.0 * PI * uniform()
        n[2j] = r * cos(t); n[2j + 1] = r * sin(t)         // then .toFloat()

    Latent i is n[i * latent_dim until (i + 1) * latent_dim], so
    latents_for_seed(s, 16, d)[:4] == latents_for_seed(s, 4, d). Different
    libm implementations may differ in the last bit of a double; after rounding
    to float32 that changes nothing visible.
    """
    if num < 0 or latent_dim < 1:
        raise ValueError(f"need num >= 0 and latent_dim >= 1, got {num}, {latent_dim}")
    z = normals(seed, num * latent_dim)
    t = check_truncation(truncation)
    if t != math.inf:
        z = truncate(z, seed, t)
    return z.reshape(num, latent_dim)


def normals(seed: int, count: int) -> np.ndarray:
    """n_0 .. n_{count-1} of SEED_TO_Z for `seed`: float32 [count]."""
    pairs = (count + 1) // 2
    x = splitmix64(seed, 2 * pairs)
    u = ((x >> np.uint64(11)).astype(np.float64) + 1.0) * (1.0 / 2.0 ** 53)
    r = np.sqrt(-2.0 * np.log(u[0::2]))
    t = 2.0 * np.pi * u[1::2]
    out = np.empty(2 * pairs, np.float64)
    out[0::2] = r * np.cos(t)
    out[1::2] = r * np.sin(t)
    return out[:count].astype(np.float32)


def derived_seed(seed: int, tag: int, index: int = 0) -> int:
    """Output index + 1 of SplitMix64 seeded with (seed XOR tag): the seed of a
    stream that overlaps `seed`'s own no more than two random seeds' streams do."""
    # Output index + 1 of seed x is output 1 of seed x + index * gamma.
    start = ((int(seed) & _MASK64) ^ tag) + index * SPLITMIX64_GAMMA
    return int(splitmix64(start, 1)[0])


def check_truncation(truncation: Optional[float]) -> float:
    """t as a float (None -> infinity, "off"); ValueError outside TRUNCATION's range."""
    t = math.inf if truncation is None else float(truncation)
    if not t >= MIN_TRUNCATION:      # also refuses NaN
        raise ValueError(f"truncation must be at least {MIN_TRUNCATION} (or off), "
                         f"got {truncation}")
    return t


def truncate(values: np.ndarray, seed: int, t: float) -> np.ndarray:
    """TRUNCATION on `seed`'s normals `values` (float32, in stream order): the
    m-th entry beyond +-t becomes the m-th value within +-t of the seed's
    resample stream. Entries within +-t are kept bit for bit."""
    # Compared in float64: numpy would round a Python float t to float32 here.
    outside = np.flatnonzero(np.abs(values.astype(np.float64)) > t)
    out = values.copy()
    if len(outside) == 0:
        return out
    stream_seed = derived_seed(seed, TRUNCATION_TAG)
    # Enough stream for the expected need, doubled until it suffices; a longer
    # stream starts with the shorter one, so the result does not depend on it.
    count = int(len(outside) / math.erf(t / math.sqrt(2.0)) * 1.1) + 64
    while True:
        stream = normals(stream_seed, count)
        inside = stream[np.abs(stream.astype(np.float64)) <= t]
        if len(inside) >= len(outside):
            out[outside] = inside[:len(outside)]
            return out
        count *= 2


def variation_seed(seed: int, k: int) -> int:
    """The seed whose latent 0 is mixed into variation k of `seed` (VARIATION)."""
    if k < 0:
        raise ValueError(f"a variation is numbered from 0, got {k}")
    return derived_seed(seed, VARIATION_TAG, k)


def variation_latents(seed: int, num: int, latent_dim: int, strength: float,
                      truncation: Optional[float] = None) -> np.ndarray:
    """Variations 0 .. num-1 of `seed` at `strength` (VARIATION): float32 [num, latent_dim].

    z_k = sqrt(1 - s^2) * a + s * b_k, a the seed's latent and b_k an unrelated
    one, so each entry stays N(0, 1): s = 0 is the seed's icon, s = 1 another's.
    """
    s = float(strength)
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"variation strength must be from 0 to 1, got {strength}")
    a = latents_for_seed(seed, 1, latent_dim, truncation)[0].astype(np.float64)
    c = math.sqrt(1.0 - s * s)
    out = np.empty((num, latent_dim), np.float32)
    for k in range(num):
        b = latents_for_seed(variation_seed(seed, k), 1, latent_dim, truncation)[0]
        # Two products, then their sum, each rounded in double: what JavaScript does.
        out[k] = (c * a + s * b.astype(np.float64)).astype(np.float32)
    return out


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation between latents a and b (linear when they are parallel).

    Gaussian latents of high dimension all lie near the sphere of radius
    sqrt(latent_dim); the straight line between two of them passes through
    shorter vectors the generator rarely saw, the great-circle arc does not.
    """
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = np.dot(a64, b64) / (np.linalg.norm(a64) * np.linalg.norm(b64) + 1e-30)
    omega = math.acos(float(np.clip(cos, -1.0, 1.0)))
    if math.sin(omega) < 1e-6:
        return ((1.0 - t) * a64 + t * b64).astype(np.float32)
    s = math.sin(omega)
    return (math.sin((1.0 - t) * omega) / s * a64 + math.sin(t * omega) / s * b64).astype(np.float32)


def interpolate_latents(a: np.ndarray, b: np.ndarray, frames: int,
                        mode: str = "slerp") -> np.ndarray:
    """`frames` latents [frames, D] from a to b inclusive; mode "slerp" or "linear"."""
    if frames < 2:
        raise ValueError(f"need at least 2 frames, got {frames}")
    if mode not in ("slerp", "linear"):
        raise ValueError(f"interpolation must be 'slerp' or 'linear', got {mode!r}")
    ts = np.linspace(0.0, 1.0, frames)
    if mode == "linear":
        return np.stack([(1.0 - t) * a + t * b for t in ts]).astype(np.float32)
    return np.stack([slerp(a, b, t) for t in ts])


# ---- test vectors for ports (mel-generate --print_latents; format in docs/mobile.md) ------

VECTOR_ENTRIES = 4      # the first entries shown of each latent, beside its last


def latent_test_vectors(seed: int, num: int, latent_dim: int,
                        truncation: Optional[float] = None,
                        variation_strength: Optional[float] = None) -> dict:
    """Numbers that check a port of the rules: latents 0 .. num-1 of `seed`, or with
    `variation_strength` variations 0 .. num-1 of it. Each latent shows its first
    VECTOR_ENTRIES entries and its last; "splitmix64" the first four and the last
    of the seed's SplitMix64 outputs that they use (x_k keyed by k). Integers are
    decimal strings (JSON numbers above 2^53 lose digits in JavaScript), and each
    float32 is the shortest decimal that reads back as it."""
    t = check_truncation(truncation)
    vectors = {"rule": SEED_TO_Z["algorithm"], "seed": str(int(seed) & _MASK64),
               "latent_dim": latent_dim, "num": num,
               "truncation": None if t == math.inf else t}
    if t != math.inf:
        vectors["truncation_rule"] = TRUNCATION["algorithm"]
        vectors["resample_seed"] = str(derived_seed(seed, TRUNCATION_TAG))
    if variation_strength is None:
        z = latents_for_seed(seed, num, latent_dim, truncation)
        used = num * latent_dim
        latents = [{"index": i} for i in range(num)]
    else:
        z = variation_latents(seed, num, latent_dim, variation_strength, truncation)
        used = latent_dim            # the seed's own stream gives latent 0 only
        vectors["variation_rule"] = VARIATION["algorithm"]
        vectors["variation_strength"] = float(variation_strength)
        latents = [{"index": k, "variation_seed": str(variation_seed(seed, k))}
                   for k in range(num)]
    used += used % 2                 # normals come in pairs: an odd count draws one more
    x = splitmix64(seed, used)
    vectors["splitmix64"] = {str(k + 1): str(int(x[k])) for k in _shown(used)}
    for latent, values in zip(latents, z):
        latent["entries"] = {str(i): float32_text(values[i]) for i in _shown(latent_dim)}
    vectors["latents"] = latents
    return vectors


def _shown(count: int) -> list:
    """Indices shown of `count` values: the first VECTOR_ENTRIES and the last."""
    return sorted(set(range(min(VECTOR_ENTRIES, count))) | {count - 1})


def float32_text(value) -> str:
    """The shortest decimal that reads back as this float32 ("1.0", "-0.33103386")."""
    return np.format_float_positional(np.float32(value), unique=True, trim="0")
