"""Small-data quality study: does differentiable augmentation help on a few hundred icons?

    python -m research.augment_study --resolution=32 --out=docs/augment_study

Trains one run per (preset, augmentation) on the built-in dataset with the
same image budget, schedule and seed (every resolution gets a fade and a
stable phase, in both presets, so that the budgets are equal), then scores each
run's EMA generator with the multi-scale SWD and MS-SSIM (mel_tf.metrics) on
the same latents and the same real subset. Each run leaves its row in
OUT/runs/<run>/row.json; OUT/results.json and OUT/results.md (the table for
the README) are rebuilt from every row present, so several processes (say one
per preset, `--threads=1` each) can share OUT, and an interrupted study
resumes. One sample grid per run: OUT/<run>.png.

Stop it with Ctrl-C or `kill -INT`: the trainer catches SIGINT/SIGTERM,
checkpoints and stops that run, and this script then stops too.
"""

from __future__ import annotations

import datetime
import glob
import json
import logging
import os
import time

from absl import app, flags


F = flags.FLAGS
flags.DEFINE_integer("resolution", 32, "Target resolution of every run.")
flags.DEFINE_list("widths", ["seed:0.25", "paper:0.0625"],
                  "Channel width multiplier per preset (similar cost per image: the paper "
                  "preset has 16x the seed's channels at 32x32).")
flags.DEFINE_integer("batch_size", 16, "Batch size.")
flags.DEFINE_integer("fade_images", 6000, "Images per fade phase.")
flags.DEFINE_integer("stable_images", 6000, "Images per stable phase.")
flags.DEFINE_list("presets", ["seed", "paper"], "Presets to compare.")
flags.DEFINE_list("policies", ["none", "color+translation+cutout", "ada"],
                  "Augmentations: none, a DiffAugment policy with + between names, or ada "
                  "(color+translation+cutout with an adaptive probability).")
flags.DEFINE_integer("num_images", 512, "Images per set for the metrics.")
flags.DEFINE_integer("seed", 0, "Seed of every run and of the metrics.")
flags.DEFINE_string("out", "docs/augment_study", "Output folder.")
flags.DEFINE_bool("tables_only", False, "Only rebuild results.json/.md from the rows in OUT/runs/.")
flags.DEFINE_integer("threads", 0, "TensorFlow threads per op (0: TensorFlow's default).")


def run_name(preset, policy):
    return f"{preset}_{policy}"


