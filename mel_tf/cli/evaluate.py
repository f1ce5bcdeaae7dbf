"""Scores a generator against real images: multi-scale SWD and MS-SSIM diversity.

    python evaluate.py --logdir=runs/demo --num_images=1000     # against the run's own data
    python evaluate.py --model=out/generator.tflite --data_dir=my_icons --out=scores.json

Prints one JSON object: {"swd": {"<res>": ..., "avg": ...}, "ms_ssim_fake": ...,
"ms_ssim_real": ..., "num_images": N, "resolution": R}, plus "fid" and "kid"
when --inception names a local feature-extractor file (nothing is downloaded).

    python evaluate.py --logdir=runs/demo --copy_check=closest.png [--held_out_dir=DIR]

also checks whether the generator copies its training icons (the real images
above): "copy_check" in the JSON (see mel_tf.metrics.copy_check) and a PNG of
the 16 generated icons closest to a training icon, one pair a row (generated |
nearest training icon), nearest first, as listed under "closest".
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from absl import flags

from mel_tf.cli import fail, run_app
from mel_tf.config import DataConfig, parse_rgb

F = flags.FLAGS
flags.DEFINE_string("logdir", None, "A training run directory (its EMA generator is scored).")
flags.DEFINE_string("model", None, "A .tflite file, a SavedModel directory or a run directory.")
flags.DEFINE_string("data_dir", None, "Folder of real images (default: the run's own data, "
                    "from its dataset.json).")
flags.DEFINE_string("dataset", None, "Built-in dataset (default: the run's own data; "
                    f"{DataConfig.dataset} for a --model without a record).")
flags.DEFINE_string("background", None, "R,G,B colour for transparent pixels of real images "
                    f"(default: the run's, else {','.join(map(str, DataConfig.background))}).")
flags.DEFINE_string("cache_dir", None, "Cache for rasterised built-in datasets.")
flags.DEFINE_integer("num_images", 1000, "Images per set (fewer if the real set is smaller).")
flags.DEFINE_integer("seed", 0, "Seed of the latents, the real subset and the metrics' draws.")
flags.DEFINE_string("inception", None, "Local Inception feature-extractor file for FID/KID.")
flags.DEFINE_string("out", None, "Also write the JSON object to this file.")
flags.DEFINE_string("copy_check", None, "Also check --num_images generated icons for copies "
                    "of the training icons (the real images): figures under \"copy_check\" "
                    "in the JSON, and a grid of the closest pairs written to this PNG file.")
flags.DEFINE_string("held_out_dir", None, "Folder of real icons of the same kind that the run "
                    "did not train on: the copy check's reference (default: the training "
                    "icons' distances to each other).")


def data_config(run_dir) -> DataConfig:
    """The real images: --data_dir or --dataset if given, else the run's own (dataset.json)."""
    if F.data_dir is not None and F.dataset is not None:
        raise ValueError("give --data_dir or --dataset, not both")
    recorded = _recorded_data(run_dir)
    if F.data_dir is None and F.dataset is None:
        if recorded is None and F.logdir is not None:
            raise ValueError(f"{run_dir} has no record of its data (no dataset.json naming "
                             "a data folder or dataset); give --data_dir or --dataset")
        cfg = recorded or DataConfig()
    elif F.data_dir is not None:
        cfg = DataConfig(data_dir=F.data_dir)
    else:
        cfg = DataConfig(dataset=F.dataset)
    if F.background is not None:
        cfg = dataclasses.replace(cfg, background=parse_rgb(F.background))
    elif recorded is not None:
        cfg = dataclasses.replace(cfg, background=recorded.background)
    return cfg


def _recorded_data(run_dir):
    from mel_tf.training import rundir
    record = rundir.read_dataset_record(run_dir) if run_dir else None
    try:
        return None if record is None else DataConfig.from_record(record)
    except ValueError:     # a dataset.json from before the data was recorded
        return None


def check_copy_check_flags():
    """Bad --copy_check / --held_out_dir values fail before any icon is generated."""
    if F.held_out_dir is not None and F.copy_check is None:
        raise ValueError("--held_out_dir is the copy check's reference; give --copy_check too")
    if F.copy_check is not None:
        folder = os.path.dirname(os.path.abspath(F.copy_check))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"--copy_check: no folder {folder} for the PNG")
    if F.held_out_dir is not None and not os.path.isdir(F.held_out_dir):
        raise FileNotFoundError(f"--held_out_dir: no folder {F.held_out_dir}")


def generate(model, latents):
    """uint8 icons from `latents`, 64 or so at a time."""
    import numpy as np
    return np.concatenate([model(z) for z in np.array_split(latents, max(1, len(latents) // 64))])


def copy_check_figures(model, image_set, fake, data_cfg) -> dict:
    """The copy check of --num_images icons (`fake`, the scored ones, first; the
    same seed's next latents after them) against every real icon; writes the
    grid of the closest pairs to --copy_check."""
    import numpy as np

    from mel_tf.training import data as data_lib
    from mel_tf.images import pairs_grid, save_png
    from mel_tf.metrics import copy_check
    from mel_tf.deploy.seeds import latents_for_seed

    if F.num_images > len(fake):
        latents = latents_for_seed(F.seed, F.num_images, model.latent_dim)
        fake = np.concatenate([fake, generate(model, latents[len(fake):])])
    training = image_set.images(model.resolution)
    held_out = None
    if F.held_out_dir is not None:
        held_cfg = DataConfig(data_dir=F.held_out_dir, background=data_cfg.background)
        held_out = data_lib.open_data(held_cfg, model.resolution).images(model.resolution)
    result = copy_check(fake, training, held_out)
    save_png(F.copy_check, pairs_grid(fake, training, [(p["generated"], p["training"])
                                                       for p in result["closest"]]))
    return {**result, "grid": F.copy_check, "held_out_dir": F.held_out_dir}


def main(argv):
    del argv
    import numpy as np

    from mel_tf.training import data as data_lib
    from mel_tf.deploy.seeds import latents_for_seed
    from mel_tf.deploy.serving import load_model
    from mel_tf.metrics import evaluate_images

    try:
        if (F.logdir is None) == (F.model is None):
            raise ValueError("give exactly one of --logdir and --model")
        check_copy_check_flags()
        run_dir = F.logdir or (F.model if os.path.isdir(F.model or "") else None)
        data_cfg = data_config(run_dir)
        model = load_model(F.logdir or F.model)
        image_set = data_lib.open_data(data_cfg, model.resolution, cache_dir=F.cache_dir)
        n = min(F.num_images, len(image_set))
        rng = np.random.default_rng([F.seed, 0x4556])
        real = image_set.images(model.resolution)[rng.choice(len(image_set), n, replace=False)]
        fake = generate(model, latents_for_seed(F.seed, n, model.latent_dim))
        result = evaluate_images(real, fake, F.seed, inception_path=F.inception)
        if F.copy_check is not None:
            result["copy_check"] = copy_check_figures(model, image_set, fake, data_cfg)
    except (ValueError, OSError, ModuleNotFoundError) as e:
        fail(e)
    result["data"] = data_cfg.to_record()
    text = json.dumps(result, indent=2)
    print(text)
    if F.out:
        with open(F.out, "w") as f:
            f.write(text + "\n")
    return 0


def run():
    run_app(main, sys.modules[__name__])


if __name__ == "__main__":
    run()
