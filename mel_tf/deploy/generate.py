"""Make icons from a trained or exported generator.

Library:
    model = mel_tf.deploy.serving.load_model(path)   # .tflite, SavedModel, export folder or run
    icons = model(latents_for_seed(seed=0, num=16, latent_dim=model.latent_dim))

Command line:
    python -m mel_tf.deploy.generate --model=PATH --num=16 --seed=0 --out=DIR
        writes DIR/icon_0000.png ... and DIR/grid.png
    python -m mel_tf.deploy.generate --model=PATH --interpolate --seed=0 --seed2=1 --frames=16 --out=DIR
        writes DIR/frame_0000.png ... and DIR/interpolation.gif

The same seed gives the same latents on every machine and in a phone app (see
`mel_tf.deploy.seeds.latents_for_seed` for the exact rule), so the same model gives the
same icons. Models are loaded by mel_tf.deploy.serving: TensorFlow is imported only for
SavedModels and run directories, a .tflite file needs just ai-edge-litert, numpy
and Pillow.
"""

from __future__ import annotations

import os
from typing import List, Optional

import numpy as np

from mel_tf.deploy.seeds import latents_for_seed, variation_latents


def generate_icons(model, seed: int, num: int, batch_size: int = 16,
                   truncation: Optional[float] = None) -> np.ndarray:
    """Icons 0 .. num-1 of `seed`: uint8 [num, R, R, 3]; `truncation` (mel_tf.deploy.seeds.
    TRUNCATION) redraws latent entries beyond +-truncation."""
    z = latents_for_seed(seed, num, model.latent_dim, truncation)
    return run_batched(model, z, batch_size)


def variation_icons(model, seed: int, num: int, strength: float, batch_size: int = 16,
                    truncation: Optional[float] = None) -> np.ndarray:
    """Variations 0 .. num-1 of `seed` at `strength` (mel_tf.deploy.seeds.VARIATION)."""
    z = variation_latents(seed, num, model.latent_dim, strength, truncation)
    return run_batched(model, z, batch_size)


def run_batched(model, z: np.ndarray, batch_size: int = 16) -> np.ndarray:
    if len(z) == 0:
        return np.zeros((0, model.resolution, model.resolution, 3), np.uint8)
    return np.concatenate([model(z[i:i + batch_size]) for i in range(0, len(z), batch_size)])


# ---- images -----------------------------------------------------------------------------

def write_pngs(icons: np.ndarray, out_dir: str, prefix: str) -> List[str]:
    """out_dir/{prefix}_0000.png, ... one per icon; returns the paths."""
    from PIL import Image
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for i, icon in enumerate(icons):
        paths.append(os.path.join(out_dir, f"{prefix}_{i:04d}.png"))
        Image.fromarray(icon).save(paths[-1])
    return paths


def write_gif(frames: np.ndarray, path: str, frame_ms: int = 80):
    """An animated GIF that loops forever."""
    from PIL import Image
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
