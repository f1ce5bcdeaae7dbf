"""The Progressive GAN training step and the loop around it.

`ProGAN` is a `keras.Model` whose `train_step` does one generator step, then
`critic_steps` discriminator steps (WGAN-GP with drift), then the generator
EMA update. All randomness of a step (latents, interpolation weights,
augmentation factors) arrives with the batch, drawn from (seed, step) by the
data pipeline, so a step is a pure function of the run's seed and its index:
a resumed run repeats the steps an uninterrupted run would take, and a
`tf.distribute` strategy splits noise and images together.

`train()` runs a whole schedule: stages, fade-in, checkpoints, TensorBoard,
samples, progress, signals.
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

from mel_tf import augment as augment_lib
from mel_tf import losses, optimizers, rundir
from mel_tf.config import LoopOptions, NetworkConfig, TrainConfig
from mel_tf.layers import Downsample2x, Upsample2x
from mel_tf.networks import (Generator, build_networks, initialize, network_to_uint8,
                             uint8_to_network)
from mel_tf.schedule import schedule_for

log = logging.getLogger("mel_tf")


class ProGAN(keras.Model):
    """G, D, the EMA generator and their optimizers, with a custom train_step."""

    def __init__(self, net_cfg: NetworkConfig, train_cfg: TrainConfig):
        super().__init__(name="progan")
        self.net_cfg = net_cfg
        self.train_cfg = train_cfg
        self.generator, self.discriminator = build_networks(net_cfg)
        initialize(self.generator, train_cfg.seed)
        initialize(self.discriminator, train_cfg.seed + 1)
        self.generator_ema = Generator(net_cfg, name="generator_ema")
        for ema_var, var in zip(self.generator_ema.weights, self.generator.weights):
            ema_var.assign(var)

        def adam():
            return optimizers.Adam(
                learning_rate=train_cfg.learning_rate, beta_1=train_cfg.adam_beta1,
                beta_2=train_cfg.adam_beta2, epsilon=train_cfg.adam_epsilon)
        self.g_optimizer, self.d_optimizer = adam(), adam()
        # Built on every stage's variables: a stage trains a subset of them.
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.augment_policy = augment_lib.parse_policy(train_cfg.augment)
        self.adaptive = (augment_lib.AdaptiveAugment(target=train_cfg.ada_target)
                         if train_cfg.adaptive_augment and self.augment_policy else None)
        self._upsample, self._pool = Upsample2x(), Downsample2x()
        self.built = True

    # ---- stage control (called from the host between steps) -----------------
    def set_stage(self, resolution: int, fading: bool):
        for net in (self.generator, self.discriminator, self.generator_ema):
            net.set_stage(resolution, fading)

    def set_alpha(self, alpha: float):
        for net in (self.generator, self.discriminator, self.generator_ema):
            net.set_alpha(alpha)

    def set_learning_rate(self, lr: float):
        self.g_optimizer.learning_rate.assign(lr)
        self.d_optimizer.learning_rate.assign(lr)

    # ---- the step --------------------------------------------------------------
    def _augment_probability(self):
        if self.adaptive is not None:
            return self.adaptive.p
        return self.train_cfg.augment_probability

    def _diff_augment(self, images, seed):
        if not self.augment_policy:
            return images
        return augment_lib.diff_augment(images, seed, self.augment_policy,
                                        self._augment_probability(), self.net_cfg.data_range)

    def _prepare_reals(self, data):
        cfg = self.train_cfg
        real = uint8_to_network(data["images"], self.net_cfg)
        if cfg.mirror:
            real = tf.where(data["mirror"][:, None, None, None], tf.reverse(real, axis=[2]), real)
        if cfg.contrast:
            real = augment_lib.adjust_contrast(real, data["contrast"], self.net_cfg.data_range)
        if cfg.fade_real_images and self.generator.fading:
            # The paper also fades the reals, so D sees the blurrier old resolution first.
            low = self._upsample(self._pool(real))
            real = low + self.generator.alpha * (real - low)
        return real

    def train_step(self, data):
        cfg = self.train_cfg
        G, D = self.generator, self.discriminator
        # Each replica computes means over its share of the batch; the optimizers
        # sum gradients over replicas, so the share of the global mean is loss / replicas.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        step = tf.cast(data["steps"][0], tf.int64)   # the same value in every row
        seed_base = tf.cast(cfg.seed, tf.int64) * 1_000_003 + tf.cast(replica, tf.int64)

        def aug_seed(k):
            return tf.stack([seed_base, step * 16 + k])

        real = self._prepare_reals(data)

        # Generator step.
        with tf.GradientTape() as tape:
            fake = G(data["z_g"], training=True)
            fake_scores = D(self._diff_augment(fake, aug_seed(0)), training=True)
            g_loss = losses.generator_loss(fake_scores)
            scaled = g_loss / replicas      # inside the tape, or the gradient is lost
        g_trained = self._apply(self.g_optimizer, tape.gradient(scaled, G.trainable_variables),
                                G.trainable_variables)

        # Critic step(s): each takes its own slice of reals and latents.
        reals = tf.split(real, cfg.critic_steps)
        latents = tf.split(data["z_d"], cfg.critic_steps)
        epsilons = tf.split(data["eps"], cfg.critic_steps)
        for i in range(cfg.critic_steps):
            fake = tf.stop_gradient(G(latents[i], training=True))
            with tf.GradientTape() as tape:
                real_aug = self._diff_augment(reals[i], aug_seed(1 + 2 * i))
                fake_aug = self._diff_augment(fake, aug_seed(2 + 2 * i))
                # One critic call over reals and fakes stacked: the same scores as
                # two calls (MiniBatchStd keeps the sets apart), and D's weights
                # are read once instead of twice.
                scores = D(tf.concat([real_aug, fake_aug], 0), num_sets=2, training=True)
                real_scores, fake_scores_d = tf.split(scores, 2)
                # The penalty sits between the augmented sets: the distributions D sees.
                xhat = losses.interpolate(real_aug, fake_aug, epsilons[i])
                penalty = losses.gradient_penalty(lambda x: D(x, training=True), xhat)
                terms = losses.discriminator_loss(real_scores, fake_scores_d, penalty,
                                                  cfg.gp_weight, cfg.drift_weight)
                scaled = terms["d_loss"] / replicas
            self._apply(self.d_optimizer, tape.gradient(scaled, D.trainable_variables),
                        D.trainable_variables)
        if self.adaptive is not None:
            self.adaptive.step(real_scores)

        self._update_ema(step, g_trained)
        result = {"g_loss": g_loss, **terms, "real_score": tf.reduce_mean(real_scores),
                  "fake_score": tf.reduce_mean(fake_scores_d)}
        if self.adaptive is not None:
            result["augment_p"] = self.adaptive.p.read_value()
        return result

    @staticmethod
    def _apply(optimizer, grads, variables):
        """Applies the gradients that exist; returns the indices of the variables
        they belong to. Layers of other stages get no gradient and are left alone."""
        used = [i for i, g in enumerate(grads) if g is not None]
        optimizer.apply_gradients([(grads[i], variables[i]) for i in used])
        return used

    def _update_ema(self, step, trained):
        """EMA of the generator variables this stage trains (the others do not move,
        so their averages already equal them)."""
        cfg = self.train_cfg
        decay = tf.constant(cfg.ema_decay, tf.float32)
        if cfg.ema_rampup:
            decay = tf.minimum(1.0 - 1.0 / (tf.cast(step, tf.float32) + 1.0), decay)
        ema_vars = self.generator_ema.trainable_variables
        variables = self.generator.trainable_variables
        for i in trained:
            ema_vars[i].assign(variables[i] + decay * (ema_vars[i] - variables[i]))


def step_noise(net_cfg: NetworkConfig, train_cfg: TrainConfig, batch_size: int):
    """extra_fn for the data pipeline: the step's latents, eps and augmentation factors.

    Drawn from numpy's PCG64 keyed by (seed, step), so any step can be redrawn.
    """
    n_critic = batch_size * train_cfg.critic_steps
    lo, hi = train_cfg.contrast_range

    def extra(step):
        rng = np.random.default_rng([train_cfg.seed, int(step), 7])
        out = {
            "z_g": rng.standard_normal((batch_size, net_cfg.latent_dim), dtype=np.float32),
            "z_d": rng.standard_normal((n_critic, net_cfg.latent_dim), dtype=np.float32),
            "eps": rng.random((n_critic, 1, 1, 1), dtype=np.float32),
            "contrast": rng.uniform(lo, hi, (n_critic,)).astype(np.float32),
        }
        if train_cfg.mirror:
            out["mirror"] = rng.random(n_critic) < 0.5
        return out
    return extra


# ---- the loop -------------------------------------------------------------------

class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


class _Progress:
    """One status line: phase, resolution, a, losses, speed and ETA."""

    def __init__(self, total_images: int, enabled: bool):
        self.total = total_images
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.last_print = 0.0

    def update(self, images, phase_name, phase_no, phases, alpha, losses_now, ips, force=False):
        if not self.enabled:
            return
        now = time.time()
        if not force and now - self.last_print < (0.5 if self.tty else 30.0):
            return
        self.last_print = now
        eta = (self.total - images) / ips if ips > 0 else float("nan")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "?"
        done = images / self.total
        bar = "#" * int(20 * done) + "-" * (20 - int(20 * done))
        line = (f"[{bar}] {100 * done:5.1f}% phase {phase_no}/{phases} {phase_name} a={alpha:.3f} "
                f"G {losses_now.get('g_loss', float('nan')):+.3f} "
                f"D {losses_now.get('d_loss', float('nan')):+.3f} {ips:6.1f} img/s ETA {eta_text}")
        sys.stderr.write(("\r" + line + "\x1b[K") if self.tty else line + "\n")
        sys.stderr.flush()

    def close(self):
        if self.enabled and self.tty:
            sys.stderr.write("\n")


class _StopRequests:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each step."""

    def __init__(self):
        self.signal_name = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal_name is not None:   # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