def main(argv):
    del argv
    import numpy as np

    from mel_tf.training import data as data_lib
    from mel_tf.config import TrainConfig, preset as make_preset
    from mel_tf.deploy.seeds import latents_for_seed
    from mel_tf.images import image_grid, save_png
    from mel_tf.metrics import evaluate_images
    from mel_tf.training.evaluation import generate_uint8
    from mel_tf.training.rundir import load_ema_generator
    from mel_tf.config import LoopOptions
    from mel_tf.training.loop import train

    import tensorflow as tf

    if F.threads:
        tf.config.threading.set_intra_op_parallelism_threads(F.threads)
        tf.config.threading.set_inter_op_parallelism_threads(F.threads)
    logging.getLogger("mel_tf").setLevel(logging.INFO)
    if F.tables_only:
        write_tables()
        return 0
    os.makedirs(os.path.join(F.out, "runs"), exist_ok=True)
    image_set = data_lib.open_dataset(dataset="twemoji_faces", max_resolution=F.resolution)
    rng = np.random.default_rng([F.seed, 0x4556])
    n = min(F.num_images, len(image_set))
    real = image_set.images(F.resolution)[rng.choice(len(image_set), n, replace=False)]
    widths = parse_widths(F.widths, F.presets)
    for preset_name in F.presets:
        net = make_preset(preset_name, F.resolution, widths[preset_name])
        for policy in F.policies:
            adaptive = policy == "ada"
            tc = TrainConfig(
                seed=F.seed, fade_images=F.fade_images, stable_images=F.stable_images,
                batch_size=F.batch_size,
                stable_every_resolution=True,
                fade_real_images=preset_name == "paper",
                augment="" if policy == "none" else
                ("color,translation,cutout" if adaptive else policy.replace("+", ",")),
                adaptive_augment=adaptive)
            logdir = os.path.join(F.out, "runs", run_name(preset_name, policy))
            row_path = os.path.join(logdir, "row.json")
            if os.path.exists(row_path):
                continue
            t0 = time.time()
            status = train(net, tc, image_set, logdir,
                           options=LoopOptions(progress=False, sample_every_images=0,
                                               checkpoint_every_images=4 * F.fade_images))
            train_s = time.time() - t0
            if not status["done"]:
                print(f"{logdir}: stopped by {status['stopped']}; run again to resume")
                return 1
            generator, _, _, shown = load_ema_generator(logdir)
            generator.set_stage(F.resolution, False)
            fake = generate_uint8(generator, latents_for_seed(F.seed, n, net.latent_dim), net)
            scores = evaluate_images(real, fake, F.seed)
            save_png(os.path.join(F.out, run_name(preset_name, policy) + ".png"),
                     image_grid(fake[:64], columns=8, min_cell=64))
            row = {"preset": preset_name, "width": net.width, "augment": policy,
                   "resolution": F.resolution, "batch_size": F.batch_size,
                   "fade_images": F.fade_images, "stable_images": F.stable_images,
                   "seed": F.seed, "images_shown": shown, "train_seconds": round(train_s, 1),
                   "threads": F.threads, **scores}
            with open(row_path, "w") as f:
                json.dump(row, f, indent=2)
            logging.getLogger("mel_tf").info("%s: %s", logdir, json.dumps(row))
    write_tables()
    return 0


def parse_widths(entries, presets):
    """["seed:0.25", ...] -> {"seed": 0.25, ...}; every preset studied needs one."""
    widths = {}
    for entry in entries:
        name, sep, value = entry.partition(":")
        if not sep:
            raise app.UsageError(f"--widths entry {entry!r} is not PRESET:WIDTH")
        widths[name] = float(value)
    missing = [p for p in presets if p not in widths]
    if missing:
        raise app.UsageError(f"--widths has no width for {', '.join(missing)}")
    return widths


def write_tables():
    """OUT/results.json and results.md from the rows in OUT/runs/ (each row
    carries its own schedule, so rebuilding needs no training flags)."""
    rows = []
    for path in sorted(glob.glob(os.path.join(F.out, "runs", "*", "row.json"))):
        with open(path) as f:
            rows.append(json.load(f))
    order = {p: i for i, p in enumerate(["seed", "paper"])}
    rows.sort(key=lambda r: (order.get(r["preset"], 9), r["augment"] != "none", r["augment"]))
    # train_seconds in the rows is wall time of a one-thread process on a shared
    # machine: a record, not a speed figure (benchmarks/train_bench.py is that).
    result = {"date": datetime.date.today().isoformat(), "runs": rows}
    for name, text in (("results.json", json.dumps(result, indent=2)),
                       ("results.md", markdown_table(rows))):
        tmp = os.path.join(F.out, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(F.out, name))
    print(markdown_table(rows))


def markdown_table(rows):
    levels = [k for k in rows[0]["swd"] if k != "avg"]
    head = ("| preset (width) | augment | " + " | ".join(f"SWD {k}" for k in levels)
            + " | SWD avg | MS-SSIM fake | MS-SSIM real |\n")
    head += "|" + "---|" * (5 + len(levels)) + "\n"
    lines = []
    for r in rows:
        swd = " | ".join(f"{r['swd'][k]:.1f}" for k in levels)
        lines.append(f"| {r['preset']} ({r['width']:g}) | {r['augment']} | {swd} | "
                     f"{r['swd']['avg']:.1f} | {r['ms_ssim_fake']:.3f} | "
                     f"{r['ms_ssim_real']:.3f} |")
    return head + "\n".join(lines) + "\n"


if __name__ == "__main__":
    app.run(main)
