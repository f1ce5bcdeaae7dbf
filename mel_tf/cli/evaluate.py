"""Scores a generator against real images: multi-scale SWD and MS-SSIM diversity.

    python evaluate.py --logdir=runs/demo --num_images=1000
    python evaluate.py --model=out/generator.tflite --data_dir=my_icons --out=scores.json

Prints one JSON object: {"swd": {"<res>": ..., "avg": ...}, "ms_ssim_fake": ...,
"ms_ssim_real": ..., "num_images": N, "resolution": R}, plus "fid" and "kid"
when --inception names a local feature-extractor file (nothing is downloaded).
"""

from __future__ import annotations

import json
import sys

from absl import flags

from mel_tf.cli import run_app

F = flags.FLAGS
flags.DEFINE_string("logdir", None, "A training run directory (its EMA generator is scored).")
flags.DEFINE_string("model", None, "A .tflite file, a SavedModel directory or a run directory.")
flags.DEFINE_string("data_dir", None, "Folder of real images.")
flags.DEFINE_string("dataset", None, "Built-in dataset (twemoji_faces); the default without --data_dir.")
flags.DEFINE_string("background", "255,255,255", "RGB colour for transparent pixels of real images.")
flags.DEFINE_string("cache_dir", None, "Cache for rasterised built-in datasets.")
flags.DEFINE_integer("num_images", 1000, "Images per set (fewer if the real set is smaller).")
flags.DEFINE_integer("seed", 0, "Seed of the latents, the real subset and the metrics' draws.")
flags.DEFINE_string("inception", None, "Local Inception feature-extractor file for FID/KID.")
flags.DEFINE_string("out", None, "Also write the JSON object to this file.")


def main(argv):
    del argv
    import numpy as np

    from mel_tf import data as data_lib
    from mel_tf.generate import latents_for_seed, load_model
    from mel_tf.metrics import evaluate_images

    try:
        if (F.logdir is None) == (F.model is None):
            raise ValueError("give exactly one of --logdir and --model")
        model = load_model(F.logdir or F.model)
        dataset = F.dataset if F.data_dir is None else None
        if F.data_dir is None and dataset is None:
            dataset = "twemoji_faces"
        background = tuple(int(v) for v in F.background.split(","))
        image_set = data_lib.open_dataset(data_dir=F.data_dir, dataset=dataset,
                                          max_resolution=model.resolution,
                                          background=background, cache_dir=F.cache_dir)
        n = min(F.num_images, len(image_set))
        rng = np.random.default_rng([F.seed, 0x4556])
        real = image_set.images(model.resolution)[rng.choice(len(image_set), n, replace=False)]
        fake = np.concatenate([model(z) for z in np.array_split(
            latents_for_seed(F.seed, n, model.latent_dim), max(1, n // 64))])
        result = evaluate_images(real, fake, F.seed, inception_path=F.inception)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"evaluate.py: error: {e}", file=sys.stderr)
        return 1
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
