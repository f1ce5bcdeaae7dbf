"""Seeds -> latents (pinned to SplitMix64's published outputs), interpolation,
loading every kind of model, and deterministic icons from the command line."""

import json
import math
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from conftest import IN_8X8_FADE, PAST_16X16_FADE, REPO, make_run_dir
from mel_tf.deploy import generate
from mel_tf.deploy.seeds import (TRUNCATION, TRUNCATION_TAG, VARIATION, VARIATION_TAG,
                                 float32_text, interpolate_latents, latent_test_vectors,
                                 latents_for_seed, splitmix64, variation_latents,
                                 variation_seed)
from mel_tf.deploy.serving import ModelLoadError, load_model

# ---- the seed rule ------------------------------------------------------------------------


def test_splitmix64_matches_published_outputs():
    # Rosetta Code "Pseudo-random numbers/Splitmix64", seed 1234567.
    assert splitmix64(1234567, 5).tolist() == [
        6457827717110365317, 3203168211198807973, 9817491932198370423,
        4593380528125082431, 16408922859458223821]
    # The reference generator seeded with 0.
    assert splitmix64(0, 3).tolist() == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4,
                                         0x06C45D188009454F]
    # A seed is taken modulo 2^64, as an app's signed 64-bit seed read unsigned.
    assert splitmix64(-1, 2).tolist() == splitmix64(2 ** 64 - 1, 2).tolist() == [
        0xE4D971771B652C20, 0xE99FF867DBF682C9]


def test_first_latents_follow_box_muller_of_the_published_outputs():
    # Worked by hand from the published integers, independently of numpy.
    x1, x2 = 6457827717110365317, 3203168211198807973
    u1, u2 = ((x1 >> 11) + 1) / 2.0 ** 53, ((x2 >> 11) + 1) / 2.0 ** 53
    r, t = math.sqrt(-2.0 * math.log(u1)), 2.0 * math.pi * u2
    expected = np.array([r * math.cos(t), r * math.sin(t)], np.float32)
    np.testing.assert_array_equal(latents_for_seed(1234567, 1, 2)[0], expected)


def test_latents_are_standard_normal():
    z = latents_for_seed(0, 100, 2048)
    assert z.dtype == np.float32 and z.shape == (100, 2048)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert abs(np.mean(np.abs(z) < 1.0) - 0.6827) < 0.005      # one sigma
    assert abs(np.mean(np.abs(z) < 2.0) - 0.9545) < 0.003      # two sigma


def test_latents_are_reproducible_and_prefix_stable():
    a = latents_for_seed(42, 8, 130)
    np.testing.assert_array_equal(a, latents_for_seed(42, 8, 130))
    np.testing.assert_array_equal(a[:3], latents_for_seed(42, 3, 130))
    assert not np.array_equal(a, latents_for_seed(43, 8, 130))
    # An odd total draws one extra pair and drops its second half.
    np.testing.assert_array_equal(latents_for_seed(5, 1, 3)[0], latents_for_seed(5, 1, 4)[0, :3])


def test_interpolation_endpoints_and_norm():
    a, b = latents_for_seed(1, 2, 512)
    for mode in ("slerp", "linear"):
        frames = interpolate_latents(a, b, 5, mode)
        assert frames.shape == (5, 512)
        np.testing.assert_allclose(frames[0], a, atol=1e-6)
        np.testing.assert_allclose(frames[-1], b, atol=1e-6)
    middle_norm = np.linalg.norm(interpolate_latents(a, b, 3, "slerp")[1])
    linear_norm = np.linalg.norm(interpolate_latents(a, b, 3, "linear")[1])
    # Slerp keeps the Gaussian shell's radius; the straight line cuts inside it.
    assert middle_norm == pytest.approx((np.linalg.norm(a) + np.linalg.norm(b)) / 2, rel=0.02)
    assert linear_norm < 0.8 * middle_norm
    with pytest.raises(ValueError):
        interpolate_latents(a, b, 1)


# ---- truncation and variations ------------------------------------------------------------

_MASK64 = 2 ** 64 - 1


def _float32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _mix(x):
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _stated_normals(seed):
    """SEED_TO_Z's normals one at a time, in plain Python (independent of numpy)."""
    state = seed & _MASK64

    def uniform():
        nonlocal state
        state = (state + 0x9E3779B97F4A7C15) & _MASK64
        return ((_mix(state) >> 11) + 1) / 2.0 ** 53
    while True:
        r = math.sqrt(-2.0 * math.log(uniform()))
        t = 2.0 * math.pi * uniform()
        yield _float32(r * math.cos(t))
        yield _float32(r * math.sin(t))


