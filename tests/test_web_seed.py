"""The page's seed rules (mel_tf/deploy/web_page/seed.js, run by node) against Python's
latents_for_seed (also with truncation), variation_latents and
interpolate_latents, bit for bit, and its parsers."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from conftest import REPO
from mel_tf.deploy.seeds import (SEED_TO_Z, TRUNCATION, VARIATION, interpolate_latents,
                                 latents_for_seed, variation_latents, variation_seed)

SEED_JS = os.path.join(REPO, "mel_tf", "deploy", "web_page", "seed.js")

RUNNER = """
import * as seed from "./seed.mjs";
const cases = JSON.parse(await new Promise((resolve) => {
  let text = ""; process.stdin.on("data", (d) => text += d); process.stdin.on("end", () => resolve(text));
}));
const out = {};
out.splitmix = cases.splitmix.map(([s, n]) => seed.splitmix64(BigInt(s), n).map(String));
out.latents = cases.latents.map(([s, num, dim]) =>
  Array.from(new Uint32Array(seed.latentsForSeed(BigInt(s), num, dim).buffer)));
out.slerp = cases.slerp.map(([a, b, dim, frames]) => {
  const za = seed.latentsForSeed(BigInt(a), 1, dim), zb = seed.latentsForSeed(BigInt(b), 1, dim);
  return Array.from({length: frames}, (_, i) =>
    Array.from(new Uint32Array(seed.slerp(za, zb, seed.interpolationT(i, frames)).buffer)));
});
out.parse = cases.parse.map((text) => {
  const r = seed.parseSeed(text);
  return r.error ? {error: r.error} : {seed: String(r.seed)};
});
const bits = (z) => Array.from(new Uint32Array(z.buffer));
const t = (x) => x === null ? Infinity : x;     // JSON has no infinity
out.truncated = (cases.truncated || []).map(([s, num, dim, trunc]) =>
  bits(seed.latentsForSeed(BigInt(s), num, dim, t(trunc))));
out.variations = (cases.variations || []).map(([s, k, dim, strength, trunc]) =>
  bits(seed.variationLatent(BigInt(s), k, dim, strength, t(trunc))));
out.variationSeeds = (cases.variationSeeds || []).map(([s, k]) =>
  String(seed.variationSeed(BigInt(s), k)));
