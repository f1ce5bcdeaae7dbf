"""Can a run's generator reach the data's colours? Logits and saturated pixels.

    python -m research.output_range --logdir=RUN [--resolution=R] --out=FILE.json

For a run of the seed preset (sigmoid output, data in [0, 1]): the EMA
generator's pre-sigmoid outputs (the "logits") on 256 latents, and the share of
pixels whose three channels are all within 0.02 of 0 or 1, split by colour,
for the fakes and for the real images (--data_dir or --dataset, as in
evaluate.py) at the same resolution. The built-in
Twemoji faces are about a third pure white (the background) at 32x32; white
needs all three logits above 3.9.

Output JSON: {"logdir", "images_shown", "resolution", "logits": {"mean", "std",
"p1", "p99", "frac_abs_above_4"}, "to_rgb": {"weight_norms", "bias"},
"fake": {...}, "real": {...}} with {"saturated_pixels", "white", "channel_means"}.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

from benchmarks.machine import emit_json

F = flags.FLAGS
flags.DEFINE_string("logdir", None, "Run directory.", required=True)
flags.DEFINE_integer("resolution", None, "Stage (default: the run's latest, even half-faded).")
flags.DEFINE_integer("num", 256, "Latents.")
flags.DEFINE_string("data_dir", None, "Folder of the run's real images.")
flags.DEFINE_string("dataset", None, "Built-in dataset (twemoji_faces); the default without --data_dir.")
flags.DEFINE_string("out", None, "Write the JSON here (always printed).")


def saturation(images):
    """Share of pixels with every channel within 0.02 of 0 or 1, and of white ones."""
    saturated = ((images < 0.02) | (images > 0.98)).all(-1)
    return {"saturated_pixels": round(float(saturated.mean()), 4),
            "white": round(float((images > 0.98).all(-1).mean()), 4),
            "channel_means": [round(float(m), 3) for m in images.reshape(-1, 3).mean(0)]}


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    from mel_tf.training.data import open_dataset
    from mel_tf.deploy.serving import load_run_generator

    run = load_run_generator(F.logdir, F.resolution, allow_partial_fade=True)
    g, cfg = run.generator, run.net_cfg
    if cfg.output_activation != "sigmoid":
        raise app.UsageError("this check is for the seed preset's sigmoid output")
    z = tf.random.stateless_normal([F.num, cfg.latent_dim], seed=[1, 2])
    logits = g.pre_activation(z).numpy()
    to_rgb = g.to_rgb[cfg.resolutions.index(run.resolution)]
    fakes = 1.0 / (1.0 + np.exp(-logits))
    dataset = F.dataset or (None if F.data_dir else "twemoji_faces")
    reals = open_dataset(data_dir=F.data_dir, dataset=dataset,
                         max_resolution=run.resolution).images(run.resolution)
    reals = reals.astype(np.float32) / 255.0
    emit_json({
        "logdir": os.path.abspath(F.logdir), "images_shown": int(run.images_shown),
        "resolution": run.resolution,
        "logits": {"mean": round(float(logits.mean()), 3), "std": round(float(logits.std()), 3),
                   "p1": round(float(np.percentile(logits, 1)), 3),
                   "p99": round(float(np.percentile(logits, 99)), 3),
                   "frac_abs_above_4": round(float((np.abs(logits) > 4).mean()), 4)},
        "to_rgb": {"weight_norms": [round(float(v), 3) for v in np.linalg.norm(
                       to_rgb.kernel.numpy()[0, 0] * to_rgb.scale, axis=0)],
                   "bias": [round(float(v), 3) for v in to_rgb.bias.numpy()]},
        "fake": saturation(fakes), "real": saturation(reals)}, F.out)


if __name__ == "__main__":
    app.run(main)
