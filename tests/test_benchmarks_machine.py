"""benchmarks.machine: the interleaved timing and the per-resolution driver that every
speed benchmark shares. No test asserts a speed."""

import json

from benchmarks import machine


def test_interleaved_warms_up_then_takes_turns():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("a", "b")}
    times = machine.interleaved(fns, rounds=3, per_round=2, warmup=1)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3
    assert {name: len(t) for name, t in times.items()} == {"a": 6, "b": 6}
    assert all(s >= 0 for t in times.values() for s in t)


def test_seconds_summary_is_median_and_fastest():
    assert machine.seconds_summary([0.3, 0.1, 0.2, 0.5]) == {"median_s": 0.25, "min_s": 0.1}


def test_per_resolution_child_prints_its_result_for_the_parent(capsys):
    assert machine.per_resolution("benchmarks.none", 16, "4,8", lambda r: {"resolution": r,
                                                                          "s": r / 8}) is None
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(machine.RESULT_MARK)
    assert json.loads(line[len(machine.RESULT_MARK):]) == {"resolution": 16, "s": 2.0}


def test_result_header_names_the_benchmark_and_its_command():
    header = machine.result_header("benchmarks.xla_ab", threads=2)
    assert header["benchmark"] == "xla_ab" and header["threads"] == 2
    assert header["command"].startswith("python -m benchmarks.xla_ab")
    assert len(header["date"]) == 10 and header["date"][4] == "-"


def test_median_ratio_pairs_the_rounds():
    assert machine.median_ratio([2.0, 9.0, 3.0], [1.0, 3.0, 1.0]) == 3.0
