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


def test_time_versions_builds_each_version_and_reports_its_ratio_to_the_first():
    from benchmarks import steps

    # At quarter width G's 4x4 block has 128 -> 64 channels; a floor of 256 that
    # widens layers above full width's makes it 256 -> 256. Graph mode: built sooner than XLA.
    versions = {"default": {"jit_compile": False},
                "wide": {"jit_compile": False, "min_channels": 256, "widen_to_floor": True},
                "bf16": {"jit_compile": False, "dtype_policy": "mixed_bfloat16"}}
    result = steps.time_versions(4, ["0.25"], versions, rounds=1, per_round=1, warmup=0)
    assert result["g_block_channels"] == {"default_w0.25": (128, 64),
                                          "wide_w0.25": (256, 256), "bf16_w0.25": (128, 64)}
    for other in ("wide", "bf16"):
        assert result[f"{other}_over_default_w0.25"] == (
            result[f"{other}_w0.25"]["median_s"] / result["default_w0.25"]["median_s"])


def test_benchmarks_time_the_sources_networks_at_full_width_and_the_defaults_below():
    """Full-width figures compare with the source at equal networks, and the step table
    (source_ab) holds the networks the README's times are for."""
    from benchmarks.steps import timed_networks
    from mel_tf import config

    assert timed_networks(256, 1.0) == config.source_networks(256)
    assert timed_networks(256, 1.0).g_block_channels(256) == (8, 4)
    assert timed_networks(256, 0.5) == config.NetworkConfig()
    assert timed_networks(256, 1.0, widen_to_floor=True).g_block_channels(256) == (8, 8)
    assert (timed_networks(256, 1.0, "paper").channel_table()
            == config.preset("paper", 256, 1.0).channel_table())


def test_child_result_passes_the_environment_and_reads_the_result_line(tmp_path, monkeypatch):
    (tmp_path / "echo_env.py").write_text(
        "import os, sys\nfrom benchmarks.machine import print_result\n"
        "print('noise')\nprint_result({'arg': sys.argv[1], 'env': os.environ['MEL_AB']})\n"
        "sys.exit(int(sys.argv[2]))\n")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{machine.__file__.rsplit('/', 2)[0]}")
    assert machine.child_result("echo_env", ["x", "0"], "ok", {"MEL_AB": "7"}) == {
        "arg": "x", "env": "7"}
    try:
        machine.child_result("echo_env", ["x", "3"], "at 16", {"MEL_AB": "7"})
    except SystemExit as e:
        assert str(e).startswith("echo_env at 16: ")
    else:
        raise AssertionError("a failed child must stop the benchmark")


def test_allocator_ab_steady_state_is_per_step():
    from benchmarks.allocator_ab import steady_state

    rows = [(10.0, 100, 1.0, 0.1), (10.5, 300, 1.8, 0.3), (11.5, 500, 2.6, 0.5)]
    got = steady_state(rows)
    assert got["median_s"] == 0.75 and got["steps"] == 2
    assert got["page_faults"] == 200 and abs(got["user_s"] - 0.8) < 1e-12
    assert abs(got["kernel_s"] - 0.2) < 1e-12


def test_machine_info_names_the_cpus_vector_features():
    """Two machines both called "AMD EPYC" differ in AVX-512 and bfloat16: the JSON says which."""
    with open("/proc/cpuinfo") as f:
        listed = set(next(line for line in f if line.startswith("flags")).split(":", 1)[1].split())
    info = machine.machine_info()
    assert info["cpu_flags"] == [f for f in machine.VECTOR_FLAGS if f in listed]
    assert ("avx512_bf16" in info["cpu_flags"]) == ("avx512_bf16" in listed)
