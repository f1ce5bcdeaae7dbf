// Seeds -> latents for mel_tf generators: the seed rule (mel_tf-splitmix64-box-muller-v1)
// with truncation (mel_tf-truncation-resample-v1) and variations (mel_tf-variation-v1),
// as written in every exported generator JSON. Plain Kotlin, no Android API.

import kotlin.math.PI
import kotlin.math.abs
import kotlin.math.cos
import kotlin.math.ln
import kotlin.math.sin
import kotlin.math.sqrt

private const val GAMMA = 0x9E3779B97F4A7C15uL
private const val TRUNCATION_TAG = 0x7472756E63617465uL   // ASCII "truncate"
private const val VARIATION_TAG = 0x76617269616E7473uL    // ASCII "variants"
private const val TWO_POW_53 = 9007199254740992.0

// ULong arithmetic wraps modulo 2^64, which the rule needs, and shr on a ULong is a
// logical shift. (With Long instead, use ushr: shr would copy the sign bit in.)
fun mix(x0: ULong): ULong {
    var x = x0
    x = (x xor (x shr 30)) * 0xBF58476D1CE4E5B9uL
    x = (x xor (x shr 27)) * 0x94D049BB133111EBuL
    return x xor (x shr 31)
}

/** SplitMix64: next() returns x_1, x_2, ... of the seed. */
class SplitMix64(seed: ULong) {
    private var state = seed
    fun next(): ULong {
        state += GAMMA
        return mix(state)
    }
}

/** The seed's normals n_0, n_1, ... in order: Box-Muller in Double, then rounded to Float. */
class Normals(seed: ULong) {
    private val bits = SplitMix64(seed)
    private var spare = 0f
    private var hasSpare = false

    // (x >> 11) has 53 bits, so toDouble is exact; + 1 keeps ln away from 0.
    private fun uniform(): Double = ((bits.next() shr 11).toDouble() + 1.0) / TWO_POW_53

    fun next(): Float {
        if (hasSpare) {
            hasSpare = false
            return spare
        }
        val r = sqrt(-2.0 * ln(uniform()))
        val t = 2.0 * PI * uniform()
        spare = (r * sin(t)).toFloat()
        hasSpare = true
        return (r * cos(t)).toFloat()
    }
}

/**
 * Latents 0 until num of a seed: num * latentDim floats, latent i at i * latentDim.
 * The seed is read as unsigned 64-bit (-1L is 2^64 - 1). truncation: infinity for off,
 * or t >= 0.05 to redraw every entry beyond +-t from the seed's resample stream.
 */
fun latentsForSeed(seed: Long, num: Int, latentDim: Int,
                   truncation: Double = Double.POSITIVE_INFINITY): FloatArray {
    require(num >= 0 && latentDim >= 1) { "need num >= 0 and latentDim >= 1" }
    require(truncation >= 0.05) { "truncation must be at least 0.05 (or infinity for off)" }
    val s = seed.toULong()
    val normals = Normals(s)
    // One stream for all entries: the m-th entry beyond t takes the m-th value within t.
    val resample by lazy { Normals(mix((s xor TRUNCATION_TAG) + GAMMA)) }
    return FloatArray(num * latentDim) {
        var v = normals.next()
        while (abs(v.toDouble()) > truncation) v = resample.next()
        v
    }
}

/** The seed V_k whose latent 0 is mixed into variation k of seed. */
fun variationSeed(seed: Long, k: Int): Long {
    require(k >= 0) { "a variation is numbered from 0" }
    return mix((seed.toULong() xor VARIATION_TAG) + (k.toULong() + 1uL) * GAMMA).toLong()
}

/** Variation k of seed at strength 0..1 (0: the seed's latent, 1: an unrelated one). */
fun variationLatent(seed: Long, k: Int, latentDim: Int, strength: Double,
                    truncation: Double = Double.POSITIVE_INFINITY): FloatArray {
    require(strength in 0.0..1.0) { "variation strength must be from 0 to 1" }
    val a = latentsForSeed(seed, 1, latentDim, truncation)
    val b = latentsForSeed(variationSeed(seed, k), 1, latentDim, truncation)
    val c = sqrt(1.0 - strength * strength)
    // Each product rounded to Double, then the sum: the JVM never fuses a * b + c.
    return FloatArray(latentDim) { (c * a[it] + strength * b[it]).toFloat() }
}
