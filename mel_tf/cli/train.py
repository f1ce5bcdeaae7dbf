"""Trains a Progressive GAN on a folder of icons (or the built-in dataset).

    mel-train                                  # no arguments: the demo, configs/demo.flags
    mel-train --data_dir=my_icons              # the defaults below, into runs/my_icons
    mel-train --flagfile=configs/mel256.flags --data_dir=my_icons --logdir=runs/mel
    tensorboard --logdir=runs

(`python train.py ...` is the same program.) Every flag left out takes the default
shown by --help, which is the configuration's own (mel_tf/config.py). Running the same
command again resumes the run; a run directory holding other settings is refused.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys

from absl import flags

from mel_tf.cli import one_line, run_app
from mel_tf.config import DataConfig, LoopOptions, NetworkConfig, TrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_FLAGS = os.path.join(REPO, "configs", "demo.flags")


def _defaults(cls) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cls)}


NET, TRAIN, LOOP, DATA = (_defaults(c) for c in (NetworkConfig, TrainConfig, LoopOptions,
                                                 DataConfig))

F = flags.FLAGS
# Data.
flags.DEFINE_string("data_dir", DATA["data_dir"], "Folder of training images (searched "
                    "recursively); without it, the built-in --dataset.")
flags.DEFINE_string("dataset", None, f"Built-in dataset used without --data_dir (default: "
                    f"{DATA['dataset']}).")
flags.DEFINE_string("background", ",".join(map(str, DATA["background"])),
                    "R,G,B colour that transparent pixels are composited on.")
flags.DEFINE_string("cache_dir", None, "Cache for rasterised built-in datasets (default: "
                    "$MEL_TF_CACHE_DIR, else ~/.cache/mel_tf).")
# Run directory.
flags.DEFINE_string("logdir", None, "Run directory: checkpoints, TensorBoard events, samples "
                    "(default: runs/<name of the data folder or dataset>).")
flags.DEFINE_bool("allow_config_change", False, "Resume a run although its training or data "
                  "settings differ; the differences are recorded in its changes.log.")
# Network.
flags.DEFINE_enum("preset", NET["preset"], ["seed", "paper"],
                  "Architecture: the source's (seed) or Karras et al.'s (paper).")
flags.DEFINE_integer("resolution", NET["resolution"], "Target resolution, a power of two "
                     "from 4 to 1024.")
flags.DEFINE_float("width", NET["width"], "Channel width multiplier (e.g. 0.25 for quick "
                   "CPU runs).")
flags.DEFINE_integer("mbstd_group_size", None, "MiniBatchStd group size (0 = whole batch; "
                     "default: the preset's, seed 0, paper 4).")
# Schedule and optimisation.
flags.DEFINE_integer("batch_size", TRAIN["batch_size"], "Minibatch size (global, over all "
                     "replicas).")
flags.DEFINE_string("batch_sizes", "", "Per-resolution batch sizes, e.g. 4:64,8:64,16:32.")
flags.DEFINE_float("learning_rate", TRAIN["learning_rate"], "Adam learning rate of both "
                   "networks.")
flags.DEFINE_string("learning_rates", "", "Per-resolution learning rates, e.g. "
                    "128:2e-4,256:1e-4.")
flags.DEFINE_float("final_learning_rate", TRAIN["final_learning_rate"], "Learning rate of the "
                   "last phase (the source: 1e-4; default: that of its resolution).")
flags.DEFINE_integer("fade_images", TRAIN["fade_images"], "Images shown while a new "
                     "resolution fades in.")
flags.DEFINE_integer("stable_images", TRAIN["stable_images"], "Images shown in a stable phase.")
flags.DEFINE_bool("stable_every_resolution", TRAIN["stable_every_resolution"], "A stable phase "
                  "after every fade (the paper), not only at 4x4 and the target.")
flags.DEFINE_bool("fade_real_images", TRAIN["fade_real_images"], "Blend real images between "
                  "resolutions during a fade (the paper).")
flags.DEFINE_float("beta1", TRAIN["adam_beta1"], "Adam beta1.")
flags.DEFINE_float("beta2", TRAIN["adam_beta2"], "Adam beta2.")
flags.DEFINE_float("gp_weight", TRAIN["gp_weight"], "Gradient penalty weight (lambda).")
flags.DEFINE_float("drift_weight", TRAIN["drift_weight"], "Drift penalty weight on "
                   "E[D(real)^2].")
flags.DEFINE_integer("critic_steps", TRAIN["critic_steps"], "Discriminator steps per "
                     "generator step.")
flags.DEFINE_float("ema_decay", TRAIN["ema_decay"], "Generator EMA decay (the cap, with "
                   "--ema_rampup).")
flags.DEFINE_bool("ema_rampup", TRAIN["ema_rampup"], "EMA decay min(1 - 1/(t+1), ema_decay) "
                  "as in the source.")
flags.DEFINE_integer("seed", TRAIN["seed"], "Seed of every random draw of the run.")
# Augmentation.
flags.DEFINE_bool("contrast", TRAIN["contrast"], "Random contrast on real images, factor "
                  "U[1, 2] (the source).")
flags.DEFINE_bool("mirror", TRAIN["mirror"], "Random horizontal flips of real images (icons "
                  "have a handedness).")
flags.DEFINE_string("augment", TRAIN["augment"], "DiffAugment policy for D's inputs, e.g. "
                    "color,translation,cutout.")
flags.DEFINE_float("augment_probability", TRAIN["augment_probability"], "Per-sample "
                   "probability of each augmentation.")
flags.DEFINE_bool("adaptive_augment", TRAIN["adaptive_augment"], "Adapt the probability to "
                  "D's overfitting (ADA).")
# Execution.
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy.")
flags.DEFINE_bool("mixed_precision", False, "bfloat16 compute with float32 weights.")
flags.DEFINE_bool("xla", TRAIN["xla"], "Compile the training step with XLA (single replica).")
flags.DEFINE_integer("checkpoint_every", LOOP["checkpoint_every_images"], "Checkpoint every N "
                     "images (and at phase ends and on signals).")
flags.DEFINE_integer("sample_every", LOOP["sample_every_images"], "Sample grid every N images.")
flags.DEFINE_integer("log_every", LOOP["log_every_steps"], "TensorBoard scalars every N steps.")
flags.DEFINE_integer("metrics_every", LOOP["metrics_every_images"], "SWD/MS-SSIM every N "
                     "images (0: at phase ends only).")
flags.DEFINE_integer("metrics_images", LOOP["metrics_images"], "Images per set for the "
                     "metrics during training (0: none).")
flags.DEFINE_integer("max_steps", LOOP["stop_after_steps"], "Stop (with a checkpoint) after "
                     "this many steps in total.")


def _flags_text() -> str:
    """This program's flags as a flag file (what flags.txt and TensorBoard record)."""
    return "".join(f.serialize() + "\n" for f in F.get_flags_for_module(__name__)
                   if f.value is not None)


