"""research/study_report.py on synthetic timelines of the 256x256 study's schedule."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO

SCRIPT = ("-m", "research.study_report")


def row(step, seconds, resolution=None, avg=None, finest=None):
    """A timeline line; scored (SWD at every level = avg, the finest = `finest`) when
    a resolution is given."""
    line = {"step": step, "images": 8 * step, "train_seconds": seconds,
            "cpu_seconds": seconds + 1}
    if resolution is not None:
        levels = [resolution // 2 ** i for i in range(int(np.log2(resolution // 16)) + 1)]
        swd = {str(level): avg for level in levels}
        swd[str(resolution)] = avg if finest is None else finest
        swd["avg"] = avg
        line.update(resolution=resolution, alpha=1.0, swd=swd, ms_ssim_fake=0.2,
                    ms_ssim_real=0.15)
    return line


def at_128(steps, seconds, avgs):
    return [row(s, t, 128, a) for s, t, a in zip(steps, seconds, avgs)]


def write_run(runs, name, rows, cut_line=False):
    os.makedirs(runs / name)
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if cut_line:                       # a run writing its next line right now
        text += '{"step": 9'
    (runs / name / "timeline.jsonl").write_text(text)


@pytest.fixture
def study(tmp_path):
    """Two source runs (128: final SWD avg 50 and 70 at step 7,000 after 14,000 and
    16,000 s), two finished half-width runs and one full-width run still at 128."""
    runs = tmp_path / "runs"
    steps = [5250, 5500, 5750, 6000]
    write_run(runs, "source_seed0", [row(1000, 100), row(5000, 900, 64, 40, finest=60)]
              + at_128(steps + [7000], [1e4, 11e3, 12e3, 13e3, 14e3], [90, 80, 70, 60, 50]))
    write_run(runs, "source_seed1", [row(5000, 1000, 64, 44, finest=80)]
              + at_128(steps + [7000], [1e4, 11e3, 12e3, 13e3, 16e3], [95, 85, 80, 75, 70]))
    past_128 = [row(7000, 5000, 256, 45), row(8000, 6000, 256, 40)]
    write_run(runs, "mel_tf_seed_w0.5_seed0", [row(5000, 1500, 64, 30, finest=35)]
              + at_128(steps, [3000, 3300, 3600, 3900], [80, 65, 58, 55]) + past_128)
    write_run(runs, "mel_tf_seed_w0.5_seed1", [row(5000, 1600, 64, 33, finest=49)]
              + at_128(steps, [3100, 3400, 3700, 4000], [90, 80, 75, 70]) + past_128)
    write_run(runs, "mel_tf_seed0", [row(5000, 2500, 64, 50)]
              + at_128(steps[:2], [5000, 5600], [100, 95]), cut_line=True)
    floor = tmp_path / "real_floor_128.json"
    floor.write_text(json.dumps({"resolution": 128, "splits": [
        {"swd": {"128": 8.0, "64": 9.0, "32": 10.0, "16": 20.0, "avg": 11.75}},
        {"swd": {"128": 10.0, "64": 9.0, "32": 12.0, "16": 22.0, "avg": 13.25}}]}))
    return tmp_path, runs, floor


def report(tmp_path, *args):
    return subprocess.run([sys.executable, *SCRIPT, *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def test_ratios_at_equal_images_and_the_floor(study):
    tmp_path, runs, floor = study
    result = report(tmp_path, f"--runs={runs}", f"--out={tmp_path / 'out'}",
                    f"--real_floor={floor}")
    assert result.returncode == 0, result.stderr
    figures = json.loads((tmp_path / "out" / "report.json").read_text())
    ends = {(e["step"], e["resolution"]): e for e in figures["phase_ends"]}
    assert sorted(ends) == [(5000, 64), (6000, 128), (7000, 128), (7000, 256), (8000, 256)]
    at_64 = ends[(5000, 64)]
    assert at_64["images"] == 40000 and len(at_64["runs"]) == 5
    assert at_64["means"]["source"]["swd"]["64"] == 70                  # (60 + 80) / 2
    assert at_64["ratios"]["mel_tf_seed_w0.5"]["64"] == pytest.approx(42 / 70)
    assert at_64["ratios"]["mel_tf_seed_w0.5"]["avg"] == pytest.approx(31.5 / 42)
    assert at_64["ratios"]["mel_tf"]["avg"] == pytest.approx(50 / 42)
    assert at_64["floor"] is None                        # no 64x64 floor given
    at_128 = ends[(6000, 128)]
    assert at_128["ratios"]["mel_tf_seed_w0.5"]["avg"] == pytest.approx(62.5 / 67.5)
    assert "mel_tf" not in at_128["means"]               # the full-width run is not there yet
    assert at_128["floor"] == {"128": 9.0, "64": 9.0, "32": 11.0, "16": 21.0, "avg": 12.5}
    # Step 7,000: the source at 128 and mel_tf at 256 are not compared.
    assert ends[(7000, 128)]["ratios"] == {} and ends[(7000, 256)]["ratios"] == {}
    text = (tmp_path / "out" / "report.md").read_text()
    assert text in result.stdout
    assert "| mel_tf_seed_w0.5 / source | 0.93x | 0.93x | 0.93x | 0.93x | 0.93x |" in text
    assert "| reals' floor | 9.0 | 9.0 | 11.0 | 21.0 | 12.5 |" in text


def test_time_to_quality(study):
    tmp_path, runs, floor = study
    result = report(tmp_path, f"--runs={runs}", f"--out={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr
    ttq = json.loads((tmp_path / "out" / "report.json").read_text())["time_to_quality"]
    assert ttq["resolution"] == 128 and ttq["target"] == 60        # (50 + 70) / 2
    assert ttq["source_seconds"] == 15000 and ttq["source_final_steps"] == [7000, 7000]
    assert ttq["source_done"] is True and "PROVISIONAL" not in result.stdout
    first = ttq["runs"]["mel_tf_seed_w0.5_seed0"]                  # 58 <= 60 at step 5,750
    assert first == {"reached": True, "step": 5750, "swd_avg": 58,
                     "train_seconds": 3600, "ratio": pytest.approx(0.24)}
    never = ttq["runs"]["mel_tf_seed_w0.5_seed1"]
    assert never == {"reached": False, "past_resolution": True, "best_swd_avg": 70,
                     "best_step": 6000, "last_step": 8000}
    running = ttq["runs"]["mel_tf_seed0"]                          # its cut last line left out
    assert running == {"reached": False, "past_resolution": False, "best_swd_avg": 95,
                       "best_step": 5500, "last_step": 5500}
    text = result.stdout
    assert ("mel_tf_seed_w0.5_seed0: at or under it at step 5,750 (SWD avg 58.0) after "
            "3,600 s: 0.24x the source's time.") in text
    assert "mel_tf_seed_w0.5_seed1: NEVER reached it: its 128x128 phase is over" in text
    assert "mel_tf_seed0: not reached yet (still running, step 5,500)" in text


def test_time_to_quality_is_provisional_while_the_source_is_at_its_resolution(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "source_seed0", at_128([5250, 5500, 6500], [1e4, 11e3, 14e3], [90, 80, 66]))
    write_run(runs, "mel_tf_seed_w0.5_seed0", at_128([5250, 5500], [3000, 3500], [70, 64]))
    result = report(tmp_path, f"--runs={runs}", f"--out={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr
    ttq = json.loads((tmp_path / "out" / "report.json").read_text())["time_to_quality"]
    assert ttq["target"] == 66 and ttq["source_done"] is False
    assert ttq["runs"]["mel_tf_seed_w0.5_seed0"]["ratio"] == pytest.approx(3500 / 14000)
    assert "PROVISIONAL: a source run is still at 128x128" in result.stdout


def test_the_plot_has_a_panel_per_resolution_and_level(study):
    tmp_path, runs, floor = study
    result = report(tmp_path, f"--runs={runs}", f"--out={tmp_path / 'out'}",
                    f"--real_floor={floor}", "--plot_resolutions=64,128")
    assert result.returncode == 0, result.stderr
    image = np.asarray(Image.open(tmp_path / "out" / "quality_vs_time.png"))
    assert image.shape[1] == 2 * 440 and image.shape[0] > 2 * 300
    # Every run's colour is drawn (legend and lines).
    for colour in [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14),
                   (148, 103, 189)]:
        assert np.sum(np.all(image == colour, axis=2)) > 200, colour


def test_errors_are_one_line_and_the_runs_are_never_written(study):
    tmp_path, runs, floor = study
    result = report(tmp_path, f"--runs={runs}", f"--out={runs / 'report'}")
    assert result.returncode == 1 and not (runs / "report").exists()
    assert result.stderr.strip().splitlines() == [
        f"study_report.py: error: --out {runs / 'report'} is inside --runs {runs}, "
        "which is only read"]
    result = report(tmp_path, f"--runs={tmp_path / 'none'}", f"--out={tmp_path / 'out'}")
    assert result.stderr.strip().splitlines() == [
        f"study_report.py: error: --runs: no folder {tmp_path / 'none'}"]


def test_every_step_both_scored_against_the_source(study):
    """The fades' points too, not only the phase ends; each run's avg over the source's mean."""
    tmp_path, runs, floor = study
    result = report(tmp_path, f"--runs={runs}", f"--out={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr
    versus = json.loads((tmp_path / "out" / "report.json").read_text())["versus_source"]
    half = versus["mel_tf_seed_w0.5"]
    # Both scored at 5,000 (64) and 5,250-6,000 (128); 7,000 is 128 for the source only.
    assert [(v["step"], v["resolution"]) for v in half] == [
        (5000, 64), (5250, 128), (5500, 128), (5750, 128), (6000, 128)]
    at_5500 = half[2]
    assert at_5500["ratio"]["avg"] == pytest.approx((65 + 80) / (80 + 85))
    assert at_5500["per_run"] == pytest.approx({"mel_tf_seed_w0.5_seed0": 65 / 82.5,
                                                "mel_tf_seed_w0.5_seed1": 80 / 82.5})
    assert half[0]["ratio"]["64"] == pytest.approx((35 + 49) / (60 + 80))
    assert [v["step"] for v in versus["mel_tf"]] == [5000, 5250, 5500]
    assert "| 44,000, 128x128 | " in result.stdout and "0.88x" in result.stdout
