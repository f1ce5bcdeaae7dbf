"""Seeds -> latents: the rule every exported model documents, and interpolation.

The same seed gives the same latents on every machine and in a phone app (see
`latents_for_seed` for the exact rule). numpy only.
"""

from __future__ import annotations

import math

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


def latents_for_seed(seed: int, num: int, latent_dim: int) -> np.ndarray:
    """`num` latent vectors [num, latent_dim] float32, i.i.d. N(0, 1), from `seed`.

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
    total = num * latent_dim
    pairs = (total + 1) // 2
    x = splitmix64(seed, 2 * pairs)
    u = ((x >> np.uint64(11)).astype(np.float64) + 1.0) * (1.0 / 2.0 ** 53)
    r = np.sqrt(-2.0 * np.log(u[0::2]))
    t = 2.0 * np.pi * u[1::2]
    normals = np.empty(2 * pairs, np.float64)
    normals[0::2] = r * np.cos(t)
    normals[1::2] = r * np.sin(t)
    return normals[:total].astype(np.float32).reshape(num, latent_dim)


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