def _stated_first_output(seed):
    return _mix((seed + 0x9E3779B97F4A7C15) & _MASK64)


def _stated_truncation(seed, total, t):
    """TRUNCATION's description, step by step: entries in order, one stream."""
    values = _stated_normals(seed)
    stream = _stated_normals(_stated_first_output((seed & _MASK64) ^ TRUNCATION_TAG))
    out = []
    for _ in range(total):
        n = next(values)
        while abs(n) > t:
            n = next(stream)
        out.append(n)
    return out


def _vector(strings):
    return np.array([np.float32(v) for v in strings], np.float32)


def test_truncation_follows_its_stated_rule_and_test_vectors():
    vectors = TRUNCATION["test_vectors"]
    assert _stated_first_output(1234567 ^ TRUNCATION_TAG) == int(vectors["seed 1234567: R"])
    for t in (0.5, 1.0):
        expected = _vector(vectors[f"seed 1234567, D 8, t {t}"])
        np.testing.assert_array_equal(np.array(_stated_truncation(1234567, 8, t), np.float32),
                                      expected)
        np.testing.assert_array_equal(latents_for_seed(1234567, 1, 8, t)[0], expected)
    for seed, num, dim, t in [(0, 1, 512, 0.7), (7, 3, 130, 0.5), (2 ** 64 - 1, 1, 64, 2.0),
                              (5, 2, 256, 0.05)]:
        stated = np.array(_stated_truncation(seed, num * dim, t), np.float32)
        np.testing.assert_array_equal(latents_for_seed(seed, num, dim, t).reshape(-1), stated)


def test_truncation_off_is_todays_latents_and_bounds_the_rest():
    plain = latents_for_seed(3, 4, 8192)
    for off in (None, math.inf, 1e9):
        np.testing.assert_array_equal(latents_for_seed(3, 4, 8192, off), plain)
    for t in (2.0, 1.0, 0.5):
        z = latents_for_seed(3, 4, 8192, t)
        within = np.abs(plain) <= t
        np.testing.assert_array_equal(z[within], plain[within])      # kept bit for bit
        assert np.abs(z).max() <= t
        # N(0, 1) conditioned on |n| <= t: variance 1 - 2 t phi(t) / (2 Phi(t) - 1).
        inside = math.erf(t / math.sqrt(2.0))
        variance = 1 - 2 * t * math.exp(-t * t / 2) / math.sqrt(2 * math.pi) / inside
        assert abs(np.mean(~within) - (1 - inside)) < 0.01
        assert abs(z.var() - variance) < 0.02 * variance
    # Latent i does not depend on how many are made after it.
    np.testing.assert_array_equal(latents_for_seed(9, 5, 300, 0.7)[:2],
                                  latents_for_seed(9, 2, 300, 0.7))


@pytest.mark.parametrize("bad", [0.0, -1.0, 0.049, math.nan])
def test_truncation_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="truncation must be at least 0.05"):
        latents_for_seed(0, 1, 8, bad)


def test_variations_follow_their_stated_rule_and_test_vectors():
    vectors = VARIATION["test_vectors"]
    seeds = [_stated_first_output(((1234567 ^ VARIATION_TAG) + k * 0x9E3779B97F4A7C15)
                                  & _MASK64) for k in range(3)]
    assert seeds == [variation_seed(1234567, k) for k in range(3)] == [
        int(v) for v in vectors["seed 1234567: V_0, V_1, V_2"]]
    for name, t in (("off", None), ("1.0", 1.0)):
        a = latents_for_seed(1234567, 1, 8, t)[0]
        b = latents_for_seed(seeds[2], 1, 8, t)[0]
        c = math.sqrt(1 - 0.3 * 0.3)
        stated = np.array([_float32(c * float(x) + 0.3 * float(y)) for x, y in zip(a, b)],
                          np.float32)
        expected = _vector(vectors[f"seed 1234567, D 8, k 2, s 0.3, t {name}"])
        np.testing.assert_array_equal(stated, expected)
        np.testing.assert_array_equal(variation_latents(1234567, 3, 8, 0.3, t)[2], expected)