class _Checkpoints:
    """The run's checkpoints. Every worker of a multi-worker run takes part in a
    save, but only the chief's is kept: the others write into a temporary
    directory that is removed after each save (TensorFlow's multi-worker
    guide), and every worker restores from the chief's."""

    def __init__(self, logdir: str, objects: dict, max_to_keep: int, chief: bool):
        self.directory = os.path.join(logdir, rundir.CHECKPOINT_DIR)
        self._temp = None if chief else tempfile.mkdtemp(prefix="mel_tf_worker_")
        self.manager = rundir.checkpoint_manager(logdir, max_to_keep, directory=self._temp,
                                                 **objects)
        self.restored = None

    def restore(self) -> Optional[str]:
        """Restores the chief's latest checkpoint; returns its path, or None."""
        latest = tf.train.latest_checkpoint(self.directory)
        if latest:
            self.manager.checkpoint.restore(latest).assert_existing_objects_matched()
            self.restored = latest
        return latest

    def save(self, step: int) -> str:
        path = rundir.save_checkpoint(self.manager, step)
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
            path = os.path.join(self.directory, os.path.basename(path))
        return path

    def close(self):
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)


def _make_step_fn(model: ProGAN, strategy, xla: bool):
    """The step for the model's current stage, traced once for the stage."""
    if strategy.num_replicas_in_sync == 1:
        # autograph=False: the step has no tensor-dependent Python control flow,
        # and converting it costs seconds of tracing per stage.
        return tf.function(model.train_step, jit_compile=xla, autograph=False)

    @tf.function(autograph=False)
    def distributed_step(batch):
        per_replica = strategy.run(model.train_step, args=(batch,))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in per_replica.items()}
    return distributed_step


