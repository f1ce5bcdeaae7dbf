"""Small-data quality study: does differentiable augmentation help on a few hundred icons?

    python benchmarks/augment_study.py --resolution=32 --out=docs/augment_study

Trains one run per (preset, augmentation) on the built-in dataset with the
same image budget and seed, then scores each run's EMA generator with the
multi-scale SWD and MS-SSIM (mel_tf.metrics) on the same latents and the same
real subset. Writes OUT/results.json, OUT/results.md (the table for the README)
and one sample grid per run (OUT/<run>.png). Runs already finished in
OUT/runs/ are reused, so an interrupted study resumes.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

F = flags.FLAGS
flags.DEFINE_integer("resolution", 32, "Target resolution of every run.")
flags.DEFINE_float("width", 0.25, "Channel width multiplier.")
flags.DEFINE_integer("batch_size", 16, "Batch size.")
flags.DEFINE_integer("fade_images", 8000, "Images per fade phase.")
flags.DEFINE_integer("stable_images", 8000, "Images per stable phase.")
flags.DEFINE_list("presets", ["seed", "paper"], "Presets to compare.")
flags.DEFINE_list("policies", ["none", "color+translation+cutout", "ada"],
                  "Augmentations: none, a DiffAugment policy with + between names, or ada "
                  "(color+translation+cutout with an adaptive probability).")
flags.DEFINE_integer("num_images", 512, "Images per set for the metrics.")
flags.DEFINE_integer("seed", 0, "Seed of every run and of the metrics.")
flags.DEFINE_string("out", "docs/augment_study", "Output folder.")


def run_name(preset, policy):
    return f"{preset}_{policy}"


def main(argv):
    del argv
    import numpy as np

    from mel_tf import data as data_lib
    from mel_tf.config import TrainConfig, preset as make_preset
    from mel_tf.generate import latents_for_seed
    from mel_tf.images import image_grid, save_png
    from mel_tf.metrics import evaluate_images, generate_uint8
    from mel_tf.rundir import load_ema_generator
    from mel_tf.training import LoopOptions, train

    logging.getLogger("mel_tf").setLevel(logging.INFO)
    os.makedirs(os.path.join(F.out, "runs"), exist_ok=True)
    image_set = data_lib.open_dataset(dataset="twemoji_faces", max_resolution=F.resolution)
    rng = np.random.default_rng([F.seed, 0x4556])
    n = min(F.num_images, len(image_set))
    real = image_set.images(F.resolution)[rng.choice(len(image_set), n, replace=False)]
    rows = []
    for preset_name in F.presets:
        net = make_preset(preset_name, F.resolution, F.width)
        for policy in F.policies:
            adaptive = policy == "ada"
            tc = TrainConfig(
                seed=F.seed, fade_images=F.fade_images, stable_images=F.stable_images,
                batch_size=F.batch_size,
                stable_every_resolution=preset_name == "paper",
                fade_real_images=preset_name == "paper",
                augment="" if policy == "none" else
                ("color,translation,cutout" if adaptive else policy.replace("+", ",")),
                adaptive_augment=adaptive)
            logdir = os.path.join(F.out, "runs", run_name(preset_name, policy))
            t0 = time.time()
            train(net, tc, image_set, logdir,
                  options=LoopOptions(progress=False, sample_every_images=0,
                                      checkpoint_every_images=0))
            train_s = time.time() - t0
            generator, _, _, shown = load_ema_generator(logdir)
            generator.set_stage(F.resolution, False)
            fake = generate_uint8(generator, latents_for_seed(F.seed, n, net.latent_dim), net)
            scores = evaluate_images(real, fake, F.seed)
            save_png(os.path.join(F.out, run_name(preset_name, policy) + ".png"),
                     image_grid(fake[:64], columns=8, min_cell=64))
            rows.append({"preset": preset_name, "augment": policy, "images_shown": shown,
                         "train_seconds": round(train_s, 1), **scores})
            logging.getLogger("mel_tf").info("%s: %s", logdir, json.dumps(rows[-1]))
    result = {"date": datetime.date.today().isoformat(), "resolution": F.resolution,
              "width": F.width, "batch_size": F.batch_size, "fade_images": F.fade_images,
              "stable_images": F.stable_images, "seed": F.seed, "runs": rows}
    with open(os.path.join(F.out, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(F.out, "results.md"), "w") as f:
        f.write(markdown_table(rows))
    print(markdown_table(rows))
    return 0


def markdown_table(rows):
    levels = [k for k in rows[0]["swd"] if k != "avg"]
    head = ("| preset | augment | " + " | ".join(f"SWD {k}" for k in levels)
            + " | SWD avg | MS-SSIM fake | MS-SSIM real |\n")
    head += "|" + "---|" * (5 + len(levels)) + "\n"
    lines = []
    for r in rows:
        swd = " | ".join(f"{r['swd'][k]:.1f}" for k in levels)
        lines.append(f"| {r['preset']} | {r['augment']} | {swd} | {r['swd']['avg']:.1f} | "
                     f"{r['ms_ssim_fake']:.3f} | {r['ms_ssim_real']:.3f} |")
    return head + "\n".join(lines) + "\n"


if __name__ == "__main__":
    app.run(main)
