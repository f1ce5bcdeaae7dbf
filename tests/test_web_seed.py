"""The page's seed rule (mel_tf/web_page/seed.js, run by node) against Python's
latents_for_seed and interpolate_latents, bit for bit, and its seed parser."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from conftest import REPO
from mel_tf.deploy.seeds import SEED_TO_Z, interpolate_latents, latents_for_seed

SEED_JS = os.path.join(REPO, "mel_tf", "web_page", "seed.js")

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
