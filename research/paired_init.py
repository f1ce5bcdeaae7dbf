"""Pairs a run whose floor widens a few layers (NetworkConfig.widen_to_floor) with its
narrow twin: research/source_study.py's --widen_to_floor starts from the twin's draw."""

import logging

import keras

from mel_tf.training.progan import ProGAN


def copy_matching(mine: keras.Model, theirs: keras.Model) -> int:
    """Assigns `theirs`' value to each weight of `mine` with the same path and shape;
    returns how many."""
    drawn = {v.path: v for v in theirs.weights}
    copied = 0
    for var in mine.weights:
        twin_var = drawn.get(var.path)
        if twin_var is not None and tuple(twin_var.shape) == tuple(var.shape):
            var.assign(twin_var)
            copied += 1
    return copied


def paired_init_callback(narrow_cfg, train_cfg):
    """A Keras callback that, before the first step of a new run, gives every weight
    that has the same path and shape in `narrow_cfg`'s networks the value those
    networks start from with the same seed: a run that widens a few layers then
    differs from its narrow twin in those layers only (one weight stream draws all
    layers, so a widened layer would otherwise shift every draw after it)."""
    class PairedInit(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            if int(self.model.g_optimizer.iterations.numpy()):   # not a new run
                return
            twin = ProGAN(narrow_cfg, train_cfg)
            copied = sum(copy_matching(getattr(self.model, name), getattr(twin, name))
                         for name in ("generator", "discriminator", "generator_ema"))
            logging.info("Initial weights: the unwidened networks' draw for seed %d "
                         "(%d of the tensors)", train_cfg.seed, copied)
    return PairedInit()