def test_variations_stay_standard_normal_and_near_their_seed():
    seed, dim = 11, 8192
    base = latents_for_seed(seed, 1, dim)[0]
    np.testing.assert_array_equal(variation_latents(seed, 2, dim, 0.0), np.stack([base, base]))
    np.testing.assert_array_equal(variation_latents(seed, 3, dim, 1.0)[2],
                                  latents_for_seed(variation_seed(seed, 2), 1, dim)[0])
    for s in (0.1, 0.3, 0.7):
        z = variation_latents(seed, 4, dim, s)
        assert abs(z.std() - 1.0) < 0.02
        # Correlation with the seed's latent is sqrt(1 - s^2); between variations 1 - s^2.
        assert abs(np.corrcoef(z[0], base)[0, 1] - math.sqrt(1 - s * s)) < 0.02
        assert abs(np.corrcoef(z[1], z[2])[0, 1] - (1 - s * s)) < 0.03
    with pytest.raises(ValueError, match="from 0 to 1"):
        variation_latents(seed, 1, dim, 1.5)


# ---- models -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(run directory, export folder) of a tiny run past its 16x16 fade."""
    from mel_tf.deploy.export import export_generator
    root = tmp_path_factory.mktemp("generate")
    logdir = str(root / "run")
    make_run_dir(logdir, PAST_16X16_FADE)
    export_generator(logdir, str(root / "export"), tflite=True)
    return logdir, str(root / "export")


def test_load_model_accepts_every_form(exported):
    logdir, out = exported
    z = latents_for_seed(0, 3, load_model(logdir).latent_dim)
    results = {}
    for name, path in [("run", logdir), ("export", out),
                       ("saved_model", os.path.join(out, "saved_model")),
                       ("tflite", os.path.join(out, "generator.tflite"))]:
        model = load_model(path)
        assert (model.latent_dim, model.resolution) == (z.shape[1], 16), name
        results[name] = model(z)
        assert results[name].dtype == np.uint8 and results[name].shape == (3, 16, 16, 3)
    for name, icons in results.items():
        assert np.abs(icons.astype(int) - results["run"].astype(int)).max() <= 1, name


def test_load_model_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "nowhere"))
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModelLoadError):
        load_model(str(tmp_path / "notes.txt"))
    with pytest.raises(ModelLoadError, match="no model here"):
        load_model(str(tmp_path))
    young = tmp_path / "young"
    make_run_dir(young, IN_8X8_FADE)
    with pytest.raises(ValueError, match="not finished a stage"):
        load_model(str(young))


def test_same_seed_same_icons_in_process(exported):
    logdir = exported[0]
    first = generate.generate_icons(load_model(logdir), seed=3, num=5, batch_size=2)
    again = generate.generate_icons(load_model(logdir), seed=3, num=5, batch_size=5)
    np.testing.assert_array_equal(first, again)
    other = generate.generate_icons(load_model(logdir), seed=4, num=5)
    assert not np.array_equal(first, other)


def _run_cli(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "generate.py"), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def test_command_line_is_deterministic(exported, tmp_path):
    model = os.path.join(exported[1], "generator.tflite")
    outputs = []
    for name in ("a", "b"):
        result = _run_cli(f"--model={model}", "--num=5", "--seed=11", f"--out={tmp_path / name}")
        assert result.returncode == 0, result.stderr
        outputs.append(tmp_path / name)
    names = sorted(os.listdir(outputs[0]))
    assert names == ["grid.png"] + [f"icon_{i:04d}.png" for i in range(5)]
    for name in names:
        assert (outputs[0] / name).read_bytes() == (outputs[1] / name).read_bytes(), name

    from PIL import Image
    icons = np.stack([np.asarray(Image.open(outputs[0] / f"icon_{i:04d}.png")) for i in range(5)])
    expected = generate.generate_icons(load_model(model), seed=11, num=5)
    np.testing.assert_array_equal(icons, expected)
    assert np.asarray(Image.open(outputs[0] / "grid.png")).shape == (32, 48, 3)  # 3 x 2 cells


