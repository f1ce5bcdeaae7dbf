"""The Progressive GAN model and its training step.

`ProGAN` is a `keras.Model` whose `train_step` does one generator step, then
`critic_steps` discriminator steps (WGAN-GP with drift), then the generator
EMA update. All randomness of a step (latents, interpolation weights,
augmentation factors) arrives with the batch, drawn from (seed, step) by the
data pipeline, so a step is a pure function of the run's seed and its index:
a resumed run repeats the steps an uninterrupted run would take, and a
`tf.distribute` strategy splits noise and images together.

`ProGAN` trains through Keras: `compile(g_optimizer=..., d_optimizer=...,
jit_compile=...)`, then `fit()` on the batches (`mel_tf.training.loop.train`
runs a whole schedule that way).
"""

from __future__ import annotations

from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from mel_tf.config import NetworkConfig, TrainConfig
from mel_tf.training import augment as augment_lib
from mel_tf.training import losses, optimizers
from mel_tf.training.layers import Downsample2x, Upsample2x
from mel_tf.training.networks import Generator, build_networks, initialize, uint8_to_network


def adam(train_cfg: TrainConfig) -> optimizers.Adam:
    """PyTorch's Adam with the run's settings (mel_tf.training.optimizers)."""
    return optimizers.Adam(learning_rate=train_cfg.learning_rate, beta_1=train_cfg.adam_beta1,
                           beta_2=train_cfg.adam_beta2, epsilon=train_cfg.adam_epsilon)


class ProGAN(keras.Model):
    """G, D, the EMA generator and their optimizers, with a custom train_step."""

    def __init__(self, net_cfg: NetworkConfig, train_cfg: TrainConfig,
                 dtype_policy: str = "float32"):
        super().__init__(name="progan")
        self.net_cfg = net_cfg
        self.train_cfg = train_cfg
        self.generator, self.discriminator = build_networks(net_cfg, dtype_policy)
        initialize(self.generator, train_cfg.seed)
        initialize(self.discriminator, train_cfg.seed + 1)
        self.generator_ema = Generator(net_cfg, name="generator_ema", dtype_policy=dtype_policy)
        for ema_var, var in zip(self.generator_ema.weights, self.generator.weights):
            ema_var.assign(var)

        # Usable without compile() (tests, benchmarks); compile() may replace them.
        self.g_optimizer, self.d_optimizer = adam(train_cfg), adam(train_cfg)
        self._build_optimizers()
        self.augment_policy = augment_lib.parse_policy(train_cfg.augment)
        self.adaptive = (augment_lib.AdaptiveAugment(target=train_cfg.ada_target)
                         if train_cfg.adaptive_augment and self.augment_policy else None)
        self._upsample, self._pool = Upsample2x(), Downsample2x()
        self.built = True

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Nothing to build: every stage's variables exist from __init__.

        Under a strategy, Keras 3.15's fit() reads a batch to trace call()
        (which a GAN does not have) whenever a layer without weights of a stage
        not yet run is unbuilt, and reduces that batch across replicas, which
        fails for a dict batch under MultiWorkerMirroredStrategy. Keras has no
        public way to skip that symbolic build (this override is the one
        private hook left).
        """
        return

    def _build_optimizers(self):
        # Built on every stage's variables: a stage trains a subset of them.
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def compile(self, g_optimizer: Optional[keras.optimizers.Optimizer] = None,
                d_optimizer: Optional[keras.optimizers.Optimizer] = None,
                jit_compile: bool = False, steps_per_execution: int = 1):
        """Keras's compile for a GAN (as keras-io's WGAN-GP example): the two
        optimizers (default: `adam(train_cfg)`, PyTorch's Adam), no loss, no
        Keras optimizer. Call under the strategy's scope, like the model."""
        super().compile(optimizer=None, jit_compile=jit_compile,
                        steps_per_execution=steps_per_execution)
        if g_optimizer is not None or d_optimizer is not None:
            self.g_optimizer = g_optimizer or self.g_optimizer
            self.d_optimizer = d_optimizer or self.d_optimizer
            self._build_optimizers()

    def checkpoint_objects(self, state) -> dict:
        """What a checkpoint holds: the networks, the optimizers, the run's
        position (`state`) and the adaptive augmentation's p."""
        objects = dict(generator=self.generator, discriminator=self.discriminator,
                       generator_ema=self.generator_ema, g_optimizer=self.g_optimizer,
                       d_optimizer=self.d_optimizer, state=state)
        if self.adaptive is not None:
            objects["augment"] = self.adaptive
        return objects

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
        return self._logs_for_fit(result)

    @staticmethod
    def _logs_for_fit(logs):
        """The step's logs as Keras's fit averages them over the replicas: the
        local replicas' scalars, but across workers (MultiWorkerMirroredStrategy)
        the mean along axis 0 of their values, which must then be vectors."""
        strategy = tf.distribute.get_strategy()
        if (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
                and strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)):
            return {k: tf.reshape(v, [1]) for k, v in logs.items()}
        return logs

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
