"""evaluate.py end to end on a tiny run."""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import PAST_16X16_FADE, REPO, make_run_dir


def test_evaluate_prints_one_json_object(tmp_path):
    logdir, data_dir = tmp_path / "run", tmp_path / "icons"
    make_run_dir(logdir, PAST_16X16_FADE)
    data_dir.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(data_dir / f"{i}.png")
    out = tmp_path / "scores.json"
    cmd = [sys.executable, os.path.join(REPO, "evaluate.py"), f"--logdir={logdir}",
           f"--data_dir={data_dir}", "--num_images=16", f"--out={out}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads(result.stdout)
    assert scores == json.loads(out.read_text())
    assert set(scores["swd"]) == {"16", "avg"} and scores["swd"]["avg"] > 0
    assert scores["num_images"] == 16 and scores["resolution"] == 16
    # Random noise against an untrained generator: both sets are diverse, neither is 1.
    assert 0 <= scores["ms_ssim_real"] < 0.5 and 0 <= scores["ms_ssim_fake"] < 1
    assert "fid" not in scores and "kid" not in scores      # no Inception file given


def test_evaluate_needs_exactly_one_model_source(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(REPO, "evaluate.py"),
                             f"--logdir={tmp_path}", f"--model={tmp_path}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "evaluate.py: error: give exactly one of --logdir and --model")


def test_evaluate_copy_check_finds_the_generators_own_icons_among_the_reals(tmp_path):
    from mel_tf.deploy.seeds import latents_for_seed
    from mel_tf.deploy.serving import load_model

    logdir, data_dir = tmp_path / "run", tmp_path / "icons"
    make_run_dir(logdir, PAST_16X16_FADE)
    model = load_model(str(logdir))
    # The first 4 icons evaluate.py will generate (seed 0; the 20 scored ones make one
    # batch, as there), saved as the first 4 of 20 real icons; the other 16 are noise.
    own = model(latents_for_seed(0, 20, model.latent_dim))[:4]
    noise = np.random.default_rng(0).integers(0, 256, (19, 16, 16, 3), dtype=np.uint8)
    data_dir.mkdir()
    for i, icon in enumerate(np.concatenate([own, noise[:16]])):
        Image.fromarray(icon).save(data_dir / f"{i:02d}.png")
    held_out = tmp_path / "held_out"             # 3 more noise icons, not trained on
    held_out.mkdir()
    for i, icon in enumerate(noise[16:]):
        Image.fromarray(icon).save(held_out / f"{i}.png")
    grid = tmp_path / "closest.png"
    cmd = [sys.executable, os.path.join(REPO, "evaluate.py"), f"--logdir={logdir}",
           f"--data_dir={data_dir}", "--num_images=24", f"--copy_check={grid}",
           f"--held_out_dir={held_out}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads(result.stdout)
    check = scores["copy_check"]
    assert scores["num_images"] == 20                        # SWD: as many as the reals
    assert check["generated"]["count"] == 24 and check["reference"]["count"] == 3
    assert check["reference"]["kind"] == "held_out" and check["held_out_dir"] == str(held_out)
    # Two uniform noise icons differ by 1 / sqrt(6) = 0.41 RMS on average.
    assert check["reference"]["min"] > 0.3
    assert check["closest"][:4] == [{"generated": i, "training": i, "distance": 0.0}
                                    for i in range(4)]
    assert check["generated"]["min"] == 0.0 and check["generated"]["near_copies"] >= 4 / 24
    assert len(check["closest"]) == 16 and check["grid"] == str(grid)
    # One pair a row, cells enlarged to 64 px: generated | nearest real icon.
    pairs = np.asarray(Image.open(grid))
    assert pairs.shape == (16 * 64, 2 * 64, 3)
    np.testing.assert_array_equal(pairs[:4 * 64, :64], pairs[:4 * 64, 64:])
    assert not np.array_equal(pairs[4 * 64:, :64], pairs[4 * 64:, 64:])


def test_evaluate_copy_check_flag_errors(tmp_path):
    def error(*flags):
        result = subprocess.run([sys.executable, os.path.join(REPO, "evaluate.py"),
                                 f"--logdir={tmp_path}", *flags],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 1
        return result.stderr.strip().splitlines()[-1]

    assert error(f"--held_out_dir={tmp_path}") == (
        "evaluate.py: error: --held_out_dir is the copy check's reference; give --copy_check too")
    assert error(f"--copy_check={tmp_path}/no/closest.png") == (
        f"evaluate.py: error: --copy_check: no folder {tmp_path}/no for the PNG")
    assert error(f"--copy_check={tmp_path}/closest.png", f"--held_out_dir={tmp_path}/none") == (
        f"evaluate.py: error: --held_out_dir: no folder {tmp_path}/none")
