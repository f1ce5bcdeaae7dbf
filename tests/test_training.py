"""The training step and loop: EMA, resume, divergence, run directories, strategies."""

import dataclasses
import json
import logging
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import make_run_dir
from mel_tf.training import rundir
from mel_tf.config import TrainConfig, preset
from mel_tf.training.data import ImageSet, LoadReport
from mel_tf.training.schedule import schedule_for
from mel_tf.config import Execution, LoopOptions
from mel_tf.training.callbacks import TrainingDiverged
from mel_tf.training.loop import train
from mel_tf.training.networks import Generator, initialize
from mel_tf.training.progan import ProGAN, step_noise

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUIET = LoopOptions(progress=False, sample_every_images=0, checkpoint_every_images=0)
# XLA compiles each phase's step anew: slower than the step itself in these tiny runs.
NO_XLA = Execution(xla=False)


def tiny_images(n=16, size=8, seed=0):
    rng = np.random.default_rng(seed)
    sources = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]
    return ImageSet(sources, LoadReport("synthetic", n))


def tiny_run(**changes):
    net = preset("seed", 8, width=1 / 64)
    tc = TrainConfig(fade_images=32, stable_images=32, batch_size=4)
    return net, tc.replace(**changes)


def weights(variables):
    return [v.numpy().copy() for v in variables]


def batch_for(net, tc, images, step):
    """The batch the data pipeline gives at `step` (without tf.data)."""
    from mel_tf.training.data import batch_indices
    extra = step_noise(net, tc, tc.batch_size)(step)
    idx = batch_indices(len(images), tc.batch_size, tc.seed, step)
    return {"images": images[idx], "steps": np.full((tc.batch_size,), step, np.int64), **extra}


