"""A run's raw generator beside its EMA generator, scored as research/source_study.py
scores (the same icons, latents, SWD levels and MS-SSIM).

    python -m research.ema_probe --resolution=256 --holdout=97 --logdirs=RUN,... --out=FILE.json

The EMA only averages the generator's weights for sampling; it never feeds back into
training. So one run's checkpoint answers how its samples would score with no EMA,
without training again. Each run is read at its newest checkpoint, at the stage its
own schedule (its config.json) has reached there.
"""

from __future__ import annotations

import functools
import json
import os

from absl import app, flags

from research import source_study as study
from research.stages import stage_generator

flags.DEFINE_list("logdirs", [], "mel_tf run directories of the study.")
F = flags.FLAGS


def generators(logdir):
    """(raw, EMA) generators of the run's newest checkpoint, its configs, step and
    images shown."""
    import tensorflow as tf

    from mel_tf.training import rundir
    from mel_tf.training.networks import Generator

    net, train_cfg = rundir.read_config(logdir)
    raw = Generator(net, name="generator")
    ema = Generator(net, name="generator_ema")
    state = rundir.RunState()
    path = rundir.latest_checkpoint(logdir)
    tf.train.Checkpoint(generator=raw, generator_ema=ema, state=state).restore(
        path).expect_partial().assert_existing_objects_matched()
    return raw, ema, net, train_cfg, int(state.step.numpy()), int(state.images_shown.numpy())


def probe(scorers, logdir) -> dict:
    """Both generators' scores; `scorers(latent_dim)` gives the study's scorer."""
    from mel_tf.training.evaluation import generate_uint8

    raw, ema, net, train_cfg, step, shown = generators(logdir)
    score = scorers(net.latent_dim)
    row = {"logdir": logdir, "step": step, "images": shown}
    for name, generator in (("raw", raw), ("ema", ema)):
        resolution, alpha = stage_generator(generator, net, train_cfg, shown)
        row[name] = score(lambda z: generate_uint8(generator, z, net), resolution)
    row.update(resolution=resolution, alpha=alpha)
    return row


def main(argv):
    del argv
    training = study.TrainingSubset(study.study_icons())
    # One scorer per latent size: it keeps the reals' MS-SSIM once computed.
    scorers = functools.lru_cache(maxsize=None)(lambda dim: study.scorer(training, dim))
    rows = [probe(scorers, os.path.abspath(d)) for d in F.logdirs]
    for row in rows:
        print(row["logdir"], row["step"], {k: {lvl: round(v, 1) for lvl, v in row[k]["swd"].items()}
                                           for k in ("raw", "ema")},
              round(row["raw"]["ms_ssim_fake"], 3), round(row["ema"]["ms_ssim_fake"], 3))
    if F.out:
        with open(F.out, "w") as f:
            json.dump({"runs": rows}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
