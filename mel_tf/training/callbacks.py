"""The training loop's concerns as Keras callbacks: `train()` runs each phase of
the schedule as one `ProGAN.fit()` with these, in this order, then the user's.

    StopOnNaN       a non-finite loss ends the run (TrainingDiverged)
    Clock           counts steps and images shown: the run's position
    Fade            the phase's stage and learning rate, a before each batch
    TensorBoardScalars  mean losses per window, a, resolution, speed
    ProgressBar     one status line: losses, speed, when the phase ends
    Samples         the EMA generator's grid: PNG and TensorBoard image
    PhaseMetrics    SWD/MS-SSIM at phase ends (and every N images)
    Checkpoints     periodic, phase end, and on Ctrl-C/SIGTERM (then stops)

Callbacks get the step's logs as Python floats (g_loss, d_loss, ...) in
`on_train_batch_end`; those that need the run's position share one `Clock`.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from mel_tf.training import rundir
from mel_tf.training.schedule import Schedule

log = logging.getLogger("mel_tf")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


class Clock(keras.callbacks.Callback):
    """The run's position: steps taken and images shown, advanced after each
    step. The phase is fixed at the start of each `fit` (one per phase)."""

    def __init__(self, schedule: Schedule, images_shown: int = 0, step: int = 0):
        super().__init__()
        self.schedule = schedule
        self.images_shown = images_shown
        self.step = step
        self.start_phase()

    def start_phase(self):
        pos = self.schedule.locate(self.images_shown)
        self.phase_index, self.phase = pos.phase_index, pos.phase
        self.phase_start = self.schedule.starts[pos.phase_index]
        self.phase_end = self.schedule.phase_end(pos.phase_index)

    @property
    def alpha(self) -> float:
        """The fade's a for the next step (at a phase's end: 1)."""
        return self.schedule.alpha(self.phase_index, self.images_shown)

    @property
    def steps_left_in_phase(self) -> int:
        return -(-(self.phase_end - self.images_shown) // self.phase.batch_size)

    @property
    def phase_done(self) -> bool:
        return self.images_shown >= self.phase_end

    @property
    def done(self) -> bool:
        return self.images_shown >= self.schedule.total_images

    def crossed(self, every: int) -> bool:
        """Whether the last step passed a multiple of `every` images (0: never)."""
        before = self.images_shown - self.phase.batch_size
        return bool(every) and self.images_shown // every != before // every

    def on_train_begin(self, logs=None):
        self.start_phase()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self.images_shown += self.phase.batch_size


class StopOnNaN(keras.callbacks.Callback):
    """Raises TrainingDiverged at the first non-finite log value; comes before
    the Clock, so the message names the step that diverged."""

    def __init__(self, clock: Clock, checkpoint_dir: str):
        super().__init__()
        self.clock, self.checkpoint_dir = clock, checkpoint_dir

    def on_train_batch_end(self, batch, logs=None):
        bad = {k: v for k, v in (logs or {}).items() if not math.isfinite(v)}
        if bad:
            c = self.clock
            raise TrainingDiverged(
                f"non-finite loss at step {c.step} ({c.images_shown} images, {c.phase.name}): "
                + ", ".join(f"{k}={v}" for k, v in bad.items())
                + f"; the last good checkpoint is kept in {self.checkpoint_dir}")


class Fade(keras.callbacks.Callback):
    """The progressive growing: each phase sets its stage (which layers run)
    and learning rate, and a is set before every batch, so a resumed run
    continues the fade exactly where it stopped."""

    def __init__(self, clock: Clock):
        super().__init__()
        self.clock = clock
        self.stage = None

    def on_train_begin(self, logs=None):
        phase = self.clock.phase
        self.model.set_learning_rate(phase.learning_rate)
        if self.stage != (phase.resolution, phase.fading):
            self.stage = (phase.resolution, phase.fading)
            self.model.set_stage(*self.stage)
            # The stage is Python structure in the traced step: trace it anew.
            self.model.make_train_function(force=True)

    def on_train_batch_begin(self, batch, logs=None):
        self.model.set_alpha(self.clock.alpha)


class _Window:
    """Means of the logs over a window of steps, and the window's speed."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.sums, self.count, self.images, self.t0 = {}, 0, 0, time.time()

    def add(self, logs, images):
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1
        self.images += images

    def means(self):
        return {k: v / max(self.count, 1) for k, v in self.sums.items()}

    def images_per_second(self):
        return self.images / max(time.time() - self.t0, 1e-9)


