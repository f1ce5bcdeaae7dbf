"""The run directory: everything about one training run in one folder.

    logdir/
      config.json         network and training configuration (checked on resume)
      flags.txt           the command-line flags used (written by train.py)
      checkpoints/        tf.train.CheckpointManager: G, D, G EMA, optimizers, position
      samples/            PNG grids of the EMA generator on a fixed latent batch
      events.out.tfevents.*   TensorBoard

The position in the schedule is two integers (images shown, steps taken);
the phase, a and every random draw are derived from them.
"""

from __future__ import annotations

import json
import os
from typing import Optional, Tuple

import tensorflow as tf

from mel_tf.config import NetworkConfig, TrainConfig
from mel_tf.schedule import schedule_for

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
SAMPLES_DIR = "samples"


class RunDirError(ValueError):
    """A run directory that cannot be used as asked."""


class RunState(tf.Module):
    """The run's position, checkpointed with the networks."""

    def __init__(self):
        super().__init__(name="run_state")
        self.images_shown = tf.Variable(0, dtype=tf.int64, trainable=False, name="images_shown")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")


def _atomic_write(path: str, text: str):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _architecture(cfg: NetworkConfig) -> dict:
    # The dtype policy changes how the maths runs, not which weights exist.
    d = cfg.to_dict()
    d.pop("dtype_policy")
    return d


def read_config(logdir: str) -> Tuple[NetworkConfig, TrainConfig]:
    path = os.path.join(logdir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise RunDirError(f"{logdir} is not a mel_tf run directory (no {CONFIG_FILE})")
    with open(path) as f:
        d = json.load(f)
    return NetworkConfig.from_dict(d["network"]), TrainConfig.from_dict(d["train"])


def prepare(logdir: str, net_cfg: NetworkConfig, train_cfg: TrainConfig) -> bool:
    """Creates the run directory, or checks that it belongs to this architecture.

    Returns True when the directory already held a run (a resume). A directory
    made with another architecture is refused: its checkpoints cannot be mixed.
    """
    os.makedirs(logdir, exist_ok=True)
    path = os.path.join(logdir, CONFIG_FILE)
    if os.path.isfile(path):
        old_net, _ = read_config(logdir)
        old, new = _architecture(old_net), _architecture(net_cfg)
        if old != new:
            diff = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
                             for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k))
            raise RunDirError(f"{logdir} holds a run with other architecture settings ({diff}); "
                              "use another --logdir or the original settings")
        resumed = True
    else:
        resumed = False
    _atomic_write(path, json.dumps({"network": net_cfg.to_dict(), "train": train_cfg.to_dict()},
                                   indent=2, sort_keys=True))
    os.makedirs(os.path.join(logdir, SAMPLES_DIR), exist_ok=True)
    return resumed


def checkpoint_manager(logdir: str, max_to_keep: int = 3, **objects) -> tf.train.CheckpointManager:
    """A CheckpointManager over `objects` in logdir/checkpoints.

    TensorFlow writes the checkpoint files first and then replaces the small
    'checkpoint' index file atomically, so a checkpoint interrupted while being
    written never becomes the latest one.
    """
    return tf.train.CheckpointManager(tf.train.Checkpoint(**objects),
                                      os.path.join(logdir, CHECKPOINT_DIR), max_to_keep=max_to_keep)


def latest_checkpoint(logdir: str) -> Optional[str]:
    return tf.train.latest_checkpoint(os.path.join(logdir, CHECKPOINT_DIR))


def load_ema_generator(logdir: str, dtype_policy: str = "float32"):
    """The EMA generator of a run's latest checkpoint.

    Returns (generator, net_cfg, train_cfg, images_shown). Raises RunDirError
    for a directory that is missing, not a run, or has no checkpoint.
    """
    if not os.path.isdir(logdir):
        raise RunDirError(f"run directory {logdir} does not exist")
    net_cfg, train_cfg = read_config(logdir)
    ckpt_path = latest_checkpoint(logdir)
    if ckpt_path is None:
        raise RunDirError(f"{logdir} has no checkpoint yet")
    from mel_tf.networks import Generator  # networks pull in Keras; config readers need not
    net_cfg = net_cfg.replace(dtype_policy=dtype_policy)
    generator = Generator(net_cfg, name="generator_ema")
    state = RunState()
    try:
        tf.train.Checkpoint(generator_ema=generator, state=state).restore(
            ckpt_path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise RunDirError(f"checkpoint {ckpt_path} does not match {CONFIG_FILE}: "
                          f"{str(e).splitlines()[0]}") from e
    return generator, net_cfg, train_cfg, int(state.images_shown.numpy())


def completed_resolution(net_cfg: NetworkConfig, train_cfg: TrainConfig, images_shown: int) -> int:
    """The highest resolution with a completed phase (a finished fade, or the
    finished 4x4 stable phase); 0 if none has finished yet."""
    schedule = schedule_for(net_cfg, train_cfg)
    done = [phase.resolution for i, phase in enumerate(schedule.phases)
            if images_shown >= schedule.phase_end(i)]
    return max(done, default=0)
