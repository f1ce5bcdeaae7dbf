"""The run directory: everything about one training run in one folder.

    logdir/
      config.json         network and training configuration (checked on resume)
      flags.txt           the command-line flags of the latest start
      dataset.json        the data: what it is and how to reopen it (checked on resume)
      changes.log         settings changed on resume with --allow_config_change
      checkpoints/        tf.train.CheckpointManager: G, D, G EMA, optimizers, position
        damaged/          checkpoints that did not read back, set aside on resume
      samples/            PNG grids of the EMA generator on a fixed latent batch
      events.out.tfevents.*   TensorBoard

The position in the schedule is two integers (images shown, steps taken);
the phase, a and every random draw are derived from them.

A checkpoint is used only once every tensor in it reads back (a crash or a full
disk can leave a file short): resuming and reading the EMA generator fall back
to the newest checkpoint that does, with one log line naming the damaged file.
"""

from __future__ import annotations

import dataclasses
import datetime
import glob
import json
import logging
import os
from typing import List, NamedTuple, Optional, Sequence, Tuple

import tensorflow as tf

from mel_tf.config import ALLOWED, ARCHITECTURE, NetworkConfig, TrainConfig
from mel_tf.errors import first_line
from mel_tf.training.schedule import schedule_for

CONFIG_FILE = "config.json"
FLAGS_FILE = "flags.txt"
DATASET_FILE = "dataset.json"
CHANGES_FILE = "changes.log"
# What identifies a run's data in dataset.json: another value is another data set.
DATA_IDENTITY = ("data_dir", "dataset", "background", "num_images")
CHECKPOINT_DIR = "checkpoints"
DAMAGED_DIR = "damaged"             # inside CHECKPOINT_DIR
SAMPLES_DIR = "samples"
# What reading a damaged checkpoint raises: a short file IndexError, a bad
# checksum, a missing file or a garbled index an OpError.
READ_ERRORS = (IndexError, ValueError, OSError, tf.errors.OpError)

log = logging.getLogger("mel_tf")


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


