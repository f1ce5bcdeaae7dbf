"""Make icons from a trained or exported generator.

Library:
    model = load_model(path)          # .tflite, SavedModel folder, export folder or run directory
    icons = model(latents_for_seed(seed=0, num=16, latent_dim=model.latent_dim))

Command line:
    python -m mel_tf.generate --model=PATH --num=16 --seed=0 --out=DIR
        writes DIR/icon_0000.png ... and DIR/grid.png
    python -m mel_tf.generate --model=PATH --interpolate --seed=0 --seed2=1 --frames=16 --out=DIR
        writes DIR/frame_0000.png ... and DIR/interpolation.gif
    python -m mel_tf.generate --model=PATH --variations_of=7 --variation_strength=0.3 --num=6 \
        --out=DIR
        writes DIR/variation_0000.png ... (variations 0..5 of seed 7) and DIR/grid.png

--truncation=T (with any of them) redraws every latent entry beyond +-T: cleaner,
less varied icons. Truncation and variations follow the rules TRUNCATION and
VARIATION of mel_tf.seeds, which the browser page follows too
(docs/controls/README.md).

The same seed gives the same latents on every machine and in a phone app (see
`mel_tf.seeds.latents_for_seed` for the exact rule), so the same model gives the
same icons. Models are loaded by mel_tf.serving: TensorFlow is imported only for
SavedModels and run directories, a .tflite file needs just ai-edge-litert, numpy
and Pillow.
"""

from __future__ import annotations

import os
import sys
from typing import List, Optional, Sequence

import numpy as np

from mel_tf.images import image_grid
# The seed rule and model loading live in their own modules; their names stay
# importable from here.
from mel_tf.seeds import (SEED_TO_Z, TRUNCATION, VARIATION, check_truncation,  # noqa: F401
                          interpolate_latents, latents_for_seed, slerp, splitmix64,
                          variation_latents)
from mel_tf.serving import (INPUT_NAME, OUTPUT_NAME, SIGNATURE_KEY,  # noqa: F401
                            KerasIconModel, ModelLoadError, SavedModelIconModel,
                            TFLiteIconModel, load_model, first_line)


def generate_icons(model, seed: int, num: int, batch_size: int = 16,
                   truncation: Optional[float] = None) -> np.ndarray:
    """Icons 0 .. num-1 of `seed`: uint8 [num, R, R, 3]."""
    z = latents_for_seed(seed, num, model.latent_dim, truncation)
    return run_batched(model, z, batch_size)


def variation_icons(model, seed: int, num: int, strength: float, batch_size: int = 16,
                    truncation: Optional[float] = None) -> np.ndarray:
    """Variations 0 .. num-1 of `seed` at `strength` (mel_tf.seeds.VARIATION)."""
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
    flags.DEFINE_float("truncation", None, "Redraw latent entries beyond +-T (T >= 0.05; "
                       "default off): cleaner, less varied icons (mel_tf.seeds.TRUNCATION).")
    flags.DEFINE_integer("variations_of", None, "Write variations 0..num-1 of this seed "
                         "instead (mel_tf.seeds.VARIATION).")
    flags.DEFINE_float("variation_strength", 0.3, "How far variations move from the seed: 0 "
                       "is the seed's icon, 1 an unrelated one.", lower_bound=0.0, upper_bound=1.0)
    return flags.FLAGS


def _main(argv: Sequence[str], FLAGS):
    del argv
    try:
        check_truncation(FLAGS.truncation)
        if FLAGS.interpolate and FLAGS.variations_of is not None:
            raise ValueError("--interpolate and --variations_of cannot be combined")
        model = load_model(FLAGS.model, num_threads=FLAGS.threads)
    except ValueError as e:      # also ModelLoadError
        print(f"generate: error: {first_line(e)}", file=sys.stderr)
        sys.exit(1)
    if FLAGS.interpolate:
        _write_interpolation(model, FLAGS)
    elif FLAGS.variations_of is not None:
        icons = variation_icons(model, FLAGS.variations_of, FLAGS.num, FLAGS.variation_strength,
                                FLAGS.batch_size, FLAGS.truncation)
        _write_icons(icons, FLAGS.out, "variation")
        print(f"{len(icons)} variations of seed {FLAGS.variations_of} at strength "
              f"{FLAGS.variation_strength}{_truncation_note(FLAGS)}, {_size(model)}: "
              f"{FLAGS.out}/variation_*.png")
    else:
        icons = generate_icons(model, FLAGS.seed, FLAGS.num, FLAGS.batch_size, FLAGS.truncation)
        _write_icons(icons, FLAGS.out, "icon")
        print(f"{len(icons)} icons of seed {FLAGS.seed}{_truncation_note(FLAGS)}, "
              f"{_size(model)}: {FLAGS.out}/icon_*.png, {FLAGS.out}/grid.png")


def _write_interpolation(model, FLAGS):
    seed2 = FLAGS.seed + 1 if FLAGS.seed2 is None else FLAGS.seed2
    a = latents_for_seed(FLAGS.seed, 1, model.latent_dim, FLAGS.truncation)[0]
    b = latents_for_seed(seed2, 1, model.latent_dim, FLAGS.truncation)[0]
    z = interpolate_latents(a, b, FLAGS.frames, FLAGS.interpolation)
    frames = run_batched(model, z, FLAGS.batch_size)
    write_pngs(frames, FLAGS.out, "frame")
    gif = os.path.join(FLAGS.out, "interpolation.gif")
    write_gif(frames, gif, FLAGS.frame_ms)
    print(f"{len(frames)} frames, seed {FLAGS.seed} -> {seed2} ({FLAGS.interpolation})"
          f"{_truncation_note(FLAGS)}, {_size(model)}: {FLAGS.out}/frame_*.png, {gif}")


def _write_icons(icons: np.ndarray, out_dir: str, prefix: str):
    """out_dir/{prefix}_0000.png, ... and out_dir/grid.png."""
    from PIL import Image
    write_pngs(icons, out_dir, prefix)
    Image.fromarray(image_grid(icons)).save(os.path.join(out_dir, "grid.png"))


def _truncation_note(FLAGS) -> str:
    return "" if FLAGS.truncation is None else f", truncation {FLAGS.truncation}"


def _size(model) -> str:
    return f"{model.resolution}x{model.resolution}"


def run():
    """`mel-generate`, the same program as `python -m mel_tf.generate`."""
    from mel_tf.cli import run_app
    flag_values = _define_flags()
    run_app(lambda argv: _main(argv, flag_values), sys.modules[__name__])


if __name__ == "__main__":
    run()
