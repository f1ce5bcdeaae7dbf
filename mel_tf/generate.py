"""Make icons from a trained or exported generator.

Library:
    model = load_model(path)          # .tflite, SavedModel folder, export folder or run directory
    icons = model(latents_for_seed(seed=0, num=16, latent_dim=model.latent_dim))

Command line:
    python -m mel_tf.generate --model=PATH --num=16 --seed=0 --out=DIR
        writes DIR/icon_0000.png ... and DIR/grid.png
    python -m mel_tf.generate --model=PATH --interpolate --seed=0 --seed2=1 --frames=16 --out=DIR
        writes DIR/frame_0000.png ... and DIR/interpolation.gif

The same seed gives the same latents on every machine and in a phone app (see
`mel_tf.seeds.latents_for_seed` for the exact rule), so the same model gives the
same icons. Models are loaded by mel_tf.serving: TensorFlow is imported only for
SavedModels and run directories, a .tflite file needs just ai-edge-litert, numpy
and Pillow.
"""

from __future__ import annotations

import os
import sys
from typing import List, Sequence

import numpy as np

from mel_tf.images import image_grid
# The seed rule and model loading live in their own modules; their names stay
# importable from here.
from mel_tf.seeds import (SEED_TO_Z, interpolate_latents, latents_for_seed,  # noqa: F401
                          slerp, splitmix64)
from mel_tf.serving import (INPUT_NAME, OUTPUT_NAME, SIGNATURE_KEY,  # noqa: F401
                            KerasIconModel, ModelLoadError, SavedModelIconModel,
                            TFLiteIconModel, load_model, first_line)


def generate_icons(model, seed: int, num: int, batch_size: int = 16) -> np.ndarray:
    """Icons 0 .. num-1 of `seed`: uint8 [num, R, R, 3]."""
    z = latents_for_seed(seed, num, model.latent_dim)
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


# ---- command line ------------------------------------------------------------------------

def _define_flags():
    from absl import flags
    flags.DEFINE_string("model", None, "A .tflite file, SavedModel folder, export folder or "
                        "run directory.", required=True)
    flags.DEFINE_string("out", None, "Folder for the PNGs (created).", required=True)
    flags.DEFINE_integer("num", 16, "Icons to make.", lower_bound=1)
    flags.DEFINE_integer("seed", 0, "Seed of the latents (see latents_for_seed).")
    flags.DEFINE_bool("interpolate", False, "Interpolate from --seed to --seed2 instead.")
    flags.DEFINE_integer("seed2", None, "End of the interpolation (default: seed + 1).")
    flags.DEFINE_integer("frames", 16, "Frames of the interpolation.", lower_bound=2)
    flags.DEFINE_enum("interpolation", "slerp", ["slerp", "linear"], "How z is interpolated.")
    flags.DEFINE_integer("frame_ms", 80, "GIF frame duration in milliseconds.", lower_bound=1)
    flags.DEFINE_integer("threads", None, "Interpreter threads for a .tflite model.")
    flags.DEFINE_integer("batch_size", 16, "Latents per model call.", lower_bound=1)
    return flags.FLAGS


def _main(argv: Sequence[str], FLAGS):
    del argv
    try:
        model = load_model(FLAGS.model, num_threads=FLAGS.threads)
    except ValueError as e:      # ModelLoadError
        print(f"generate: error: {first_line(e)}", file=sys.stderr)
        sys.exit(1)
    if FLAGS.interpolate:
        seed2 = FLAGS.seed + 1 if FLAGS.seed2 is None else FLAGS.seed2
        a = latents_for_seed(FLAGS.seed, 1, model.latent_dim)[0]
        b = latents_for_seed(seed2, 1, model.latent_dim)[0]
        z = interpolate_latents(a, b, FLAGS.frames, FLAGS.interpolation)
        frames = run_batched(model, z, FLAGS.batch_size)
        write_pngs(frames, FLAGS.out, "frame")
        gif = os.path.join(FLAGS.out, "interpolation.gif")
        write_gif(frames, gif, FLAGS.frame_ms)
        print(f"{len(frames)} frames, seed {FLAGS.seed} -> {seed2} ({FLAGS.interpolation}), "
              f"{model.resolution}x{model.resolution}: {FLAGS.out}/frame_*.png, {gif}")
    else:
        from PIL import Image
        icons = generate_icons(model, FLAGS.seed, FLAGS.num, FLAGS.batch_size)
        write_pngs(icons, FLAGS.out, "icon")
        grid = os.path.join(FLAGS.out, "grid.png")
        Image.fromarray(image_grid(icons)).save(grid)
        print(f"{len(icons)} icons of seed {FLAGS.seed}, {model.resolution}x{model.resolution}: "
              f"{FLAGS.out}/icon_*.png, {grid}")


def run():
    """`mel-generate`, the same program as `python -m mel_tf.generate`."""
    from mel_tf.cli import run_app
    flag_values = _define_flags()
    run_app(lambda argv: _main(argv, flag_values), sys.modules[__name__])


if __name__ == "__main__":
    run()
