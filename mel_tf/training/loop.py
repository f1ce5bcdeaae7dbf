"""The training loop: a whole schedule as one `ProGAN.fit()` per phase.

The fade, checkpoints, TensorBoard, samples, metrics, progress and signals are
callbacks in `mel_tf.training.callbacks`; the user's own callbacks run after them.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from mel_tf.config import Execution, LoopOptions, NetworkConfig, TrainConfig
from mel_tf.training import callbacks as cb
from mel_tf.training import rundir
from mel_tf.training.progan import ProGAN, step_noise
from mel_tf.training.schedule import schedule_for

log = logging.getLogger("mel_tf")


def train(net_cfg: NetworkConfig, train_cfg: TrainConfig, image_set, logdir: str,
          strategy: Optional[tf.distribute.Strategy] = None,
          options: Optional[LoopOptions] = None,
          metrics_fn: Optional[Callable] = None,
          records: Optional[rundir.Records] = None,
          callbacks: Sequence[keras.callbacks.Callback] = (),
          execution: Optional[Execution] = None) -> dict:
    """Trains (or resumes) the run in `logdir` through the whole schedule: one
    `model.fit()` per phase, with the callbacks of `mel_tf.training.callbacks` and then
    the user's `callbacks` (Keras callbacks; they see every step's logs).

    image_set: gives `images(resolution)` -> uint8 [N, R, R, 3].
    metrics_fn(generator_ema, resolution) -> {name: float}: evaluated at the
    end of every phase (and every `metrics_every_images`), written to TensorBoard.
    records: flags.txt, dataset.json and whether the settings may change on
    resume (`rundir.prepare`); nothing is written if the start is refused.
    execution: XLA and precision (default: `Execution()`).
    Returns {"images_shown", "step", "stopped" (signal name or None), "done", "model"}.
    """
    options, execution = options or LoopOptions(), execution or Execution()
    strategy = strategy or tf.distribute.get_strategy()
    schedule = schedule_for(net_cfg, train_cfg)
    check_replicas(schedule, strategy.num_replicas_in_sync)
    chief = rundir.is_chief(strategy)
    resumed = rundir.prepare(logdir, net_cfg, train_cfg, records, write=chief)
    with strategy.scope():
        model = ProGAN(net_cfg, train_cfg, dtype_policy=execution.dtype_policy)
        model.compile(jit_compile=execution.jit_compile(strategy.num_replicas_in_sync))
        state = rundir.RunState()
    files = cb.CheckpointFiles(logdir, model.checkpoint_objects(state), options.max_to_keep,
                               chief)
    if files.restore():
        log.info("Resuming %s from %s: %d images shown, step %d", logdir,
                 os.path.basename(files.restored), int(state.images_shown.numpy()),
                 int(state.step.numpy()))
    elif resumed:
        log.info("%s has a configuration but no checkpoint: starting from the beginning", logdir)
    writer = tf.summary.create_file_writer(logdir) if chief else tf.summary.create_noop_writer()
    if records and records.flags_text and not files.restored:
        with writer.as_default():
            tf.summary.text("flags", records.flags_text, step=0)
    clock = cb.Clock(schedule, int(state.images_shown.numpy()), int(state.step.numpy()))
    with cb.StopRequests() as stop:
        checkpoints = cb.Checkpoints(clock, files, state, options.checkpoint_every_images, stop,
                                     options.stop_after_steps)
        run_callbacks = [*loop_callbacks(clock, files.directory, logdir, writer,
                                          fixed_latents(net_cfg, train_cfg, options),
                                          options, metrics_fn, chief),
                         checkpoints, *callbacks]
        run_phases(model, strategy, clock, checkpoints, run_callbacks,
                   lambda phase_clock: phase_dataset(
                       image_set, net_cfg, train_cfg, phase_clock.phase.resolution,
                       phase_clock.phase.batch_size, phase_clock.step,
                       phase_clock.steps_left_in_phase))
    files.close()
    writer.flush()
    return {"images_shown": clock.images_shown, "step": clock.step,
            "stopped": checkpoints.stopped, "done": clock.done, "model": model}


def check_replicas(schedule, replicas: int):
    for phase in schedule.phases:
        if phase.batch_size % replicas:
            raise ValueError(f"batch size {phase.batch_size} at {phase.resolution}x"
                             f"{phase.resolution} does not split over {replicas} replicas")


def fixed_latents(net_cfg: NetworkConfig, train_cfg: TrainConfig, options: LoopOptions):
    """The latents of the sample grids: the same for the whole run."""
    return np.random.default_rng([train_cfg.seed, 2**31]).standard_normal(
        (options.grid_size, net_cfg.latent_dim), dtype=np.float32)


def run_phases(model, strategy, clock: cb.Clock, checkpoints: cb.Checkpoints,
               run_callbacks, dataset_for) -> None:
    """One `fit()` per phase until the schedule ends or a stop is requested."""
    while not clock.done and checkpoints.stopped is None:
        clock.start_phase()
        log.info("Phase %d/%d: %s (%d images, batch %d, lr %g)", clock.phase_index + 1,
                 len(clock.schedule.phases), clock.phase.name, clock.phase.images,
                 clock.phase.batch_size, clock.phase.learning_rate)
        with strategy.scope():
            model.fit(dataset_for(clock), steps_per_epoch=clock.steps_left_in_phase, epochs=1,
                      verbose=0, shuffle=False, callbacks=run_callbacks)
    if checkpoints.stopped:
        log.info("Stopped (%s) at %d images; run the same command again to resume",
                 checkpoints.stopped, clock.images_shown)
    elif clock.done:
        log.info("Training complete: %d images shown in %d steps", clock.images_shown,
                 clock.step)


def loop_callbacks(clock: cb.Clock, checkpoint_dir: str, logdir: str, writer,
                    fixed_z: np.ndarray, options: LoopOptions, metrics_fn, chief: bool):
    """The callbacks before Checkpoints, in the order they must run."""
    return [cb.StopOnNaN(clock, checkpoint_dir), clock, cb.Fade(clock),
            cb.TensorBoardScalars(clock, writer, options.log_every_steps),
            cb.ProgressBar(clock, options.progress and chief),
            cb.Samples(clock, logdir, writer, fixed_z, options.sample_every_images, chief),
            cb.PhaseMetrics(clock, writer, metrics_fn, options.metrics_every_images, chief)]


def phase_dataset(image_set, net_cfg: NetworkConfig, train_cfg: TrainConfig, resolution: int,
                  batch_size: int, first_step: int, steps: int) -> tf.data.Dataset:
    """A phase's batches from `first_step` on: images, the step (as a [batch]
    vector) and the step's noise; a strategy splits every field by batch."""
    from mel_tf.training import data as data_lib
    n = batch_size * train_cfg.critic_steps
    dataset = data_lib.batch_dataset(
        image_set.images(resolution), n, train_cfg.seed, first_step,
        extra_fn=step_noise(net_cfg, train_cfg, batch_size))
    # Exactly the phase's steps: an endless pipeline abandoned at the end of a
    # phase is slow to tear down (its prefetched work in flight).
    return dataset.take(steps)
