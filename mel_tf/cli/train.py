"""Trains a Progressive GAN on a folder of icons (or the built-in dataset).

    mel-train                                  # no arguments: the demo (--config=demo)
    mel-train --data_dir=my_icons              # the defaults below, into runs/my_icons
    mel-train --config=mel256 --data_dir=my_icons --logdir=runs/mel
    tensorboard --logdir=runs

--config=NAME reads a flag file shipped with mel_tf (demo: the built-in icons at
32x32 on a CPU; mel256: the source's own settings at 256x256; paper256: Karras et
al.'s); --flagfile=PATH reads your own. Flags after either override it. Every
flag left out takes the default shown below, which is the configuration's own
(mel_tf/config.py): the best configuration the project's studies found for a few
hundred icons. Running the same command again resumes the run; a run directory
holding other settings is refused. (`python train.py ...` is the same program.)

Expected time of the defaults: {default_time}.
Expected time of --config=mel256: {mel256_time}.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys

from absl import flags

from mel_tf import config
from mel_tf.cli import (LOG_FORMAT, LOG_TIME_FORMAT, fail, flags as config_flags,
                        program_name, run_app)

F = flags.FLAGS
log = logging.getLogger("mel_tf")
config_flags.define(F, module_name=__name__)
CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "configs")
DEMO = "demo"


def shipped_configs(name: str):
    """(NetworkConfig, TrainConfig) of a shipped flag file, read with fresh flags."""
    values = flags.FlagValues()
    config_flags.define(values)
    values(["mel-train", f"--flagfile={shipped_config(name)}"])
    return config_flags.read(config.NetworkConfig, values), config_flags.read(
        config.TrainConfig, values)


def expected_times() -> dict:
    from mel_tf.training.estimate import expected_time
    return {"default_time": expected_time(config.NetworkConfig(), config.TrainConfig()),
            "mel256_time": expected_time(*shipped_configs("mel256"))}


def shipped_config(name: str) -> str:
    """The path of a flag file shipped with mel_tf (mel_tf/configs/NAME.flags)."""
    path = os.path.join(CONFIGS_DIR, f"{name}.flags")
    if not os.path.isfile(path):
        known = sorted(f[:-6] for f in os.listdir(CONFIGS_DIR) if f.endswith(".flags"))
        raise ValueError(f"no shipped configuration {name!r} (known: {', '.join(known)})")
    return path


def expand_config(argv):
    """argv with --config=NAME replaced by --flagfile=<the shipped file>; no
    arguments at all is the demo."""
    if len(argv) == 1:
        return argv + [f"--flagfile={shipped_config(DEMO)}"]
    return [f"--flagfile={shipped_config(a.split('=', 1)[1])}" if a.startswith("--config=")
            else a for a in argv]


def data_config() -> config.DataConfig:
    if F.data_dir is not None and F["dataset"].present:
        raise ValueError("give --data_dir or --dataset, not both")
    return config_flags.read(config.DataConfig, F)


def make_strategy(execution: config.Execution):
    import tensorflow as tf
    if execution.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if execution.strategy == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _train() -> int:
    # Every flag is checked before TensorFlow loads (seconds), so a mistyped value
    # is refused at once.
    data_cfg = data_config()
    net_cfg, train_cfg, run_cfg, options, execution = (
        config_flags.read(cls, F) for cls in (config.NetworkConfig, config.TrainConfig,
                                              config.RunConfig, config.LoopOptions,
                                              config.Execution))
    from mel_tf.training import data as data_lib
    from mel_tf.training import rundir
    from mel_tf.training.loop import train

    logdir = run_cfg.logdir or os.path.join("runs", data_cfg.name)
    rundir.check_location(logdir)          # before minutes of data loading
    image_set = data_lib.open_data(data_cfg, net_cfg.resolution, cache_dir=run_cfg.cache_dir)
    metrics_fn = None
    if options.metrics_images > 0:
        from mel_tf.training.evaluation import training_metrics_fn
        metrics_fn = training_metrics_fn(image_set, net_cfg, options.metrics_images,
                                         train_cfg.seed)
    records = rundir.Records(
        flags_text=config_flags.flag_file(
            data_cfg, dataclasses.replace(run_cfg, logdir=logdir, allow_config_change=False),
            net_cfg, train_cfg, options, execution),
        dataset=data_lib.run_record(data_cfg, image_set),
        allow_config_change=run_cfg.allow_config_change)
    rundir.check_resume(logdir, net_cfg, train_cfg, records)   # refused before the opening line
    log.info(opening_line(data_cfg, image_set, net_cfg, train_cfg, logdir))
    result = train(net_cfg, train_cfg, image_set, logdir, strategy=make_strategy(execution),
                   options=options, metrics_fn=metrics_fn, records=records,
                   execution=execution)
    log.info(closing_line(result, logdir))
    return 0 if result["done"] or result["stopped"] else 1


def opening_line(data_cfg, image_set, net_cfg, train_cfg, logdir) -> str:
    """What is trained, how long, and where to watch it."""
    from mel_tf.training.schedule import schedule_for
    schedule = schedule_for(net_cfg, train_cfg)
    from mel_tf.training.estimate import expected_time
    return (f"Training the {net_cfg.preset} preset at width {net_cfg.width:g} up to "
            f"{net_cfg.resolution}x{net_cfg.resolution} on {data_cfg.name} ({len(image_set)} "
            f"icons): {schedule.total_images:,} images in {len(schedule.phases)} phases, "
            f"{expected_time(net_cfg, train_cfg)}. Samples: "
            f"{os.path.join(logdir, 'samples')}; watch: tensorboard --logdir={logdir}")


def closing_line(result, logdir) -> str:
    """What to do next, with this run's paths."""
    if result["stopped"]:
        return (f"Stopped at {result['images_shown']:,} images: run the same command again "
                "to resume.")
    installed = program_name().startswith("mel-")
    export, generate = (("mel-export", "mel-generate") if installed else
                        ("python export.py", "python generate.py"))
    model = os.path.join(logdir, "export", "generator.tflite")
    return (f"Done. Samples: {os.path.join(logdir, 'samples')}. Next: {export} "
            f"--logdir={logdir} --tflite --web, then {generate} --model={model} --out=icons")


def configure_logging(verbose: bool) -> None:
    """mel_tf's own lines, short, on stderr; TensorFlow's INFO lines only with --verbose."""
    import absl.logging
    if not verbose:
        absl.logging.set_verbosity(absl.logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_TIME_FORMAT))
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)


def main(argv):
    if len(argv) > 1:
        fail(ValueError(f"unexpected arguments {argv[1:]} (flags are written --name=value)"))
    if not F.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    configure_logging(F.verbose)
    try:
        return _train()
    except (ValueError, OSError, ModuleNotFoundError) as e:    # RunDirError is a ValueError
        fail(e)
    except RuntimeError as e:
        # Only training raises TrainingDiverged, so its module (TensorFlow) is loaded by then.
        from mel_tf.training.callbacks import TrainingDiverged
        if isinstance(e, TrainingDiverged):
            fail(e)
        raise


def run(argv=None):
    """The console script (and `python train.py`)."""
    argv = list(sys.argv if argv is None else argv)
    if any(a.startswith("--help") for a in argv):
        sys.modules[__name__].__doc__ = __doc__.format(**expected_times())
    try:
        argv = expand_config(argv)
    except ValueError as e:
        fail(e)
    run_app(main, sys.modules[__name__], argv)


if __name__ == "__main__":
    run()