def test_command_line_interpolation(exported, tmp_path):
    model = os.path.join(exported[1], "generator.tflite")
    result = _run_cli(f"--model={model}", "--interpolate", "--seed=11", "--seed2=12",
                      "--frames=4", f"--out={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == [f"frame_{i:04d}.png" for i in range(4)] + [
        "interpolation.gif"]
    from PIL import Image
    with Image.open(tmp_path / "interpolation.gif") as gif:
        assert gif.n_frames >= 2 and gif.size == (16, 16)
    # The first frame is exactly the seed's first icon.
    first = np.asarray(Image.open(tmp_path / "frame_0000.png"))
    np.testing.assert_array_equal(first, generate.generate_icons(load_model(model), 11, 1)[0])


def test_command_line_error_is_one_line(tmp_path):
    result = _run_cli(f"--model={tmp_path / 'nowhere'}", f"--out={tmp_path / 'out'}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("generate.py: error:")
    assert "does not exist" in result.stderr


def _pngs(folder, prefix, num):
    from PIL import Image
    return np.stack([np.asarray(Image.open(folder / f"{prefix}_{i:04d}.png")) for i in range(num)])


def test_command_line_truncation_and_variations(exported, tmp_path):
    model_path = os.path.join(exported[1], "generator.tflite")
    model = load_model(model_path)
    result = _run_cli(f"--model={model_path}", "--num=3", "--seed=11", "--truncation=0.7",
                      f"--out={tmp_path / 'trunc'}")
    assert result.returncode == 0, result.stderr
    truncated = _pngs(tmp_path / "trunc", "icon", 3)
    np.testing.assert_array_equal(truncated, model(latents_for_seed(11, 3, model.latent_dim, 0.7)))
    assert not np.array_equal(truncated, generate.generate_icons(model, 11, 3))
    result = _run_cli(f"--model={model_path}", "--num=4", "--variations_of=11",
                      "--variation_strength=0.3", "--truncation=1.5", f"--out={tmp_path / 'var'}")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "var")) == ["grid.png"] + [
        f"variation_{i:04d}.png" for i in range(4)]
    variations = _pngs(tmp_path / "var", "variation", 4)
    np.testing.assert_array_equal(variations,
                                  model(variation_latents(11, 4, model.latent_dim, 0.3, 1.5)))
    assert len({icon.tobytes() for icon in variations}) == 4
    # Strength 0 is the seed's own icon, four times.
    result = _run_cli(f"--model={model_path}", "--num=2", "--variations_of=11",
                      "--variation_strength=0", f"--out={tmp_path / 'zero'}")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(_pngs(tmp_path / "zero", "variation", 2),
                                  np.repeat(generate.generate_icons(model, 11, 1), 2, axis=0))


@pytest.mark.parametrize("args,message", [
    (["--truncation=0.01"], "truncation must be at least 0.05"),
    (["--truncation=nan"], "truncation must be at least 0.05"),
    (["--interpolate", "--variations_of=3"], "cannot be combined")])
def test_command_line_control_errors_are_one_line(exported, tmp_path, args, message):
    model_path = os.path.join(exported[1], "generator.tflite")
    result = _run_cli(f"--model={model_path}", *args, f"--out={tmp_path / 'out'}")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("generate.py: error:") and message in last
    assert not (tmp_path / "out").exists()


