// Checks MelSeeds.kt against `mel-generate --print_latents` output (docs/mobile.md):
//     java -jar seedcheck.jar vectors.json
// prints what it compared and exits 1 on any difference. It reads only the fields of that
// format it needs, with regular expressions, so that it needs no JSON library.

import java.io.File
import kotlin.system.exitProcess

fun field(json: String, name: String): String? =
    Regex("\"$name\": (\"[^\"]*\"|[^,\\n}]+)").find(json)?.groupValues?.get(1)?.trim('"')

// {"key": "value", ...} maps (splitmix64 and each latent's entries), in order.
fun maps(json: String, name: String): List<Map<Int, String>> =
    Regex("\"$name\": \\{([^}]*)\\}").findAll(json).map { block ->
        Regex("\"(\\d+)\": \"([^\"]+)\"").findAll(block.groupValues[1])
            .associate { it.groupValues[1].toInt() to it.groupValues[2] }
    }.toList()

fun main(args: Array<String>) {
    val json = File(args[0]).readText()
    val seed = field(json, "seed")!!.toULong().toLong()
    val dim = field(json, "latent_dim")!!.toInt()
    val num = field(json, "num")!!.toInt()
    val t = field(json, "truncation")!!.let { if (it == "null") Double.POSITIVE_INFINITY else it.toDouble() }
    val strength = field(json, "variation_strength")?.toDouble()
    val problems = mutableListOf<String>()
    var compared = 0

    val bits = SplitMix64(seed.toULong())
    val wanted = maps(json, "splitmix64").single()
    for (k in 1..wanted.keys.sorted().last()) {
        val x = bits.next()
        wanted[k]?.let { compared++; if (it != x.toString()) problems += "x_$k: want $it, got $x" }
    }
    val entries = maps(json, "entries")
    val variationSeeds = Regex("\"variation_seed\": \"(\\d+)\"").findAll(json).map { it.groupValues[1] }.toList()
    for (i in 0 until num) {
        val z = if (strength == null) latentsForSeed(seed, num, dim, t).copyOfRange(i * dim, (i + 1) * dim)
                else variationLatent(seed, i, dim, strength, t)
        if (strength != null && variationSeeds[i] != variationSeed(seed, i).toULong().toString())
            problems += "variation seed $i: want ${variationSeeds[i]}"
        for ((j, text) in entries[i]) {
            compared++
            // Compare the bits: the decimal is the shortest that reads back as the float.
            if (text.toFloat().toRawBits() != z[j].toRawBits()) problems += "latent $i entry $j: want $text, got ${z[j]}"
        }
    }
    problems.forEach { println("MISMATCH $it") }
    println("${if (problems.isEmpty()) "OK" else "FAILED"}: $compared values of seed ${seed.toULong()}, " +
            "$num latents of $dim, truncation $t, variation strength ${strength ?: "none"}")
    if (problems.isNotEmpty()) exitProcess(1)
}
