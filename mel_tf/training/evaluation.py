"""Scores of a Keras generator during training: SWD and MS-SSIM (mel_tf.metrics)
of its icons against the run's real images, for `PhaseMetrics`."""

from __future__ import annotations

from typing import Callable

import numpy as np

from mel_tf.metrics import ms_ssim_diversity, sliced_wasserstein_distance
from mel_tf.training.networks import network_to_uint8


def generate_uint8(generator, latents: np.ndarray, net_cfg, batch_size: int = 64) -> np.ndarray:
    """Runs a Keras generator at its current stage on `latents`, in batches -> uint8."""
    return np.concatenate([network_to_uint8(generator(latents[i:i + batch_size], training=False),
                                            net_cfg).numpy()
                           for i in range(0, len(latents), batch_size)])


def training_metrics_fn(image_set, net_cfg, num_images: int, seed: int) -> Callable:
    """metrics_fn(generator, resolution) -> {"swd_<res>", "swd_avg", "ms_ssim_fake",
    "ms_ssim_real"} for `mel_tf.training.train`.

    The same latents, the same real subset and the same random directions at
    every call, so that the curve in TensorBoard moves only with the generator.
    Stages under 8x8 are skipped (a 7x7 neighbourhood has to fit).
    """
    rng = np.random.default_rng([seed, 0x535744])
    n = min(num_images, len(image_set))
    n -= n % 2                                      # MS-SSIM pairs images
    latents = rng.standard_normal((n, net_cfg.latent_dim), dtype=np.float32)
    subset = rng.choice(len(image_set), n, replace=False)
    real_diversity = {}

    def metrics_fn(generator, resolution):
        if resolution < 8 or n < 2:
            return {}
        real = image_set.images(resolution)[subset]
        fake = generate_uint8(generator, latents, net_cfg)
        swd = sliced_wasserstein_distance(real, fake, np.random.default_rng([seed, resolution]))
        if resolution not in real_diversity:
            real_diversity[resolution] = ms_ssim_diversity(real)
        out = {f"swd_{k}": v for k, v in swd.items()}
        out["ms_ssim_fake"] = ms_ssim_diversity(fake)
        out["ms_ssim_real"] = real_diversity[resolution]
        return out
    return metrics_fn