def data_config() -> DataConfig:
    from mel_tf.config import parse_rgb
    if F.data_dir is not None and F.dataset is not None:
        raise ValueError("give --data_dir or --dataset, not both")
    background = parse_rgb(F.background)
    if F.data_dir is not None:
        return DataConfig(data_dir=F.data_dir, background=background)
    return DataConfig(dataset=F.dataset or DATA["dataset"], background=background)


def network_config() -> NetworkConfig:
    from mel_tf.config import preset
    return preset(F.preset, F.resolution, F.width,
                  dtype_policy="mixed_bfloat16" if F.mixed_precision else "float32",
                  mbstd_group_size=F.mbstd_group_size)


def train_config(replicas: int) -> TrainConfig:
    from mel_tf.schedule import parse_resolution_map
    return TrainConfig(
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
        xla=F.xla and replicas == 1)


def loop_options() -> LoopOptions:
    return LoopOptions(checkpoint_every_images=F.checkpoint_every,
                       sample_every_images=F.sample_every, log_every_steps=F.log_every,
                       metrics_every_images=F.metrics_every, metrics_images=F.metrics_images,
                       stop_after_steps=F.max_steps)


def _strategy():
    import tensorflow as tf
    if F.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if F.strategy == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _train() -> int:
    from mel_tf import data as data_lib
    from mel_tf import rundir
    from mel_tf.training import train

    data_cfg, net_cfg, options = data_config(), network_config(), loop_options()
    logdir = F.logdir or os.path.join("runs", data_cfg.name)
    rundir.check_location(logdir)          # before minutes of data loading
    strategy = _strategy()
    train_cfg = train_config(strategy.num_replicas_in_sync)
    image_set = data_lib.open_data(data_cfg, net_cfg.resolution, cache_dir=F.cache_dir)
    metrics_fn = None
    if options.metrics_images > 0:
        from mel_tf.metrics import training_metrics_fn
        metrics_fn = training_metrics_fn(image_set, net_cfg, options.metrics_images,
                                         train_cfg.seed)
    records = rundir.Records(flags_text=_flags_text(),
                             dataset=data_lib.run_record(data_cfg, image_set),
                             allow_config_change=F.allow_config_change)
    result = train(net_cfg, train_cfg, image_set, logdir, strategy=strategy, options=options,
                   metrics_fn=metrics_fn, records=records)
    return 0 if result["done"] or result["stopped"] else 1


def main(argv):
    from mel_tf.rundir import RunDirError
    from mel_tf.training import TrainingDiverged

    if len(argv) > 1:
        print(f"{os.path.basename(argv[0])}: error: unexpected arguments {argv[1:]} "
              "(flags are written --name=value)", file=sys.stderr)
        return 1
    logging.getLogger("mel_tf").setLevel(logging.INFO)
    try:
        return _train()
    except (ValueError, OSError, ModuleNotFoundError, RunDirError, TrainingDiverged) as e:
        print(f"{os.path.basename(argv[0])}: error: {one_line(e)}", file=sys.stderr)
        return 1


def run(argv=None):
    """The console script: with no arguments at all, the demo (configs/demo.flags)."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) == 1:
        if not os.path.isfile(DEMO_FLAGS):
            sys.exit(f"{os.path.basename(argv[0])}: error: the demo's settings "
                     f"({DEMO_FLAGS}) are not installed; give --data_dir or --dataset")
        argv.append(f"--flagfile={DEMO_FLAGS}")
    run_app(main, sys.modules[__name__], argv)


if __name__ == "__main__":
    run()
