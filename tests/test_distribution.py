"""Distribution strategies: MirroredStrategy on two logical CPUs, and
MultiWorkerMirroredStrategy with two worker processes on 127.0.0.1 and one run directory."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import REPO

# The tiny run both scripts train: 16 random 8x8 icons, 12 steps of batch 4.
TINY_RUN = textwrap.dedent("""
    import sys, numpy as np, tensorflow as tf
    from mel_tf.config import Execution, LoopOptions, TrainConfig, preset
    from mel_tf.training.data import ImageSet, LoadReport
    from mel_tf.training.loop import train
    rng = np.random.default_rng(0)
    images = ImageSet([rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(16)],
                      LoadReport("synthetic", 16))
    # MiniBatchStd groups of 2 lie inside each replica's (worker's) half of a batch of 4.
    net = preset("seed", 8, width=1 / 64, mbstd_group_size=2)
    tc = TrainConfig(fade_images=16, stable_images=16, batch_size=4)

    def all_weights(result):
        model = result["model"]
        return [w.numpy() for w in model.generator.weights + model.discriminator.weights]
""")

WORKER_SCRIPT = TINY_RUN + textwrap.dedent("""
    logdir, out, stop = sys.argv[1], sys.argv[2], int(sys.argv[3])
    opts = LoopOptions(progress=False, sample_every_images=8, checkpoint_every_images=0,
                       stop_after_steps=stop or None)
    strategy = (tf.distribute.MultiWorkerMirroredStrategy() if "TF_CONFIG" in __import__("os").environ
                else tf.distribute.get_strategy())
    result = train(net, tc, images, logdir, strategy=strategy, options=opts,
                   execution=Execution(xla=False))
    np.savez(out, step=result["step"], *all_weights(result))
""")


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run_workers(script, logdir, tmp_path, tag, stop):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = dict(os.environ, PYTHONPATH=REPO, TMPDIR=str(tmp_path / "tmp"), TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, str(script), str(logdir), str(tmp_path / f"{tag}{index}.npz"),
             str(stop)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err[-4000:]
    return [np.load(tmp_path / f"{tag}{index}.npz") for index in range(2)]


def test_two_workers_write_one_run_directory_that_resumes(tmp_path, mirrored_run):
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    logdir = tmp_path / "run"
    (tmp_path / "tmp").mkdir()
    # Stopped after 5 steps (inside the 8x8 fade), then resumed to the end: 12 steps.
    _run_workers(script, logdir, tmp_path, "part", stop=5)
    # The end of the 4x4 phase (step 4) and the stop (step 5): the chief's only.
    assert sorted(os.listdir(logdir / "checkpoints")) == [
        "checkpoint", "ckpt-4.data-00000-of-00001", "ckpt-4.index",
        "ckpt-5.data-00000-of-00001", "ckpt-5.index"]
    workers = _run_workers(script, logdir, tmp_path, "rest", stop=0)
    # Only the chief wrote: one events file per start, its checkpoints, its samples.
    names = sorted(os.listdir(logdir))
    assert [n for n in names if not n.startswith("events.out")] == [
        "checkpoints", "config.json", "samples"], names
    assert len([n for n in names if n.startswith("events.out")]) == 2
    assert len(os.listdir(logdir / "samples")) == 48 // 8
    # The other worker's checkpoints went to a temporary directory, since removed.
    assert not [d for d in os.listdir(tmp_path / "tmp") if d.startswith("mel_tf_worker_")]
    # Both workers hold the same weights, those of one device trained without a stop.
    one = np.load(mirrored_run[0] / "one.npz")
    assert int(workers[0]["step"]) == int(workers[1]["step"]) == int(one["step"]) == 12
    keys = [k for k in one.files if k != "step"]
    for key in keys:
        np.testing.assert_array_equal(workers[0][key], workers[1][key])
        np.testing.assert_allclose(workers[0][key], one[key], rtol=1e-4, atol=1e-4)


MIRRORED_SCRIPT = textwrap.dedent("""
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
""") + TINY_RUN + textwrap.dedent("""
    # The workers' options: samples every 8 images, so that this one-device run is also
    # the reference the two-worker test compares with.
    opts = LoopOptions(progress=False, sample_every_images=8, checkpoint_every_images=0)
    one = train(net, tc, images, sys.argv[1] + "/one", options=opts,
                execution=Execution(xla=False))
    np.savez(sys.argv[1] + "/one.npz", step=one["step"], *all_weights(one))
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    two = train(net, tc, images, sys.argv[1] + "/two", strategy=strategy, options=opts)
    assert one["step"] == two["step"] == 12, (one["step"], two["step"])
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(all_weights(one), all_weights(two)))
    print("max weight difference", worst)
    assert worst < 1e-4, worst
""")


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory):
    """The mirrored script's folder (its one-device run's weights in one.npz), run once
    for both tests."""
    folder = tmp_path_factory.mktemp("mirrored")
    script = folder / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(folder)], capture_output=True,
                            text=True, timeout=300, env=dict(os.environ, PYTHONPATH=REPO))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return folder, result.stdout


def test_mirrored_on_two_logical_devices_matches_one_device(mirrored_run):
    folder, stdout = mirrored_run
    assert "max weight difference" in stdout
    assert int(np.load(folder / "one.npz")["step"]) == 12
