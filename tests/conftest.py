"""Shared test helpers: tiny run directories made without the trainer."""

import os
import sys

import pytest

# Tests import the package from the checkout, and run its entry scripts from there.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Images shown in the tiny schedule of `make_run_dir` (fade 64, stable 64,
# target 16): 4x4 stable [0, 64), 8x8 fade [64, 128), 16x16 fade [128, 192),
# 16x16 stable [192, 256).
IN_4X4_STABLE = 32
IN_8X8_FADE = 100
IN_16X16_FADE = 160
PAST_16X16_FADE = 200


def make_run_dir(logdir, images_shown, resolution=16, width=1 / 64, preset_name="seed",
                 dataset=None, seed=0):
    """A run directory as the trainer leaves it: config.json and one checkpoint
    holding an (untrained, seeded) EMA generator and the run state.

    dataset: optional {"name", "credit"} written to dataset.json.
    Returns (net_cfg, train_cfg, generator).
    """
    import json

    from mel_tf.training import rundir
    from mel_tf.config import TrainConfig, preset
    from mel_tf.training.networks import Generator, initialize

    net_cfg = preset(preset_name, resolution=resolution, width=width)
    train_cfg = TrainConfig(fade_images=64, stable_images=64, batch_size=4)
    rundir.prepare(str(logdir), net_cfg, train_cfg)
    generator = Generator(net_cfg, name="generator_ema")
    initialize(generator, seed)
    state = rundir.RunState()
    state.images_shown.assign(images_shown)
    rundir.checkpoint_manager(str(logdir), generator_ema=generator, state=state).save()
    if dataset is not None:
        with open(os.path.join(str(logdir), "dataset.json"), "w") as f:
            json.dump(dataset, f)
    return net_cfg, train_cfg, generator


@pytest.fixture
def make_run(tmp_path):
    """make_run(images_shown, name="run", **kwargs) -> logdir path (str), in tmp_path."""
    def make(images_shown=PAST_16X16_FADE, name="run", **kwargs):
        logdir = tmp_path / name
        make_run_dir(logdir, images_shown, **kwargs)
        return str(logdir)
    return make