def train(net_cfg: NetworkConfig, train_cfg: TrainConfig, image_set, logdir: str,
          strategy: Optional[tf.distribute.Strategy] = None,
          options: Optional[LoopOptions] = None,
          metrics_fn: Optional[Callable] = None,
          records: Optional[rundir.Records] = None) -> dict:
    """Trains (or resumes) the run in `logdir` through the whole schedule.

    image_set: gives `images(resolution)` -> uint8 [N, R, R, 3].
    metrics_fn(generator_ema, resolution) -> {name: float}: evaluated at the
    end of every phase (and every `metrics_every_images`), written to TensorBoard.
    records: flags.txt, dataset.json and whether the settings may change on
    resume (`rundir.prepare`); nothing is written if the start is refused.
    Returns {"images_shown", "step", "stopped" (signal name or None), "done"}.
    """
    from mel_tf import data as data_lib
    from mel_tf.images import image_grid, save_png

    options = options or LoopOptions()
    strategy = strategy or tf.distribute.get_strategy()
    schedule = schedule_for(net_cfg, train_cfg)
    for phase in schedule.phases:
        if phase.batch_size % strategy.num_replicas_in_sync:
            raise ValueError(f"batch size {phase.batch_size} at {phase.resolution}x"
                             f"{phase.resolution} does not split over "
                             f"{strategy.num_replicas_in_sync} replicas")
    chief = rundir.is_chief(strategy)
    resumed = rundir.prepare(logdir, net_cfg, train_cfg, records, write=chief)

    with strategy.scope():
        model = ProGAN(net_cfg, train_cfg)
        state = rundir.RunState()
    objects = dict(generator=model.generator, discriminator=model.discriminator,
                   generator_ema=model.generator_ema, g_optimizer=model.g_optimizer,
                   d_optimizer=model.d_optimizer, state=state)
    if model.adaptive is not None:
        objects["augment"] = model.adaptive
    checkpoints = _Checkpoints(logdir, objects, options.max_to_keep, chief)
    if checkpoints.restore():
        log.info("Resuming %s from %s: %d images shown, step %d", logdir,
                 os.path.basename(checkpoints.restored), int(state.images_shown.numpy()),
                 int(state.step.numpy()))
    elif resumed:
        log.info("%s has a configuration but no checkpoint: starting from the beginning", logdir)

    writer = tf.summary.create_file_writer(logdir) if chief else tf.summary.create_noop_writer()
    if records and records.flags_text and not checkpoints.restored:
        with writer.as_default():
            tf.summary.text("flags", records.flags_text, step=0)
    fixed_z = np.random.default_rng([train_cfg.seed, 2**31]).standard_normal(
        (options.grid_size, net_cfg.latent_dim), dtype=np.float32)

    images_shown = int(state.images_shown.numpy())
    step = int(state.step.numpy())

    def save(reason):
        state.images_shown.assign(images_shown)
        state.step.assign(step)
        path = checkpoints.save(step)
        log.info("Checkpoint %s (%s)", os.path.basename(path), reason)

    def write_samples(resolution):
        fakes = network_to_uint8(model.generator_ema(fixed_z, training=False), net_cfg).numpy()
        grid = image_grid(fakes, min_cell=64)
        if not chief:
            return
        save_png(os.path.join(logdir, rundir.SAMPLES_DIR,
                              f"{images_shown:09d}_{resolution}x{resolution}.png"), grid)
        with writer.as_default():
            tf.summary.image("samples", grid[None], step=images_shown)

    def write_metrics(resolution):
        if metrics_fn is None or not chief:
            return
        values = metrics_fn(model.generator_ema, resolution)
        if not values:
            return
        with writer.as_default():
            for name, value in values.items():
                tf.summary.scalar(f"metrics/{name}", value, step=images_shown)
        log.info("Metrics at %d images (%dx%d): %s", images_shown, resolution, resolution,
                 ", ".join(f"{k} {v:.4g}" for k, v in values.items()))

    progress = _Progress(schedule.total_images, options.progress and chief)
    stopped = None
    with _StopRequests() as stop:
        while images_shown < schedule.total_images and stopped is None:
            pos = schedule.locate(images_shown)
            phase = pos.phase
            model.set_stage(phase.resolution, phase.fading)
            model.set_learning_rate(phase.learning_rate)
            step_fn = _make_step_fn(model, strategy, train_cfg.xla)
            batch = phase.batch_size
            dataset = data_lib.batch_dataset(
                image_set.images(phase.resolution), batch * train_cfg.critic_steps,
                train_cfg.seed, step, extra_fn=_with_step_vector(
                    step_noise(net_cfg, train_cfg, batch), batch * train_cfg.critic_steps))
            phase_start = schedule.starts[pos.phase_index]
            phase_end = schedule.phase_end(pos.phase_index)
            # Exactly the phase's steps: an endless pipeline abandoned at the end
            # of a phase took ~40 s to tear down (its prefetched work in flight).
            dataset = dataset.take(-(-(phase_end - images_shown) // batch))
            # The scalar "step" cannot be split over replicas; "steps" carries it.
            dataset = dataset.map(lambda e: {k: v for k, v in e.items() if k != "step"})
            if strategy.num_replicas_in_sync > 1:
                dataset = strategy.experimental_distribute_dataset(dataset)
            log.info("Phase %d/%d: %s (%d images, batch %d, lr %g)", pos.phase_index + 1,
                     len(schedule.phases), phase.name, phase.images, batch, phase.learning_rate)
            sums, count, t_window, n_window = {}, 0, time.time(), 0
            ips = 0.0
            for element in dataset:
                alpha = (images_shown - phase_start) / phase.images if phase.fading else 1.0
                model.set_alpha(alpha)
                out = {k: float(v) for k, v in step_fn(element).items()}
                if not all(math.isfinite(v) for v in out.values()):
                    bad = ", ".join(f"{k}={v}" for k, v in out.items() if not math.isfinite(v))
                    raise TrainingDiverged(
                        f"non-finite loss at step {step} ({images_shown} images, {phase.name}): "
                        f"{bad}; the last good checkpoint is kept in {checkpoints.directory}")
                step += 1
                images_shown += batch
                n_window += batch
                count += 1
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + v
                if count == options.log_every_steps or images_shown >= phase_end:
                    elapsed = time.time() - t_window
                    ips = n_window / max(elapsed, 1e-9)
                    with writer.as_default():
                        for k, v in sums.items():
                            tf.summary.scalar(f"loss/{k}", v / count, step=images_shown)
                        tf.summary.scalar("progress/alpha", alpha, step=images_shown)
                        tf.summary.scalar("progress/resolution", phase.resolution, step=images_shown)
                        tf.summary.scalar("progress/learning_rate", phase.learning_rate,
                                          step=images_shown)
                        tf.summary.scalar("progress/images_per_second", ips, step=images_shown)
                    progress.update(images_shown, phase.name, pos.phase_index + 1,
                                    len(schedule.phases), alpha,
                                    {k: v / count for k, v in sums.items()}, ips)
                    sums, count, t_window, n_window = {}, 0, time.time(), 0

                def crossed(every):
                    return every and images_shown // every != (images_shown - batch) // every
                if crossed(options.sample_every_images):
                    write_samples(phase.resolution)
                if crossed(options.metrics_every_images):
                    write_metrics(phase.resolution)
                if options.stop_after_steps is not None and step >= options.stop_after_steps:
                    stop.signal_name = stop.signal_name or "stop_after_steps"
                if stop.signal_name is not None:
                    stopped = stop.signal_name
                    save(f"stopped by {stopped}")
                    break
                if images_shown >= phase_end:
                    save(f"end of {phase.name}")
                    write_samples(phase.resolution)
                    write_metrics(phase.resolution)
                    break
                if crossed(options.checkpoint_every_images):
                    save("periodic")
    progress.close()
    checkpoints.close()
    writer.flush()
    done = images_shown >= schedule.total_images
    if stopped:
        log.info("Stopped (%s) at %d images; run the same command again to resume", stopped,
                 images_shown)
    elif done:
        log.info("Training complete: %d images shown in %d steps", images_shown, step)
    return {"images_shown": images_shown, "step": step, "stopped": stopped, "done": done,
            "model": model}


def _with_step_vector(extra_fn, batch_size):
    """Adds the step as a [batch] vector: a strategy splits every field by batch."""
    def extra(step):
        out = extra_fn(step)
        out["steps"] = np.full((batch_size,), step, np.int64)
        return out
    return extra