def test_train_step_moves_both_networks_and_the_ema_follows_the_rampup():
    net, tc = tiny_run()
    model = ProGAN(net, tc)
    model.set_stage(4, False)
    images = tiny_images().images(4)
    g0, d0 = weights(model.generator.trainable_variables), weights(model.discriminator.trainable_variables)
    out = model.train_step(batch_for(net, tc, images, 0))
    assert set(out) >= {"g_loss", "d_loss", "gradient_penalty", "drift", "wasserstein"}
    g1 = weights(model.generator.trainable_variables)
    changed = [not np.array_equal(a, b) for a, b in zip(g0, g1)]
    # Only the 4x4 block and its toRGB train at 4x4; the others stay as they were.
    names = [v.path for v in model.generator.trainable_variables]
    assert all(c == ("g_block_4" in n or "to_rgb_4/" in n) for c, n in zip(changed, names)), names
    assert any(not np.array_equal(a, b) for a, b in
               zip(d0, weights(model.discriminator.trainable_variables)))
    # Step 0: decay min(1 - 1/1, 0.995) = 0, so the EMA equals G.
    for e, g in zip(weights(model.generator_ema.trainable_variables), g1):
        np.testing.assert_array_equal(e, g)
    # Step 1: decay 1/2, so EMA = (G_old + G_new) / 2.
    model.train_step(batch_for(net, tc, images, 1))
    g2 = weights(model.generator.trainable_variables)
    for e, a, b in zip(weights(model.generator_ema.trainable_variables), g1, g2):
        np.testing.assert_allclose(e, 0.5 * (a + b), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The tiny run trained from start to end in one call."""
    net, tc = tiny_run()
    full = train(net, tc, tiny_images(), str(tmp_path_factory.mktemp("full") / "run"),
                 options=QUIET, execution=NO_XLA)
    assert full["done"] and full["images_shown"] == 32 * 3
    return full


def assert_same_state(a, b):
    """Two ProGAN models hold the same networks and optimizer state."""
    for x, y in zip(a.generator.weights + a.discriminator.weights + a.generator_ema.weights,
                    b.generator.weights + b.discriminator.weights + b.generator_ema.weights):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-5, atol=1e-6)
    for x, y in zip(a.g_optimizer.variables + a.d_optimizer.variables,
                    b.g_optimizer.variables + b.d_optimizer.variables):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


def cut_in_half(path):
    os.truncate(path, os.path.getsize(path) // 2)


def test_resume_mid_fade_and_after_a_damaged_checkpoint_ends_like_an_uninterrupted_run(
        tmp_path, uninterrupted, caplog):
    net, tc = tiny_run()
    images = tiny_images()
    logdir = str(tmp_path / "split")
    # Stopped after 11 steps (44 images: inside the 8x8 fade), then resumed up to step 20,
    # which leaves checkpoints at the phase ends (steps 8 and 16) and at the stop (20).
    part = train(net, tc, images, logdir,
                 options=dataclasses.replace(QUIET, stop_after_steps=11), execution=NO_XLA)
    assert part["stopped"] == "stop_after_steps" and part["images_shown"] == 44
    assert rundir.load_ema_generator(logdir)[3] == 44
    train(net, tc, images, logdir, options=dataclasses.replace(QUIET, stop_after_steps=20),
          execution=NO_XLA)
    # The latest checkpoint cut short, as a crash or a full disk can leave it: the run
    # goes on from the one before and says so.
    ckpts = os.path.join(logdir, rundir.CHECKPOINT_DIR)
    damaged = os.path.join(ckpts, "ckpt-20.data-00000-of-00001")
    cut_in_half(damaged)
    with caplog.at_level(logging.INFO, logger="mel_tf"):
        rest = train(net, tc, images, logdir, options=QUIET, execution=NO_XLA)
    lines = [r.getMessage() for r in caplog.records]
    notes = [line for line in lines if "could not read" in line]
    assert len(notes) == 1 and f"{damaged} (Read less bytes than requested)" in notes[0]
    assert "using the checkpoint ckpt-16" in notes[0], notes
    assert any("from ckpt-16: 64 images shown, step 16" in line for line in lines), lines
    # Runs are exactly resumable: the same end as without the stops and the damage.
    assert rest["done"] and rest["step"] == uninterrupted["step"] == 24
    assert_same_state(uninterrupted["model"], rest["model"])
    # ckpt-20 left the index (it did not take ckpt-11's place among the 3 kept)
    # and its files were set aside.
    listed = tf.train.get_checkpoint_state(ckpts).all_model_checkpoint_paths
    assert [os.path.basename(p) for p in listed] == ["ckpt-11", "ckpt-16", "ckpt-24"]
    assert sorted(os.listdir(os.path.join(ckpts, rundir.DAMAGED_DIR))) == [
        "ckpt-20.data-00000-of-00001", "ckpt-20.index"]


def test_reading_the_ema_generator_skips_a_damaged_checkpoint(tmp_path, caplog):
    logdir = tmp_path / "run"
    _, _, first = make_run_dir(logdir, 100, seed=0)                # ckpt-1
    later = Generator(first.cfg, name="generator_ema")
    initialize(later, 1)
    state = rundir.RunState()
    state.images_shown.assign(200)
    rundir.checkpoint_manager(str(logdir), generator_ema=later, state=state).save(2)
    ckpts = logdir / rundir.CHECKPOINT_DIR
    before = sorted(os.listdir(ckpts))
    cut_in_half(ckpts / "ckpt-2.data-00000-of-00001")
    with caplog.at_level(logging.WARNING, logger="mel_tf"):
        loaded = rundir.load_ema(str(logdir))
    assert os.path.basename(loaded.path) == "ckpt-1" and loaded.images_shown == 100
    for a, b in zip(loaded.generator.weights, first.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert [r.getMessage() for r in caplog.records] == [
        f"could not read {ckpts / 'ckpt-2.data-00000-of-00001'} (Read less bytes than "
        "requested): using the checkpoint ckpt-1 instead"]
    # Reading leaves the run directory alone: its run may be training.
    assert sorted(os.listdir(ckpts)) == before
    cut_in_half(ckpts / "ckpt-1.data-00000-of-00001")
    with pytest.raises(rundir.RunDirError) as info:
        rundir.load_ema_generator(str(logdir))
    assert str(info.value) == (
        f"no checkpoint in {ckpts} can be read: {ckpts / 'ckpt-2.data-00000-of-00001'} (Read "
        "less bytes than requested) (and 1 older); restore the folder from a backup, or move "
        "it away to start over")


class StepRecorder(keras.callbacks.Callback):
    """A user's callback: a before each batch, the logs after it."""

    def __init__(self):
        super().__init__()
        self.alphas, self.logs = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.alphas.append(float(self.model.generator.alpha.numpy()))

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append(dict(logs))


def test_a_user_callback_sees_every_step_and_the_fade_follows_the_schedule(tmp_path):
    net, tc = tiny_run()
    recorder = StepRecorder()
    result = train(net, tc, tiny_images(), str(tmp_path / "run"), options=QUIET,
                   callbacks=[recorder], execution=NO_XLA)
    # 4x4 stable, 8x8 fade, 8x8 stable: 32 images each, 8 steps of 4.
    assert result["done"] and result["step"] == len(recorder.logs) == 24
    for logs in recorder.logs:
        assert {"g_loss", "d_loss", "real_score", "fake_score"} <= set(logs)
        assert all(isinstance(v, float) and np.isfinite(v) for v in logs.values()), logs
    schedule = schedule_for(net, tc)
    expected = [schedule.locate(4 * step).alpha for step in range(24)]
    assert expected[8:16] == [i / 8 for i in range(8)]
    np.testing.assert_allclose(recorder.alphas, expected, rtol=0, atol=1e-7)


def test_a_user_callback_can_stop_the_run_and_it_resumes(tmp_path):
    class StopAtFive(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if len(recorder.logs) == 5:
                self.model.stop_training = True
    net, tc = tiny_run()
    recorder = StepRecorder()
    part = train(net, tc, tiny_images(), str(tmp_path / "run"), options=QUIET,
                 callbacks=[recorder, StopAtFive()], execution=NO_XLA)
    # Keras's own stop: saved like a Ctrl-C, and the same call resumes.
    assert part["stopped"] == "stop_training" and part["step"] == 5
    assert rundir.load_ema_generator(str(tmp_path / "run"))[3] == 20
    rest = train(net, tc, tiny_images(), str(tmp_path / "run"), options=QUIET,
                 execution=NO_XLA)
    assert rest["done"] and rest["step"] == 24


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    net, tc = tiny_run()
    images = tiny_images()
    logdir = str(tmp_path / "run")
    train(net, tc, images, logdir, options=LoopOptions(
        progress=False, sample_every_images=0, checkpoint_every_images=0, stop_after_steps=3),
        execution=NO_XLA)
    good = rundir.latest_checkpoint(logdir)
    with pytest.raises(TrainingDiverged, match="non-finite loss at step 3"):
        train(net, tc.replace(gp_weight=float("nan")), images, logdir, options=QUIET,
              records=rundir.Records(allow_config_change=True), execution=NO_XLA)
    assert rundir.latest_checkpoint(logdir) == good


def test_a_run_directory_with_other_architecture_is_refused(tmp_path):
    net, tc = tiny_run()
    rundir.prepare(str(tmp_path), net, tc)
    with pytest.raises(rundir.RunDirError, match="other architecture settings.*width"):
        rundir.prepare(str(tmp_path), net.replace(width=0.5), tc,
                       rundir.Records(allow_config_change=True))
    # What it computes only when asked, and then it is recorded.
    with pytest.raises(rundir.RunDirError, match=r"train.learning_rate: 0.0005 -> 0.0001"):
        rundir.prepare(str(tmp_path), net, tc.replace(learning_rate=1e-4))
    assert rundir.prepare(str(tmp_path), net, tc.replace(learning_rate=1e-4),
                          rundir.Records(allow_config_change=True))
    assert "train.learning_rate: 0.0005 -> 0.0001" in (tmp_path / "changes.log").read_text()
    assert rundir.read_config(str(tmp_path))[1].learning_rate == 1e-4


def test_xla_and_bfloat16_steps_agree_with_float32():
    net, tc = tiny_run()
    images = tiny_images().images(8)
    reference = ProGAN(net, tc)
    initial = weights(reference.weights)
    losses = {}
    # The bfloat16 arm runs as a graph: the float32 arm already checks XLA, and XLA:CPU
    # compiles the bfloat16 step four times as slowly.
    for name, policy, xla in [("eager", "float32", False), ("xla", "float32", True),
                              ("bf16", "mixed_bfloat16", False)]:
        model = ProGAN(net, tc, dtype_policy=policy)
        for v, w in zip(model.weights, initial):
            v.assign(w)
        model.set_stage(8, True)
        model.set_alpha(0.5)
        step = tf.function(model.train_step, jit_compile=xla)
        losses[name] = {k: float(v) for k, v in step(batch_for(net, tc, images, 0)).items()}
    for key in ("g_loss", "d_loss", "wasserstein", "gradient_penalty"):
        assert losses["xla"][key] == pytest.approx(losses["eager"][key], rel=1e-3, abs=1e-4)
        # bfloat16 keeps ~3 significant digits; the penalty squares the gradient
        # norm's error, so its tolerance is the loosest.
        assert losses["bf16"][key] == pytest.approx(losses["eager"][key], rel=0.15, abs=0.05)


def _write_pngs(folder, n=12, size=12):
    from PIL import Image
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(3)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            os.path.join(folder, f"icon{i}.png"))


def test_train_py_end_to_end_at_8x8_with_interrupt_and_resume(tmp_path):
    import signal
    import time
    data_dir, logdir = tmp_path / "icons", tmp_path / "run"
    _write_pngs(str(data_dir))
    cmd = [sys.executable, os.path.join(ROOT, "train.py"), f"--data_dir={data_dir}",
           f"--logdir={logdir}", "--resolution=8", "--width=0.015625", "--batch_size=4",
           "--fade_images=320", "--stable_images=320", "--sample_every=160", "--metrics_images=8",
           "--noxla"]
    # Ctrl-C during the first phase: a checkpoint, a message, exit status 0.
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=str(tmp_path))
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "Phase 1/3" in line:
            time.sleep(1)
            proc.send_signal(signal.SIGINT)
            break
    lines += proc.stderr.readlines()
    assert proc.wait(timeout=120) == 0, "".join(lines)[-3000:]
    log = "".join(lines)
    assert "stopped by SIGINT" in log and "run the same command again" in log, log[-3000:]
    assert rundir.latest_checkpoint(str(logdir))
    # The same command resumes and finishes.
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming" in result.stderr
    assert "Training complete: 960 images shown in 240 steps" in result.stderr
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(logdir))
    samples = os.listdir(logdir / "samples")
    assert any(s.endswith("_8x8.png") for s in samples) and any(s.endswith("_4x4.png") for s in samples)
    assert "Metrics at 640 images (8x8): swd_8" in result.stderr
    flags_txt = (logdir / "flags.txt").read_text()
    assert "--resolution=8" in flags_txt and "--batch_size=4" in flags_txt
    assert json.loads((logdir / "dataset.json").read_text())["num_images"] == 12
    # Other architecture settings in the same run directory: one clear line, exit 1.
    other = subprocess.run(cmd + ["--width=0.5"], capture_output=True, text=True, timeout=300)
    assert other.returncode == 1
    assert "other architecture settings" in other.stderr.strip().splitlines()[-1]


def test_train_py_reports_bad_data_in_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), f"--data_dir={empty}",
                             f"--logdir={tmp_path / 'run'}", "--resolution=8"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error:") and str(empty) in last
