"""Scores a generator against real images: multi-scale SWD and MS-SSIM diversity.

    python evaluate.py --logdir=runs/demo --num_images=1000     # against the run's own data
    python evaluate.py --model=out/generator.tflite --data_dir=my_icons --out=scores.json

Prints one JSON object: {"swd": {"<res>": ..., "avg": ...}, "ms_ssim_fake": ...,
"ms_ssim_real": ..., "num_images": N, "resolution": R}, plus "fid" and "kid"
when --inception names a local feature-extractor file (nothing is downloaded).
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
        run_dir = F.logdir or (F.model if os.path.isdir(F.model or "") else None)
        data_cfg = data_config(run_dir)
        model = load_model(F.logdir or F.model)
        image_set = data_lib.open_data(data_cfg, model.resolution, cache_dir=F.cache_dir)
        n = min(F.num_images, len(image_set))
        rng = np.random.default_rng([F.seed, 0x4556])
        real = image_set.images(model.resolution)[rng.choice(len(image_set), n, replace=False)]
        fake = np.concatenate([model(z) for z in np.array_split(
            latents_for_seed(F.seed, n, model.latent_dim), max(1, n // 64))])
        result = evaluate_images(real, fake, F.seed, inception_path=F.inception)
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
