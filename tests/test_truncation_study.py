"""research/truncation_study.py on a tiny untrained run: its numbers are those of
mel_tf.metrics and `mel-evaluate`, its grids hold the icons the page draws."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import PAST_16X16_FADE, REPO, make_run_dir
from mel_tf.deploy.seeds import latents_for_seed, variation_latents
from mel_tf.deploy.serving import load_model

SCRIPT = ("-m", "research.truncation_study")
NUM = 16


def _icons_folder(folder, count=24):
    """Small squares of random colours on white: real images for the metrics."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(count):
        image = np.full((16, 16, 3), 255, np.uint8)
        x, y = rng.integers(0, 8, 2)
        size = rng.integers(4, 8)
        image[y:y + size, x:x + size] = rng.integers(0, 255, 3)
        Image.fromarray(image).save(folder / f"icon_{i:02d}.png")


def _run(*args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=600)


@pytest.fixture(scope="module")
def studied(tmp_path_factory):
    root = tmp_path_factory.mktemp("truncation_study")
    logdir = root / "run"
    make_run_dir(logdir, PAST_16X16_FADE)
    _icons_folder(root / "data")
    result = _run(*SCRIPT, f"--logdir={logdir}", f"--data_dir={root / 'data'}",
                  f"--out={root / 'out'}", f"--num_images={NUM}", "--truncations=off,1.0,0.5",
                  "--strengths=0,0.5,1", "--grid_seeds=0,1")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(root / "out" / "truncation_study.json") as f:
        return root, json.load(f)


def test_rows_and_what_they_measure(studied):
    _, result = studied
    assert result["num_images"] == NUM and result["resolution"] == 16
    assert result["data"] == "data" and result["machine"]["cpu_count"] >= 1
    truncation = {row["truncation"]: row for row in result["truncation"]}
    assert list(truncation) == ["off", "1", "0.5"]
    for row in result["truncation"] + result["variation"]:
        assert row["swd"]["avg"] > 0 and 0 < row["ms_ssim_fake"] <= 1
        assert row["ms_ssim_real"] == truncation["off"]["ms_ssim_real"]     # one real set
    # Truncation changes the icons, so their scores.
    assert truncation["0.5"]["ms_ssim_fake"] != truncation["off"]["ms_ssim_fake"]
    variation = {row["strength"]: row for row in result["variation"]}
    assert list(variation) == [0.0, 0.5, 1.0]
    # Strength 0 is the seed's icon itself; strength 1 an unrelated one.
    assert variation[0.0]["ms_ssim_to_base"] == pytest.approx(1.0, abs=1e-5)
    assert variation[0.0]["ms_ssim_siblings"] == pytest.approx(1.0, abs=1e-5)
    assert variation[1.0]["ms_ssim_to_base"] < 0.9
    assert (variation[1.0]["ms_ssim_to_base"] < variation[0.5]["ms_ssim_to_base"]
            < variation[0.0]["ms_ssim_to_base"])


def test_off_row_is_what_mel_evaluate_reports(studied):
    root, result = studied
    out = root / "evaluate.json"
    evaluated = _run(os.path.join(REPO, "evaluate.py"), f"--logdir={root / 'run'}",
                     f"--data_dir={root / 'data'}", f"--num_images={NUM}", "--seed=0",
                     f"--out={out}")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    expected = json.loads(out.read_text())
    off = result["truncation"][0]
    assert off["swd"] == expected["swd"]
    assert off["ms_ssim_fake"] == expected["ms_ssim_fake"]
    assert off["ms_ssim_real"] == expected["ms_ssim_real"]


def _cell(grid, row, column, left=90, top=24, cell=64, pad=4):
    """The icon in a grid cell, back at 16x16 (cells are nearest-neighbour x4)."""
    x, y = left + column * (cell + pad), top + row * (cell + pad)
    return grid[y:y + cell:4, x:x + cell:4]


def test_grids_hold_the_pages_icons(studied):
    root, _ = studied
    model = load_model(str(root / "run"))
    dim = model.latent_dim
    grid = np.asarray(Image.open(root / "out" / "truncation_grid.png").convert("RGB"))
    assert grid.shape == (24 + 2 * 68, 90 + 3 * 68, 3)
    for row, seed in enumerate((0, 1)):
        for column, t in enumerate((None, 1.0, 0.5)):
            expected = model(latents_for_seed(seed, 1, dim, t))[0]
            np.testing.assert_array_equal(_cell(grid, row, column), expected)
    grid = np.asarray(Image.open(root / "out" / "variation_grid.png").convert("RGB"))
    assert grid.shape == (24 + 3 * 68, 90 + 7 * 68, 3)
    np.testing.assert_array_equal(_cell(grid, 1, 0), model(latents_for_seed(0, 1, dim))[0])
    np.testing.assert_array_equal(_cell(grid, 1, 3), model(variation_latents(0, 3, dim, 0.5))[2])
    plot = Image.open(root / "out" / "truncation_study.png")
    assert plot.size == (960, 640)
    colours = {c for _, c in plot.convert("RGB").getcolors(1 << 20)}
    assert (0x1f, 0x77, 0xb4) in colours and (0xd6, 0x27, 0x28) in colours   # two series drawn


def test_no_data_is_a_one_line_error(tmp_path):
    make_run_dir(tmp_path / "run", PAST_16X16_FADE)
    result = _run(*SCRIPT, f"--logdir={tmp_path / 'run'}", f"--out={tmp_path / 'out'}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "truncation_study: error: no record of the real images here: give --data_dir or "
        "--dataset")
    assert not (tmp_path / "out").exists()
