"""mel_tf.training.estimate: the CPU time of a run from the measured step table."""

import json

import pytest

from mel_tf import config
from mel_tf.training import estimate
from mel_tf.training.schedule import schedule_for


def write_table(path, floor, seconds=1.0, overhead=0.25):
    table = {"machine": "test CPU", "date": "2026-01-01", "threads": 2, "source": "test",
             "channel_floor": {"0.5": floor},
             "seconds": {"0.5": {str(r): seconds for r in config.resolutions_up_to(256)}},
             "overhead_s_per_step": overhead}
    path.write_text(json.dumps(table))


def steps_of(net, train):
    return sum(p.images / p.batch_size for p in schedule_for(net, train).phases)


def test_the_networks_timed_cost_the_table_seconds_and_others_are_scaled_by_flops(
        tmp_path, monkeypatch):
    monkeypatch.setattr(estimate, "STEP_SECONDS_FILE", str(tmp_path / "table.json"))
    train = config.TrainConfig(fade_images=800, stable_images=800)
    wide = config.NetworkConfig()                        # widen_to_floor: 8 channels at 256
    narrow = wide.replace(widen_to_floor=False)
    steps = steps_of(wide, train)
    write_table(tmp_path / "table.json", {"min_channels": 8, "widen_to_floor": True})
    assert estimate.cpu_seconds(wide, train) == pytest.approx(steps * 1.25)
    # The narrow 256x256 block has fewer FLOPs: its two 256 phases (100 steps each, the
    # fade and the stable phase) are scaled down by the FLOP ratio; the others are equal.
    ratios = [estimate.iteration_gflops(narrow, 256, fading, 8)
              / estimate.iteration_gflops(wide, 256, fading, 8) for fading in (True, False)]
    assert all(0.7 < r < 0.9 for r in ratios), ratios
    assert estimate.cpu_seconds(narrow, train) == pytest.approx(
        steps * 1.25 - sum(100 * (1 - r) for r in ratios))
    write_table(tmp_path / "table.json", {"min_channels": 8, "widen_to_floor": False})
    assert estimate.cpu_seconds(narrow, train) == pytest.approx(steps * 1.25)
    assert estimate.cpu_seconds(wide, train) > steps * 1.25


def test_the_shipped_table_timed_the_networks_the_readme_quotes():
    """Full width is the source's networks (mel256), half width the defaults: their
    times in the README are measured, not scaled."""
    table = estimate.step_table()
    for width, net in (("1.0", config.source_networks()), ("0.5", config.NetworkConfig())):
        assert table["channel_floor"][width] == net.channel_floor(), width
