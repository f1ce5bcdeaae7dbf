"""Makes icons from a trained or exported generator.

    mel-generate --model=PATH --num=16 --seed=0 --out=DIR
        writes DIR/icon_0000.png ... and DIR/grid.png
    mel-generate --model=PATH --interpolate --seed=0 --seed2=1 --frames=16 --out=DIR
        writes DIR/frame_0000.png ... and DIR/interpolation.gif

PATH is a .tflite file, a SavedModel folder, an export folder or a run directory.
The same seed gives the same latents on every machine and in a phone app
(mel_tf.deploy.seeds), so the same model gives the same icons. A .tflite model needs
no TensorFlow.
"""

from __future__ import annotations

import os
import sys

from absl import flags

from mel_tf.cli import fail, run_app

flags.DEFINE_string("model", None, "A .tflite file, SavedModel folder, export folder or "
                    "run directory.", required=True)
flags.DEFINE_string("out", None, "Folder for the PNGs (created).", required=True)
flags.DEFINE_integer("num", 16, "Icons to make.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the latents (see mel_tf.deploy.seeds).")
flags.DEFINE_bool("interpolate", False, "Interpolate from --seed to --seed2 instead.")
flags.DEFINE_integer("seed2", None, "End of the interpolation (default: seed + 1).")
flags.DEFINE_integer("frames", 16, "Frames of the interpolation.", lower_bound=2)
flags.DEFINE_enum("interpolation", "slerp", ["slerp", "linear"], "How z is interpolated.")
flags.DEFINE_integer("frame_ms", 80, "GIF frame duration in milliseconds.", lower_bound=1)
flags.DEFINE_integer("threads", None, "Interpreter threads for a .tflite model.")
flags.DEFINE_integer("batch_size", 16, "Latents per model call.", lower_bound=1)
F = flags.FLAGS


def interpolation(model):
    from mel_tf.deploy.generate import run_batched, write_gif, write_pngs
    from mel_tf.deploy.seeds import interpolate_latents, latents_for_seed

    seed2 = F.seed + 1 if F.seed2 is None else F.seed2
    a = latents_for_seed(F.seed, 1, model.latent_dim)[0]
    b = latents_for_seed(seed2, 1, model.latent_dim)[0]
    frames = run_batched(model, interpolate_latents(a, b, F.frames, F.interpolation),
                         F.batch_size)
    write_pngs(frames, F.out, "frame")
    gif = os.path.join(F.out, "interpolation.gif")
    write_gif(frames, gif, F.frame_ms)
    print(f"{len(frames)} frames, seed {F.seed} -> {seed2} ({F.interpolation}), "
          f"{model.resolution}x{model.resolution}: {F.out}/frame_*.png, {gif}")


def icons(model):
    from mel_tf.deploy.generate import generate_icons, write_pngs
    from mel_tf.images import image_grid, save_png

    made = generate_icons(model, F.seed, F.num, F.batch_size)
    write_pngs(made, F.out, "icon")
    grid = os.path.join(F.out, "grid.png")
    save_png(grid, image_grid(made))
    print(f"{len(made)} icons of seed {F.seed}, {model.resolution}x{model.resolution}: "
          f"{F.out}/icon_*.png, {grid}")


def main(argv):
    del argv
    from mel_tf.deploy.serving import ModelLoadError, load_model
    try:
        model = load_model(F.model, num_threads=F.threads)
    except ModelLoadError as e:
        fail(e)
    interpolation(model) if F.interpolate else icons(model)


def run():
    run_app(main, sys.modules[__name__])


if __name__ == "__main__":
    run()
