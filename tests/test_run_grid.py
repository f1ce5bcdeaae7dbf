"""research/run_grid.py: the A/B grids of the 256x256 study, from run directories."""

import numpy as np
from PIL import Image

from conftest import IN_8X8_FADE, PAST_16X16_FADE


def test_one_row_a_run_at_its_own_stage(make_run, tmp_path):
    from research import run_grid

    runs = [make_run(PAST_16X16_FADE, name=f"seed{s}", seed=s) for s in (0, 1)]
    out = tmp_path / "grid.png"
    assert run_grid.main([f"--out={out}", *runs]) == 0
    grid = np.asarray(Image.open(out))
    assert grid.shape == (2 * 16, run_grid.ICONS * 16, 3)   # 16x16 icons, not enlarged
    first, second = grid[:16], grid[16:]
    assert np.abs(first.astype(int) - second).mean() > 1.0   # two draws, two rows
    image, label = run_grid.row(runs[0])
    np.testing.assert_array_equal(image, first)
    labels = (tmp_path / "grid.txt").read_text().splitlines()
    assert labels == [f"{r}: {PAST_16X16_FADE:,} images, 16x16, a = 1.00" for r in runs]


def test_runs_at_other_resolutions_or_missing_are_one_line_errors(make_run, tmp_path, capsys):
    from research import run_grid

    out = tmp_path / "grid.png"
    mixed = [make_run(PAST_16X16_FADE, name="a"), make_run(IN_8X8_FADE, name="b")]
    assert run_grid.main([f"--out={out}", *mixed]) == 1
    assert run_grid.main([f"--out={out}", str(tmp_path / "none")]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("run_grid.py: error: ") for e in errors)
    assert "different resolutions [8, 16]" in errors[0]
    assert not out.exists()