const reply = (r) => r.error ? {error: r.error} : {value: r.value === Infinity ? "off" : r.value};
out.truncationText = (cases.truncationText || []).map((x) => reply(seed.parseTruncation(x)));
out.strengthText = (cases.strengthText || []).map((x) => reply(seed.parseStrength(x)));
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def run_js(tmp_path_factory):
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node is not installed (CI must run the page's seed test)")
        pytest.skip("node is not installed")
    work = tmp_path_factory.mktemp("seed_js")
    # A .mjs copy so that node loads it as an ES module, as the browser does.
    shutil.copyfile(SEED_JS, work / "seed.mjs")
    (work / "runner.mjs").write_text(RUNNER)

    def run(cases):
        # Seeds travel as strings: JSON numbers above 2^53 lose digits in JavaScript.
        cases = json.loads(json.dumps(cases), parse_int=lambda s: s if len(s) > 15 else int(s))
        result = subprocess.run([node, str(work / "runner.mjs")], input=json.dumps(cases),
                                capture_output=True, text=True, timeout=120, check=True)
        return json.loads(result.stdout)
    return run


def test_splitmix64_test_vectors(run_js):
    vectors = SEED_TO_Z["test_vectors"]["splitmix64 seed 1234567"]
    out = run_js({"splitmix": [[1234567, 5], [0, 3], [2 ** 64 - 1, 2]], "latents": [],
                  "slerp": [], "parse": []})["splitmix"]
    assert out[0][:3] == vectors
    assert out[0] == ["6457827717110365317", "3203168211198807973", "9817491932198370423",
                      "4593380528125082431", "16408922859458223821"]
    assert out[1] == [str(0xE220A8397B1DCDAF), str(0x6E789E6AA1B965F4), str(0x06C45D188009454F)]
    assert out[2] == [str(0xE4D971771B652C20), str(0xE99FF867DBF682C9)]


def test_latents_equal_python_bit_for_bit(run_js):
    cases = [[s, 4, 512] for s in range(50)]
    cases += [[s, num, dim] for s in (1234567, 2 ** 53 + 1, 2 ** 63, 2 ** 64 - 1,
                                      12345678901234567890)
              for num, dim in ((1, 1), (1, 3), (2, 128), (1, 8192))]
    out = run_js({"splitmix": [], "latents": cases, "slerp": [], "parse": []})["latents"]
    mismatched = 0
    for (seed, num, dim), bits in zip(cases, out):
        expected = latents_for_seed(seed, num, dim).reshape(-1).view(np.uint32)
        assert len(bits) == num * dim
        mismatched += int(np.sum(np.array(bits, np.uint32) != expected))
    assert mismatched == 0, f"{mismatched} float32 latents differ from Python's"


def test_slerp_path_equals_generate_interpolate(run_js):
    frames, dim = 16, 512
    out = run_js({"splitmix": [], "latents": [], "slerp": [[0, 7, dim, frames], [3, 3, dim, 4]],
                  "parse": []})["slerp"]
    a, b = latents_for_seed(0, 1, dim)[0], latents_for_seed(7, 1, dim)[0]
    expected = interpolate_latents(a, b, frames)
    js = np.array(out[0], np.uint32).view(np.float32)
    assert js.shape == (frames, dim)
    # The end points are the seeds' own latents, exactly.
    np.testing.assert_array_equal(js[0], a)
    np.testing.assert_array_equal(js[-1], b)
    # Between them, sums in another order may move the last bit of a float32.
    assert np.abs(js - expected).max() <= 1e-6
    # Equal seeds take the linear branch and stay on the latent.
    same = np.array(out[1], np.uint32).view(np.float32)
    np.testing.assert_array_equal(same, np.repeat(latents_for_seed(3, 1, dim), 4, axis=0))


def test_seed_parser_accepts_unsigned_64_bit_decimal_only(run_js):
    texts = ["7", " 007 ", "0", "18446744073709551615", "18446744073709551616", "-1", "- 3",
             "abc", "1e5", "3.5", "", "   ", "0x10", "99999999999999999999999999"]
    out = run_js({"splitmix": [], "latents": [], "slerp": [], "parse": texts})["parse"]
    got = dict(zip(texts, out))
    assert got["7"] == {"seed": "7"} and got[" 007 "] == {"seed": "7"}
    assert got["0"] == {"seed": "0"}
    assert got["18446744073709551615"] == {"seed": "18446744073709551615"}
    for text in ("18446744073709551616", "99999999999999999999999999"):
        assert "too large" in got[text]["error"]
    for text in ("-1", "- 3"):
        assert "negative" in got[text]["error"]
    for text in ("abc", "1e5", "3.5", "0x10"):
        assert "is not a seed" in got[text]["error"]
    for text in ("", "   "):
        assert got[text]["error"].startswith("Enter a seed")


def _floats(strings):
    return np.array([np.float32(v) for v in strings], np.float32)


def test_truncation_and_variation_test_vectors(run_js):
    out = run_js({"splitmix": [], "latents": [], "slerp": [], "parse": [],
                  "truncated": [[1234567, 1, 8, 0.5], [1234567, 1, 8, 1.0]],
                  "variations": [[1234567, 2, 8, 0.3, None], [1234567, 2, 8, 0.3, 1.0]],
                  "variationSeeds": [[1234567, k] for k in range(3)]})
    vectors = TRUNCATION["test_vectors"]
    for bits, t in zip(out["truncated"], ("0.5", "1.0")):
        np.testing.assert_array_equal(np.array(bits, np.uint32).view(np.float32),
                                      _floats(vectors[f"seed 1234567, D 8, t {t}"]))
    vectors = VARIATION["test_vectors"]
    assert out["variationSeeds"] == vectors["seed 1234567: V_0, V_1, V_2"]
    for bits, t in zip(out["variations"], ("off", "1.0")):
        np.testing.assert_array_equal(np.array(bits, np.uint32).view(np.float32),
                                      _floats(vectors[f"seed 1234567, D 8, k 2, s 0.3, t {t}"]))


def test_truncated_latents_and_variations_equal_python_bit_for_bit(run_js):
    truncated = [[s, num, dim, t] for s in (0, 7, 2 ** 64 - 1, 12345678901234567890)
                 for num, dim in ((1, 512), (2, 130), (1, 8192))
                 for t in (None, 2.0, 1.0, 0.7, 0.5, 0.05)]
    variations = [[s, k, dim, strength, t] for s in (0, 7, 2 ** 63) for k in (0, 1, 5, 1000)
                  for dim, strength, t in ((512, 0.3, None), (8192, 0.1, 0.7),
                                           (512, 0.95, 1.5), (130, 0.0, None), (130, 1.0, 0.5))]
    out = run_js({"splitmix": [], "latents": [], "slerp": [], "parse": [],
                  "truncated": truncated, "variations": variations,
                  "variationSeeds": [[s, k] for s in (0, 2 ** 64 - 1) for k in (0, 9, 123456)]})
    mismatched = 0
    for (seed, num, dim, t), bits in zip(truncated, out["truncated"]):
        expected = latents_for_seed(seed, num, dim, t).reshape(-1).view(np.uint32)
        assert len(bits) == num * dim
        mismatched += int(np.sum(np.array(bits, np.uint32) != expected))
    for (seed, k, dim, strength, t), bits in zip(variations, out["variations"]):
        expected = variation_latents(seed, k + 1, dim, strength, t)[k].view(np.uint32)
        assert len(bits) == dim
        mismatched += int(np.sum(np.array(bits, np.uint32) != expected))
    assert mismatched == 0, f"{mismatched} float32 values differ from Python's"
    assert out["variationSeeds"] == [str(variation_seed(s, k)) for s in (0, 2 ** 64 - 1)
                                     for k in (0, 9, 123456)]


def test_truncation_and_strength_parsers(run_js):
    texts = ["off", " OFF ", "", "0.7", "2", "0.05", "0.04", "0", "-1", "abc", "1e3", "Infinity"]
    strengths = ["0", "0.3", "1", "1.0", "1.01", "-0.1", ".5", "abc", ""]
    out = run_js({"splitmix": [], "latents": [], "slerp": [], "parse": [],
                  "truncationText": texts, "strengthText": strengths})
    got = dict(zip(texts, out["truncationText"]))
    for text in ("off", " OFF ", ""):
        assert got[text] == {"value": "off"}
    assert [got[x]["value"] for x in ("0.7", "2", "0.05")] == [0.7, 2, 0.05]
    for text in ("0.04", "0", "-1", "abc", "1e3", "Infinity"):
        assert "at least 0.05" in got[text]["error"]
    got = dict(zip(strengths, out["strengthText"]))
    assert [got[x]["value"] for x in ("0", "0.3", "1", "1.0")] == [0, 0.3, 1, 1]
    for text in ("1.01", "-0.1", ".5", "abc", ""):
        assert "from 0 to 1" in got[text]["error"]
