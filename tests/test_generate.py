"""Seeds -> latents (pinned to SplitMix64's published outputs), interpolation,
loading every kind of model, and deterministic icons from the command line."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import IN_8X8_FADE, PAST_16X16_FADE, REPO, make_run_dir
from mel_tf.deploy import generate
from mel_tf.deploy.seeds import interpolate_latents, latents_for_seed, splitmix64
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
