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