def test_tflite_generation_with_controls_never_imports_tensorflow(exported, tmp_path):
    model_path = os.path.join(exported[1], "generator.tflite")
    code = ("import sys\nfrom mel_tf.cli import generate\n"
            f"sys.argv = ['mel-generate', '--model={model_path}', '--variations_of=3', "
            f"'--truncation=0.7', '--num=2', '--out={tmp_path}']\n"
            "try:\n    generate.run()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('tensorflow' in sys.modules, len(sys.argv))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("False")
    assert sorted(os.listdir(tmp_path)) == ["grid.png", "variation_0000.png", "variation_0001.png"]


# ---- test vectors for ports (--print_latents) ------------------------------------------------

_SHOWN = ["0", "1", "2", "3", "7"]       # of a latent of 8: the first four and the last


def test_latent_test_vectors_show_the_rules_test_vectors():
    vectors = latent_test_vectors(1234567, 2, 8, truncation=0.5)
    assert (vectors["seed"], vectors["latent_dim"], vectors["num"], vectors["truncation"]) == (
        "1234567", 8, 2, 0.5)
    assert vectors["resample_seed"] == TRUNCATION["test_vectors"]["seed 1234567: R"]
    # 16 normals take x_1 .. x_16; the first three are SEED_TO_Z's test vector.
    assert vectors["splitmix64"] == {"1": "6457827717110365317", "2": "3203168211198807973",
                                     "3": "9817491932198370423", "4": "4593380528125082431",
                                     "16": str(splitmix64(1234567, 16)[15])}
    expected = TRUNCATION["test_vectors"]["seed 1234567, D 8, t 0.5"]
    assert vectors["latents"][0] == {"index": 0, "entries": {
        i: expected[int(i)] for i in _SHOWN}}
    second = latents_for_seed(1234567, 2, 8, 0.5)[1]
    assert vectors["latents"][1]["entries"] == {i: float32_text(second[int(i)]) for i in _SHOWN}

    vectors = latent_test_vectors(1234567, 3, 8, variation_strength=0.3)
    assert vectors["truncation"] is None and "resample_seed" not in vectors
    assert vectors["variation_strength"] == 0.3
    # Variations read only latent 0 of the seed: x_1 .. x_8.
    assert list(vectors["splitmix64"]) == ["1", "2", "3", "4", "8"]
    assert [v["variation_seed"] for v in vectors["latents"]] == VARIATION["test_vectors"][
        "seed 1234567: V_0, V_1, V_2"]
    expected = VARIATION["test_vectors"]["seed 1234567, D 8, k 2, s 0.3, t off"]
    assert vectors["latents"][2]["entries"] == {i: expected[int(i)] for i in _SHOWN}


def test_latent_test_vectors_of_odd_and_short_latents():
    vectors = latent_test_vectors(-1, 3, 3)
    assert vectors["seed"] == str(2 ** 64 - 1)
    # 9 normals draw 5 pairs: x_1 .. x_10.
    assert vectors["splitmix64"]["10"] == str(splitmix64(2 ** 64 - 1, 10)[9])
    assert len(vectors["splitmix64"]) == 5
    z = latents_for_seed(-1, 3, 3)
    for i, latent in enumerate(vectors["latents"]):
        assert latent["entries"] == {str(j): float32_text(z[i, j]) for j in range(3)}
    # Every text reads back as its float32 exactly.
    assert np.float32(float32_text(z[2, 2])) == z[2, 2]
    assert [float32_text(x) for x in (1.0, -0.0, 1e-6)] == ["1.0", "-0.0", "0.000001"]


def test_command_line_prints_latents_without_a_model():
    result = _run_cli("--print_latents", "--latent_dim=8", "--seed=1234567", "--num=2",
                      "--truncation=0.5")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == latent_test_vectors(1234567, 2, 8, 0.5)
    result = _run_cli("--print_latents", "--latent_dim=8", "--variations_of=1234567", "--num=3",
                      "--variation_strength=0.3", "--truncation=1.0")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    expected = VARIATION["test_vectors"]["seed 1234567, D 8, k 2, s 0.3, t 1.0"]
    assert printed["latents"][2]["entries"] == {i: expected[int(i)] for i in _SHOWN}
    assert printed == latent_test_vectors(1234567, 3, 8, 1.0, 0.3)


def test_command_line_prints_latents_of_a_models_size(exported, tmp_path):
    model_path = os.path.join(exported[1], "generator.tflite")
    result = subprocess.run([sys.executable, os.path.join(REPO, "generate.py"), "--print_latents",
                             f"--model={model_path}", "--seed=5", "--num=2"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["latent_dim"] == load_model(model_path).latent_dim == 128
    assert printed == latent_test_vectors(5, 2, 128)
    assert list(printed["latents"][1]["entries"]) == ["0", "1", "2", "3", "127"]
    assert os.listdir(tmp_path) == []          # no PNGs, no grid


@pytest.mark.parametrize("args,message", [
    (["--print_latents"], "from --model or from --latent_dim"),
    (["--print_latents", "--latent_dim=8", "--model=m.tflite"], "from --model or from --latent_dim"),
    (["--print_latents", "--latent_dim=8", "--out=x"], "writes no files"),
    (["--print_latents", "--latent_dim=8", "--interpolate"], "not an interpolation"),
    (["--print_latents", "--latent_dim=8", "--truncation=0.01"], "at least 0.05"),
    (["--out=x"], "--model and --out are required"),
    (["--model=m.tflite"], "--model and --out are required"),
    (["--latent_dim=8", "--model=m.tflite", "--out=x"], "goes with --print_latents only")])
def test_command_line_print_latents_errors_are_one_line(args, message):
    result = _run_cli(*args)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("generate.py: error:") and message in lines[0]