class TensorBoardScalars(keras.callbacks.Callback):
    """Mean losses over every `every_steps` steps (and at phase ends), with a,
    resolution, learning rate and speed, keyed by images shown."""

    def __init__(self, clock: Clock, writer, every_steps: int):
        super().__init__()
        self.clock, self.writer, self.every = clock, writer, every_steps
        self.window = _Window()

    def on_train_begin(self, logs=None):
        self.window.reset()

    def on_train_batch_end(self, batch, logs=None):
        c = self.clock
        self.window.add(logs or {}, c.phase.batch_size)
        if self.window.count < self.every and not c.phase_done:
            return
        at = c.images_shown
        with self.writer.as_default():
            for k, v in self.window.means().items():
                tf.summary.scalar(f"loss/{k}", v, step=at)
            tf.summary.scalar("progress/alpha", c.alpha, step=at)
            tf.summary.scalar("progress/resolution", c.phase.resolution, step=at)
            tf.summary.scalar("progress/learning_rate", c.phase.learning_rate, step=at)
            tf.summary.scalar("progress/images_per_second", self.window.images_per_second(),
                              step=at)
        self.window.reset()


class ProgressBar(keras.callbacks.Callback):
    """One status line: phase, a, losses, speed and when the phase ends. On a
    terminal it is redrawn in place and cleared before each log line (a logging
    filter), so log lines never land behind it.

    The first steps of every phase compile the step; the phase's end is
    estimated only from the steps after them, once enough are timed."""

    COMPILE_STEPS = 2       # a phase's first steps: tracing and compiling, not training
    TIMED_STEPS = 20        # steps timed before the phase's end is estimated

    def __init__(self, clock: Clock, enabled: bool = True, stream=None):
        super().__init__()
        self.clock, self.enabled = clock, enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = 0.5 if self.tty else 30.0
        self.window, self.last_print, self.shown = _Window(), 0.0, False
        self.phase_steps, self.timed = 0, _Window()
        self._handlers = []

    def _clear(self, record=None):
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.shown = False
        return True

    def on_train_begin(self, logs=None):
        self.window.reset()
        self.phase_steps = 0
        if self.enabled and self.tty:
            logger = log
            while logger is not None:
                for handler in logger.handlers:
                    handler.addFilter(self._clear)
                    self._handlers.append(handler)
                logger = logger.parent if logger.propagate else None

    def on_train_batch_end(self, batch, logs=None):
        if not self.enabled:
            return
        self.phase_steps += 1
        if self.phase_steps == self.COMPILE_STEPS:
            self.timed.reset()
        elif self.phase_steps > self.COMPILE_STEPS:
            self.timed.add({}, self.clock.phase.batch_size)
        self.window.add(logs or {}, self.clock.phase.batch_size)
        now = time.time()
        if now - self.last_print < self.interval and not self.clock.phase_done:
            return
        self.stream.write(self.line(self.window.means(), self.window.images_per_second()))
        self.stream.flush()
        self.last_print, self.shown = now, self.tty
        self.window.reset()

    def phase_eta(self) -> str:
        if self.timed.count < self.TIMED_STEPS:
            return "phase ends: timing"
        left = self.clock.phase_end - self.clock.images_shown
        seconds = left / self.timed.images_per_second()
        return "phase ends in " + time.strftime("%H:%M:%S", time.gmtime(seconds))

    def line(self, means, ips) -> str:
        c = self.clock
        done = c.images_shown / c.schedule.total_images
        bar = "#" * int(20 * done) + "-" * (20 - int(20 * done))
        text = (f"[{bar}] {100 * done:5.1f}% phase {c.phase_index + 1}/"
                f"{len(c.schedule.phases)} {c.phase.name} a={c.alpha:.3f} "
                f"G {means.get('g_loss', float('nan')):+.3f} "
                f"D {means.get('d_loss', float('nan')):+.3f} {ips:6.1f} img/s "
                f"{self.phase_eta()}")
        return ("\r" + text + "\x1b[K") if self.tty else text + "\n"

    def on_train_end(self, logs=None):
        for handler in self._handlers:
            handler.removeFilter(self._clear)
        self._handlers = []
        self._clear()


class _EveryAndAtPhaseEnd(keras.callbacks.Callback):
    """Calls `write()` every `self.every` images (0: never) and at each phase end;
    subclasses set `clock` and `every`."""

    def on_train_batch_end(self, batch, logs=None):
        if self.clock.crossed(self.every) and not self.clock.phase_done:
            self.write()

    def on_train_end(self, logs=None):
        if self.clock.phase_done:
            self.write()


class Samples(_EveryAndAtPhaseEnd):
    """The EMA generator's images of fixed latents every `every_images` and at
    each phase end: samples/<images>_<R>x<R>.png and a TensorBoard image."""

    def __init__(self, clock: Clock, logdir: str, writer, fixed_z: np.ndarray,
                 every_images: int, chief: bool):
        super().__init__()
        self.clock, self.logdir, self.writer = clock, logdir, writer
        self.fixed_z, self.every, self.chief = fixed_z, every_images, chief

    def write(self):
        from mel_tf.images import image_grid, save_png
        from mel_tf.training.networks import network_to_uint8
        fakes = network_to_uint8(self.model.generator_ema(self.fixed_z, training=False),
                                 self.model.net_cfg).numpy()
        if not self.chief:
            return
        grid = image_grid(fakes, min_cell=64)
        shown, r = self.clock.images_shown, self.clock.phase.resolution
        save_png(os.path.join(self.logdir, rundir.SAMPLES_DIR, f"{shown:09d}_{r}x{r}.png"), grid)
        with self.writer.as_default():
            tf.summary.image("samples", grid[None], step=shown)