def read_config(logdir: str) -> Tuple[NetworkConfig, TrainConfig]:
    path = os.path.join(logdir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise RunDirError(f"{logdir} is not a mel_tf run directory (no {CONFIG_FILE})")
    with open(path) as f:
        d = json.load(f)
    return NetworkConfig.from_dict(d["network"]), TrainConfig.from_dict(d["train"])


@dataclasses.dataclass(frozen=True)
class Records:
    """What a run directory records beside config.json, and whether it may change."""

    flags_text: Optional[str] = None      # flags.txt: the command line, as a flag file
    dataset: Optional[dict] = None        # dataset.json (mel_tf.training.data.run_record)
    # Resume although the training or data settings differ from the recorded
    # ones; the differences are appended to changes.log.
    allow_config_change: bool = False


def check_location(logdir: str) -> None:
    """Raises RunDirError unless `logdir` is, or can be made, a writable directory.

    Writes nothing, so a start refused here leaves the disk as it was.
    """
    path = os.path.abspath(logdir)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise RunDirError(f"cannot use {logdir} as a run directory: {path} is a file")
    if not os.access(path, os.W_OK | os.X_OK):
        raise RunDirError(f"cannot write to {path} (run directory {logdir}): permission denied")


def prepare(logdir: str, net_cfg: NetworkConfig, train_cfg: TrainConfig,
            records: Optional[Records] = None, write: bool = True) -> bool:
    """Checks that `logdir` may hold this run, then writes its records.

    Returns True when the directory already held a run (a resume). A run with
    another architecture is always refused (its checkpoints cannot be mixed);
    one with other training or data settings unless `allow_config_change`.
    Nothing is written before those checks pass, nor at all with write=False
    (a worker that is not the chief of a multi-worker run).
    """
    records = records or Records()
    changes = check_resume(logdir, net_cfg, train_cfg, records)
    resumed = os.path.isfile(os.path.join(logdir, CONFIG_FILE))
    if not write:
        return resumed
    try:
        _write_records(logdir, net_cfg, train_cfg, records, changes)
    except OSError as e:
        raise RunDirError(f"cannot write the run directory {logdir}: "
                          f"{e.strerror or e}{f' ({e.filename})' if e.filename else ''}") from e
    return resumed


def check_resume(logdir: str, net_cfg: NetworkConfig, train_cfg: TrainConfig,
                 records: Optional[Records] = None) -> list:
    """['train.seed: 0 -> 1', ...]: the differences a start in `logdir` would make
    to the run there ([] for a new run); RunDirError when they are not allowed.
    What may differ is each field's `resume` (mel_tf.config.setting). Writes nothing."""
    records = records or Records()
    check_location(logdir)
    if not os.path.isfile(os.path.join(logdir, CONFIG_FILE)):
        return []
    old_net, old_train = read_config(logdir)
    if old_net.channel_table() == net_cfg.channel_table():
        # A floor that narrows nothing (at full width, say) builds the same networks.
        old_net = old_net.replace(**net_cfg.channel_floor())
    arch = changes_between(old_net, net_cfg, {ARCHITECTURE, ALLOWED})
    if arch:
        raise RunDirError(f"{logdir} holds a run with other architecture settings "
                          f"({', '.join(arch)}); use another --logdir or the original settings")
    changes = ["train." + d for d in changes_between(old_train, train_cfg, {ALLOWED})]
    old_data = read_dataset_record(logdir)
    if old_data is not None and records.dataset is not None:
        changes += ["data." + d for d in _dict_differences(
            {k: old_data.get(k) for k in DATA_IDENTITY if k in old_data},
            {k: records.dataset.get(k) for k in DATA_IDENTITY if k in old_data})]
    if changes and not records.allow_config_change:
        raise RunDirError(f"{logdir} holds a run with other training or data settings "
                          f"({', '.join(changes)}); use another --logdir, the original "
                          "settings, or --allow_config_change to resume with these")
    return changes


def _write_records(logdir, net_cfg, train_cfg, records, changes):
    os.makedirs(os.path.join(logdir, SAMPLES_DIR), exist_ok=True)
    if changes:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        with open(os.path.join(logdir, CHANGES_FILE), "a") as f:
            f.write(f"{stamp} resumed with --allow_config_change: {'; '.join(changes)}\n")
    _atomic_write(os.path.join(logdir, CONFIG_FILE),
                  json.dumps({"network": net_cfg.to_dict(), "train": train_cfg.to_dict()},
                             indent=2, sort_keys=True))
    if records.flags_text is not None:
        _atomic_write(os.path.join(logdir, FLAGS_FILE), records.flags_text)
    if records.dataset is not None:
        _atomic_write(os.path.join(logdir, DATASET_FILE), json.dumps(records.dataset, indent=2))


def changes_between(old, new, policies) -> list:
    """The fields of two configurations of one class that differ, among the
    fields whose `resume` is one of `policies`."""
    return [f"{f.name}: {getattr(old, f.name)!r} -> {getattr(new, f.name)!r}"
            for f in dataclasses.fields(new) if f.metadata.get("resume") in policies
            and getattr(old, f.name) != getattr(new, f.name)]


def _dict_differences(old: dict, new: dict) -> list:
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def read_dataset_record(logdir: str) -> Optional[dict]:
    """The run's dataset.json (mel_tf.training.data.run_record), or None when it
    has none; RunDirError when it cannot be read."""
    path = os.path.join(logdir, DATASET_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as e:
        raise RunDirError(f"cannot read {path}: {first_line(e)}") from e
    if not isinstance(record, dict):
        raise RunDirError(f"cannot read {path}: not a JSON object")
    return record


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run directory: always, except on the
    workers of a multi-worker run other than the chief (worker 0)."""
    return bool(strategy.extended.should_checkpoint)


def checkpoint_manager(logdir: str, max_to_keep: int = 3, directory: Optional[str] = None,
                       **objects) -> tf.train.CheckpointManager:
    """A CheckpointManager over `objects` in logdir/checkpoints (or `directory`).

    TensorFlow writes the checkpoint files first and then replaces the small
    'checkpoint' index file atomically, so a checkpoint interrupted while being
    written never becomes the latest one.
    """
    return tf.train.CheckpointManager(tf.train.Checkpoint(**objects),
                                      directory or os.path.join(logdir, CHECKPOINT_DIR),
                                      max_to_keep=max_to_keep)


def save_checkpoint(manager: tf.train.CheckpointManager, step: int) -> str:
    """manager.save, with a failed write (a full disk) as one RunDirError.

    The manager points its index at a checkpoint only after writing it, so
    after a failure the previous checkpoint is still the latest and loads.
    """
    try:
        return manager.save(checkpoint_number=step)
    except (OSError, tf.errors.OpError) as e:
        reason = first_line(e)
        kept = manager.latest_checkpoint
        raise RunDirError(
            f"could not write the checkpoint of step {step} in {manager.directory} ({reason}); "
            + (f"the last good checkpoint {os.path.basename(kept)} is kept: make room and run "
               "the same command again to resume from it" if kept else
               "no earlier checkpoint exists")) from e


def latest_checkpoint(logdir: str) -> Optional[str]:
    """The checkpoint the index names as the latest (unread: see newest_loadable_checkpoint)."""
    return tf.train.latest_checkpoint(os.path.join(logdir, CHECKPOINT_DIR))


@dataclasses.dataclass(frozen=True)
class DamagedCheckpoint:
    """A checkpoint that does not read back whole."""

    path: str       # its prefix: .../checkpoints/ckpt-N
    file: str       # the file that failed to read
    reason: str     # TensorFlow's first line

    def __str__(self):
        return f"{self.file} ({self.reason})"


def checkpoint_damage(path: str) -> Optional[DamagedCheckpoint]:
    """None when every tensor of the checkpoint `path` reads back (its length
    and checksum); else the file that failed and why.

    A restore reads some tensors only when their objects are created (the
    optimizers' slots, at the first step), so a short file would fail
    mid-training: the whole checkpoint is read before it is used.
    """
    try:
        reader = tf.train.load_checkpoint(path)
    except READ_ERRORS as e:
        return DamagedCheckpoint(path, path + ".index", first_line(e))
    try:
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except READ_ERRORS as e:
        data = sorted(glob.glob(glob.escape(path) + ".data-*"))
        return DamagedCheckpoint(path, data[0] if len(data) == 1 else path + ".data-*",
                                 first_line(e))
    return None


def checkpoint_paths(directory: str) -> List[str]:
    """The checkpoints the index of `directory` lists, oldest first."""
    state = tf.train.get_checkpoint_state(directory)
    if state is None:
        return []
    paths = list(state.all_model_checkpoint_paths)
    if state.model_checkpoint_path and state.model_checkpoint_path not in paths:
        paths.append(state.model_checkpoint_path)
    return paths


def newest_loadable_checkpoint(directory: str) -> Tuple[Optional[str], List[DamagedCheckpoint]]:
    """The newest checkpoint in `directory` that reads back whole, and the newer
    ones that do not, newest first. (None, []) when there is no checkpoint;
    RunDirError, naming the newest one's damaged file, when none reads back.
    """
    damaged = []
    for path in reversed(checkpoint_paths(directory)):
        damage = checkpoint_damage(path)
        if damage is None:
            return path, damaged
        damaged.append(damage)
    if damaged:
        older = f" (and {len(damaged) - 1} older)" if len(damaged) > 1 else ""
        raise RunDirError(f"no checkpoint in {directory} can be read: {damaged[0]}{older}; "
                          "restore the folder from a backup, or move it away to start over")
    return None, []


def fallback_note(damaged: Sequence[DamagedCheckpoint], used: str) -> str:
    """The log line of a fall back from damaged checkpoints to `used`."""
    return (f"could not read {'; '.join(map(str, damaged))}: using the checkpoint "
            f"{os.path.basename(used)} instead")


def set_aside(directory: str, damaged: Sequence[DamagedCheckpoint]) -> str:
    """Takes damaged checkpoints out of the index of `directory` and moves their
    files into its DAMAGED_DIR, which it returns.

    A CheckpointManager keeps the index's list: a damaged checkpoint left in it
    would take the place of a good one among the `max_to_keep`, and stay listed
    after later saves. Make the manager after this.
    """
    state = tf.train.get_checkpoint_state(directory)
    bad = {d.path for d in damaged}
    stamps = dict(zip(state.all_model_checkpoint_paths, state.all_model_checkpoint_timestamps))
    kept = [p for p in checkpoint_paths(directory) if p not in bad]
    if kept:
        _write_index(directory, kept, [stamps.get(p) for p in kept],
                     state.last_preserved_timestamp)
    aside = os.path.join(directory, DAMAGED_DIR)
    os.makedirs(aside, exist_ok=True)
    for d in damaged:
        for f in glob.glob(glob.escape(d.path) + ".*"):
            os.replace(f, os.path.join(aside, os.path.basename(f)))
    return aside


def _write_index(directory: str, paths: List[str], stamps: List[Optional[float]],
                 last_preserved: float) -> None:
    """Writes the index file of `directory` (atomically) listing `paths`, newest last."""
    # CheckpointManager, which the deprecation notice of this function points
    # to, cannot drop a checkpoint from its list. With an absolute folder and
    # bare names the entries are written relative, as the manager writes them,
    # so the run directory can move.
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        tf.compat.v1.train.update_checkpoint_state(
            os.path.abspath(directory), os.path.basename(paths[-1]),
            [os.path.basename(p) for p in paths],
            all_model_checkpoint_timestamps=None if None in stamps else stamps,
            last_preserved_timestamp=last_preserved)
    finally:
        logger.setLevel(level)


class EmaCheckpoint(NamedTuple):
    generator: object           # mel_tf.training.networks.Generator
    net_cfg: NetworkConfig
    train_cfg: TrainConfig
    images_shown: int
    path: str                   # the checkpoint read


def load_ema(logdir: str, dtype_policy: str = "float32") -> EmaCheckpoint:
    """The EMA generator of a run's newest checkpoint that reads back whole; a
    newer damaged one is logged and skipped (the run directory is not changed).

    Raises RunDirError for a directory that is missing, not a run, has no
    checkpoint, none that reads back, or one that does not match config.json.
    """
    if not os.path.isdir(logdir):
        raise RunDirError(f"run directory {logdir} does not exist")
    net_cfg, train_cfg = read_config(logdir)
    ckpt_path, damaged = newest_loadable_checkpoint(os.path.join(logdir, CHECKPOINT_DIR))
    if ckpt_path is None:
        raise RunDirError(f"{logdir} has no checkpoint yet")
    if damaged:
        log.warning(fallback_note(damaged, ckpt_path))
    from mel_tf.training.networks import Generator  # networks pull in Keras; config readers need not
    generator = Generator(net_cfg, name="generator_ema", dtype_policy=dtype_policy)
    state = RunState()
    try:
        tf.train.Checkpoint(generator_ema=generator, state=state).restore(
            ckpt_path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise RunDirError(f"checkpoint {ckpt_path} does not match {CONFIG_FILE}: "
                          f"{first_line(e)}") from e
    return EmaCheckpoint(generator, net_cfg, train_cfg, int(state.images_shown.numpy()), ckpt_path)


def load_ema_generator(logdir: str, dtype_policy: str = "float32"):
    """(generator, net_cfg, train_cfg, images_shown): `load_ema` without the path."""
    return tuple(load_ema(logdir, dtype_policy))[:4]


def completed_resolution(net_cfg: NetworkConfig, train_cfg: TrainConfig, images_shown: int) -> int:
    """The highest resolution with a completed phase (a finished fade, or the
    finished 4x4 stable phase); 0 if none has finished yet."""
    schedule = schedule_for(net_cfg, train_cfg)
    done = [phase.resolution for i, phase in enumerate(schedule.phases)
            if images_shown >= schedule.phase_end(i)]
    return max(done, default=0)
