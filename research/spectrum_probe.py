"""Where generated icons' fine detail differs from the reals': their power spectra.

    python -m research.spectrum_probe --resolution=256 --holdout=97 --logdirs=RUN,... --out=FILE.json

The study's finest SWD level cannot tell missing detail (blur) from added detail
(streaks): both move the high-pass patches away from the reals'. The spectrum can.
Each run's EMA generator draws --num_images icons from the study's latents at its
newest checkpoint, at the stage its own schedule (its config.json) has reached there; the
reals are the training icons at that resolution. Per set, the shares of its power
spectrum in bands of frequency and its variance (research/spectrum.py); the generated
figures are also given as a multiple of the reals'.
"""

from __future__ import annotations

import functools
import json
import os

import numpy as np
from absl import app, flags

from research import source_study as study
from research.spectrum import band_shares
from research.stages import stage_generator

flags.DEFINE_list("logdirs", [], "mel_tf run directories of the study.")
flags.DEFINE_list("icon_files", [], "icons.npz files of finished study runs (either system): "
                  "their final icons.")
F = flags.FLAGS


def compared(real_shares, name, fake_images, **facts) -> dict:
    """A set's band shares beside the reals' (`real_shares(resolution, count)`)."""
    resolution = fake_images.shape[1]
    fake = band_shares(fake_images)
    real = real_shares(resolution, len(fake_images))
    return {"run": name, "resolution": resolution, **facts, "real": real, "generated": fake,
            "generated_over_real": {k: fake[k] / real[k] for k in fake}}


def probe(training, real_shares, logdir) -> dict:
    """A run's band shares at its newest checkpoint, beside the reals' there."""
    from mel_tf.deploy.seeds import latents_for_seed
    from mel_tf.training.evaluation import generate_uint8
    from mel_tf.training.rundir import load_ema_generator

    generator, net, train_cfg, shown = load_ema_generator(logdir)
    step = shown // study.BATCH
    _, alpha = stage_generator(generator, net, train_cfg, shown)
    n = min(F.num_images, len(training))
    fake = generate_uint8(generator, latents_for_seed(0, n, net.latent_dim), net)
    return compared(real_shares, logdir, fake, step=step, images=shown, alpha=alpha)


def main(argv):
    del argv
    training = study.TrainingSubset(study.study_icons())
    # The reals' shares once per resolution and count, whatever the number of runs.
    real_shares = functools.lru_cache(maxsize=None)(
        lambda resolution, count: band_shares(training.images(resolution)[:count]))
    rows = [probe(training, real_shares, os.path.abspath(d)) for d in F.logdirs]
    rows += [compared(real_shares, os.path.abspath(f), np.load(f)["icons"])
             for f in F.icon_files]
    for row in rows:
        print(row["run"], row.get("images"), row["resolution"],
              {k: round(v, 2) for k, v in row["generated_over_real"].items()})
    if F.out:
        with open(F.out, "w") as f:
            json.dump({"runs": rows}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
