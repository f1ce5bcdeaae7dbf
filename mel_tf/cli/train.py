"""Trains a Progressive GAN on a folder of icons (or the built-in dataset).

    python train.py                          # the demo: configs/demo.flags
    python train.py --flagfile=configs/mel256.flags --data_dir=my_icons --logdir=runs/mel
    tensorboard --logdir=runs

Running the same command again resumes the run in --logdir.
"""

from __future__ import annotations

import json
import logging
import os
import sys

from absl import flags

from mel_tf.cli import run_app

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_FLAGS = os.path.join(REPO, "configs", "demo.flags")

F = flags.FLAGS
# Data.
flags.DEFINE_string("data_dir", None, "Folder of training images (searched recursively).")
flags.DEFINE_string("dataset", None, "Built-in dataset when --data_dir is not given: twemoji_faces.")
flags.DEFINE_string("background", "255,255,255", "RGB colour that transparent pixels are composited on.")
flags.DEFINE_string("cache_dir", None, "Cache for rasterised built-in datasets (default: ~/.cache/mel_tf).")
# Run directory.
flags.DEFINE_string("logdir", "runs/demo", "Run directory: checkpoints, TensorBoard events, samples.")
# Network.
flags.DEFINE_enum("preset", "seed", ["seed", "paper"], "Architecture: the source's (seed) or Karras et al.'s (paper).")
flags.DEFINE_integer("resolution", 256, "Target resolution, a power of two from 4 to 1024.")
flags.DEFINE_float("width", 1.0, "Channel width multiplier (e.g. 0.25 for quick CPU runs).")
flags.DEFINE_integer("mbstd_group_size", None, "MiniBatchStd group size (0 = whole batch); default: the preset's.")
# Schedule and optimisation.
flags.DEFINE_integer("batch_size", 8, "Minibatch size (global, over all replicas).")
flags.DEFINE_string("batch_sizes", "", "Per-resolution batch sizes, e.g. 4:64,8:64,16:32.")
flags.DEFINE_float("learning_rate", 5e-4, "Adam learning rate of both networks.")
flags.DEFINE_string("learning_rates", "", "Per-resolution learning rates, e.g. 128:2e-4,256:1e-4.")
flags.DEFINE_float("final_learning_rate", None, "Learning rate of the last phase (the source: 1e-4).")
flags.DEFINE_integer("fade_images", 60_000, "Images shown while a new resolution fades in.")
flags.DEFINE_integer("stable_images", 60_000, "Images shown in a stable phase.")
flags.DEFINE_bool("stable_every_resolution", False, "A stable phase after every fade (the paper), not only at 4x4 and the target.")
flags.DEFINE_bool("fade_real_images", False, "Blend real images between resolutions during a fade (the paper).")
flags.DEFINE_float("beta1", 0.0, "Adam beta1.")
flags.DEFINE_float("beta2", 0.99, "Adam beta2.")
flags.DEFINE_float("gp_weight", 10.0, "Gradient penalty weight (lambda).")
flags.DEFINE_float("drift_weight", 0.001, "Drift penalty weight on E[D(real)^2].")
flags.DEFINE_integer("critic_steps", 1, "Discriminator steps per generator step.")
flags.DEFINE_float("ema_decay", 0.995, "Generator EMA decay (the cap, with --ema_rampup).")
flags.DEFINE_bool("ema_rampup", True, "EMA decay min(1 - 1/(t+1), ema_decay) as in the source.")
flags.DEFINE_integer("seed", 0, "Seed of every random draw of the run.")
# Augmentation.
flags.DEFINE_bool("contrast", True, "Random contrast on real images, factor U[1, 2] (the source).")
flags.DEFINE_bool("mirror", False, "Random horizontal flips of real images. Off: icons have a handedness.")
flags.DEFINE_string("augment", "", "DiffAugment policy for D's inputs, e.g. color,translation,cutout.")
flags.DEFINE_float("augment_probability", 1.0, "Per-sample probability of each augmentation.")
flags.DEFINE_bool("adaptive_augment", False, "Adapt the probability to D's overfitting (ADA).")
# Execution.
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"], "tf.distribute strategy.")
flags.DEFINE_bool("mixed_precision", False, "bfloat16 compute with float32 weights.")
flags.DEFINE_bool("xla", True, "Compile the training step with XLA (single replica).")
flags.DEFINE_integer("checkpoint_every", 20_000, "Checkpoint every N images (and at phase ends and on signals).")
flags.DEFINE_integer("sample_every", 10_000, "Sample grid every N images.")
flags.DEFINE_integer("log_every", 50, "TensorBoard scalars every N steps.")
flags.DEFINE_integer("metrics_every", 0, "SWD/MS-SSIM every N images (0: at phase ends only).")
flags.DEFINE_integer("metrics_images", 256, "Images per set for the metrics during training (0: none).")
flags.DEFINE_integer("max_steps", None, "Stop (with a checkpoint) after this many steps in total.")


