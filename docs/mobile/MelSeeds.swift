// Seeds -> latents for mel_tf generators: the seed rule (mel_tf-splitmix64-box-muller-v1)
// with truncation (mel_tf-truncation-resample-v1) and variations (mel_tf-variation-v1),
// as written in every exported generator JSON. Plain Swift (Foundation for log, sin, cos).

import Foundation

private let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15
private let truncationTag: UInt64 = 0x7472_756E_6361_7465   // ASCII "truncate"
private let variationTag: UInt64 = 0x7661_7269_616E_7473    // ASCII "variants"

// Swift traps on integer overflow: a plain + or * that passes 2^64 stops the app. The rule
// works modulo 2^64, so it needs the wrapping operators &+ and &*; >> on UInt64 is a
// logical shift (zeros come in), as the rule needs.
func mix(_ x0: UInt64) -> UInt64 {
    var x = x0
    x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
    x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
    return x ^ (x >> 31)
}

/// SplitMix64: next() returns x_1, x_2, ... of the seed.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state = state &+ gamma
        return mix(state)
    }
}

/// The seed's normals n_0, n_1, ... in order: Box-Muller in Double, then rounded to Float.
struct Normals {
    private var bits: SplitMix64
    private var spare: Float? = nil
    init(seed: UInt64) { bits = SplitMix64(seed: seed) }

    // (x >> 11) has 53 bits, so Double(...) is exact; + 1 keeps log away from 0.
    private mutating func uniform() -> Double {
        return (Double(bits.next() >> 11) + 1.0) / 9007199254740992.0
    }

    mutating func next() -> Float {
        if let s = spare {
            spare = nil
            return s
        }
        let r = (-2.0 * log(uniform())).squareRoot()
        let t = 2.0 * Double.pi * uniform()
        spare = Float(r * sin(t))
        return Float(r * cos(t))
    }
}

/// Latents 0..<num of a seed: num * latentDim floats, latent i at i * latentDim.
/// A signed seed s is read as UInt64(bitPattern: s). truncation: .infinity for off, or
/// t >= 0.05 to redraw every entry beyond +-t from the seed's resample stream.
func latentsForSeed(_ seed: UInt64, num: Int, latentDim: Int,
                    truncation: Double = .infinity) -> [Float] {
    precondition(num >= 0 && latentDim >= 1, "need num >= 0 and latentDim >= 1")
    precondition(truncation >= 0.05, "truncation must be at least 0.05 (or .infinity for off)")
    var normals = Normals(seed: seed)
    // One stream for all entries: the m-th entry beyond t takes the m-th value within t.
    var resample = Normals(seed: mix((seed ^ truncationTag) &+ gamma))
    var out = [Float]()
    out.reserveCapacity(num * latentDim)
    for _ in 0..<(num * latentDim) {
        var v = normals.next()
        while abs(Double(v)) > truncation { v = resample.next() }
        out.append(v)
    }
    return out
}

/// The seed V_k whose latent 0 is mixed into variation k of seed.
func variationSeed(_ seed: UInt64, _ k: Int) -> UInt64 {
    precondition(k >= 0, "a variation is numbered from 0")
    return mix((seed ^ variationTag) &+ (UInt64(k) &+ 1) &* gamma)
}

/// Variation k of seed at strength 0...1 (0: the seed's latent, 1: an unrelated one).
func variationLatent(_ seed: UInt64, k: Int, latentDim: Int, strength: Double,
                     truncation: Double = .infinity) -> [Float] {
    precondition((0.0...1.0).contains(strength), "variation strength must be from 0 to 1")
    let a = latentsForSeed(seed, num: 1, latentDim: latentDim, truncation: truncation)
    let b = latentsForSeed(variationSeed(seed, k), num: 1, latentDim: latentDim,
                           truncation: truncation)
    let c = (1.0 - strength * strength).squareRoot()
    // The rule rounds each product to Double, then the sum (no fused multiply-add).
    return (0..<latentDim).map { i in Float(c * Double(a[i]) + strength * Double(b[i])) }
}