class PhaseMetrics(_EveryAndAtPhaseEnd):
    """metrics_fn(generator_ema, resolution) -> {name: value} (SWD, MS-SSIM) at
    each phase end and every `every_images` (0: phase ends only)."""

    def __init__(self, clock: Clock, writer, metrics_fn: Optional[Callable], every_images: int,
                 chief: bool):
        super().__init__()
        self.clock, self.writer, self.metrics_fn = clock, writer, metrics_fn
        self.every, self.chief = every_images, chief

    def write(self):
        if self.metrics_fn is None or not self.chief:
            return
        r, shown = self.clock.phase.resolution, self.clock.images_shown
        values = self.metrics_fn(self.model.generator_ema, r)
        if not values:
            return
        with self.writer.as_default():
            for name, value in values.items():
                tf.summary.scalar(f"metrics/{name}", value, step=shown)
        log.info("Metrics at %d images (%dx%d): %s", shown, r, r,
                 ", ".join(f"{k} {v:.4g}" for k, v in values.items()))



class StopRequests:
    """Turns SIGINT/SIGTERM into a flag that `Checkpoints` reads after each
    step; a second signal stops at once. Spans all phases of a run."""

    def __init__(self):
        self.signal_name = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal_name is not None:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


class CheckpointFiles:
    """The run's checkpoints. Every worker of a multi-worker run takes part in a
    save, but only the chief's is kept: the others write into a temporary
    directory that is removed after each save (TensorFlow's multi-worker
    guide), and every worker restores from the chief's."""

    def __init__(self, logdir: str, objects: dict, max_to_keep: int, chief: bool):
        self.directory = os.path.join(logdir, rundir.CHECKPOINT_DIR)
        self._temp = None if chief else tempfile.mkdtemp(prefix="mel_tf_worker_")
        self._new_manager = lambda: rundir.checkpoint_manager(
            logdir, max_to_keep, directory=self._temp, **objects)
        self.manager = self._new_manager()
        self.restored = None

    def restore(self) -> Optional[str]:
        """Restores the chief's newest checkpoint that reads back whole; returns
        its path, or None. Newer damaged ones are logged, and the chief sets
        them aside (rundir.set_aside); RunDirError when none reads back."""
        path, damaged = rundir.newest_loadable_checkpoint(self.directory)
        if damaged:
            note = rundir.fallback_note(damaged, path)
            if self._temp is None:
                aside = rundir.set_aside(self.directory, damaged)
                note += f"; the damaged files are moved into {aside}"
                # The manager holds the index's list as it was when it was made.
                self.manager = self._new_manager()
            log.warning(note)
        if path:
            self.manager.checkpoint.restore(path).assert_existing_objects_matched()
            self.restored = path
        return path

    def save(self, step: int) -> str:
        path = rundir.save_checkpoint(self.manager, step)
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
            path = os.path.join(self.directory, os.path.basename(path))
        return path

    def close(self):
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)


class Checkpoints(keras.callbacks.Callback):
    """Saves every `every_images`, at each phase end, and when a stop is
    requested (signal or `stop_after_steps`); after that save it sets
    `model.stop_training` and records the reason in `stopped`. Another
    callback's `model.stop_training = True` stops the run the same way."""

    def __init__(self, clock: Clock, files: CheckpointFiles, state: rundir.RunState,
                 every_images: int, stop: StopRequests, stop_after_steps: Optional[int] = None):
        super().__init__()
        self.clock, self.files, self.state = clock, files, state
        self.every, self.stop, self.stop_after = every_images, stop, stop_after_steps
        self.stopped = None

    def save(self, reason: str):
        self.state.images_shown.assign(self.clock.images_shown)
        self.state.step.assign(self.clock.step)
        path = self.files.save(self.clock.step)
        log.info("Checkpoint %s (%s)", os.path.basename(path), reason)

    def on_train_batch_end(self, batch, logs=None):
        c = self.clock
        if self.stop_after is not None and c.step >= self.stop_after:
            self.stop.signal_name = self.stop.signal_name or "stop_after_steps"
        if self.stop.signal_name is not None:
            self.stopped = self.stop.signal_name
            self.save(f"stopped by {self.stopped}")
            self.model.stop_training = True
        elif c.phase_done:
            self.save(f"end of {c.phase.name}")
        elif c.crossed(self.every):
            self.save("periodic")

    def on_train_end(self, logs=None):
        if self.model.stop_training and self.stopped is None:
            self.stopped = "stop_training"
            self.save("stopped by a callback")