def _flags_text() -> str:
    """This script's flags as a flag file (what flags.txt and TensorBoard record)."""
    return "".join(f.serialize() + "\n" for f in F.get_flags_for_module(sys.modules[__name__])
                   if f.value is not None)


def main(argv):
    del argv
    import tensorflow as tf

    from mel_tf import data as data_lib
    from mel_tf.config import TrainConfig, preset
    from mel_tf.schedule import parse_resolution_map
    from mel_tf.training import LoopOptions, TrainingDiverged, train
    from mel_tf.rundir import RunDirError

    logging.getLogger("mel_tf").setLevel(logging.INFO)
    if F.strategy == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif F.strategy == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()

    try:
        background = tuple(int(v) for v in F.background.split(","))
        net_cfg = preset(F.preset, F.resolution, F.width,
                         dtype_policy="mixed_bfloat16" if F.mixed_precision else "float32",
                         mbstd_group_size=F.mbstd_group_size)
        train_cfg = TrainConfig(
            seed=F.seed, fade_images=F.fade_images, stable_images=F.stable_images,
            stable_every_resolution=F.stable_every_resolution, batch_size=F.batch_size,
            batch_sizes=tuple(parse_resolution_map(F.batch_sizes, int).items()),
            learning_rate=F.learning_rate,
            learning_rates=tuple(parse_resolution_map(F.learning_rates, float).items()),
            final_learning_rate=F.final_learning_rate, fade_real_images=F.fade_real_images,
            adam_beta1=F.beta1, adam_beta2=F.beta2, gp_weight=F.gp_weight,
            drift_weight=F.drift_weight, critic_steps=F.critic_steps, ema_decay=F.ema_decay,
            ema_rampup=F.ema_rampup, contrast=F.contrast, mirror=F.mirror, augment=F.augment,
            augment_probability=F.augment_probability, adaptive_augment=F.adaptive_augment,
            xla=F.xla and strategy.num_replicas_in_sync == 1)
        dataset = F.dataset if F.data_dir is None else None
        if F.data_dir is None and dataset is None:
            dataset = "twemoji_faces"
        image_set = data_lib.open_dataset(data_dir=F.data_dir, dataset=dataset,
                                          max_resolution=F.resolution, background=background,
                                          cache_dir=F.cache_dir)
        os.makedirs(F.logdir, exist_ok=True)
        with open(os.path.join(F.logdir, "flags.txt"), "w") as f:
            f.write(_flags_text())
        with open(os.path.join(F.logdir, "dataset.json"), "w") as f:
            json.dump(data_lib.describe(image_set), f, indent=2)
        metrics_fn = None
        if F.metrics_images > 0:
            from mel_tf.metrics import training_metrics_fn
            metrics_fn = training_metrics_fn(image_set, net_cfg, F.metrics_images, F.seed)
        options = LoopOptions(checkpoint_every_images=F.checkpoint_every,
                              sample_every_images=F.sample_every, log_every_steps=F.log_every,
                              metrics_every_images=F.metrics_every,
                              stop_after_steps=F.max_steps)
        result = train(net_cfg, train_cfg, image_set, F.logdir, strategy=strategy,
                       options=options, metrics_fn=metrics_fn, flags_text=_flags_text())
    except (ValueError, RunDirError, TrainingDiverged, FileNotFoundError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 1
    return 0 if result["done"] or result["stopped"] else 1


def run():
    argv = sys.argv
    if not any(a.startswith("--flagfile") for a in argv[1:]) and os.path.exists(DEMO_FLAGS):
        # A bare `python train.py` runs the demo; flags given after it override it.
        argv = [argv[0], f"--flagfile={DEMO_FLAGS}"] + argv[1:]
    run_app(main, sys.modules[__name__], argv)


if __name__ == "__main__":
    run()
