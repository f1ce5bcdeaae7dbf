"""Makes icons from a trained or exported generator.

    mel-generate --model=PATH --num=16 --seed=0 --out=DIR
        writes DIR/icon_0000.png ... and DIR/grid.png
    mel-generate --model=PATH --interpolate --seed=0 --seed2=1 --frames=16 --out=DIR
        writes DIR/frame_0000.png ... and DIR/interpolation.gif
    mel-generate --model=PATH --variations_of=7 --variation_strength=0.3 --num=6 --out=DIR
        writes DIR/variation_0000.png ... (variations 0..5 of seed 7) and DIR/grid.png
    mel-generate --print_latents --latent_dim=8192 --seed=7 --num=2 [--truncation=T]
        prints test vectors of those latents as JSON, for checking a port of the seed
        rule (docs/mobile.md); --model=PATH instead of --latent_dim takes the model's
        size. Runs no model and writes no file.

--truncation=T (with any of them) redraws every latent entry beyond +-T: cleaner,
less varied icons. Truncation and variations follow the rules TRUNCATION and
VARIATION of mel_tf.deploy.seeds, which the browser page follows too
(docs/controls/README.md).

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
                    "run directory (required unless --print_latents with --latent_dim).")
flags.DEFINE_string("out", None, "Folder for the PNGs (created; required unless "
                    "--print_latents).")
flags.DEFINE_integer("num", 16, "Icons to make (latents to print with --print_latents).",
                     lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the latents (see mel_tf.deploy.seeds).")
flags.DEFINE_bool("interpolate", False, "Interpolate from --seed to --seed2 instead.")
flags.DEFINE_integer("seed2", None, "End of the interpolation (default: seed + 1).")
flags.DEFINE_integer("frames", 16, "Frames of the interpolation.", lower_bound=2)
flags.DEFINE_enum("interpolation", "slerp", ["slerp", "linear"], "How z is interpolated.")
flags.DEFINE_integer("frame_ms", 80, "GIF frame duration in milliseconds.", lower_bound=1)
flags.DEFINE_integer("threads", None, "Interpreter threads for a .tflite model.")
flags.DEFINE_integer("batch_size", 16, "Latents per model call.", lower_bound=1)
flags.DEFINE_float("truncation", None, "Redraw latent entries beyond +-T (T >= 0.05; "
                   "default off): cleaner, less varied icons (mel_tf.deploy.seeds.TRUNCATION).")
flags.DEFINE_integer("variations_of", None, "Write variations 0..num-1 of this seed "
                     "instead (mel_tf.deploy.seeds.VARIATION).")
flags.DEFINE_float("variation_strength", 0.3, "How far variations move from the seed: 0 "
                   "is the seed's icon, 1 an unrelated one.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_bool("print_latents", False, "Print test vectors of the latents of --seed (or "
                  "--variations_of) as JSON instead of making icons (docs/mobile.md).")
flags.DEFINE_integer("latent_dim", None, "Latent size for --print_latents without --model.",
                     lower_bound=1)
F = flags.FLAGS


def interpolation(model):
    from mel_tf.deploy.generate import run_batched, write_gif, write_pngs
    from mel_tf.deploy.seeds import interpolate_latents, latents_for_seed

    seed2 = F.seed + 1 if F.seed2 is None else F.seed2
    a = latents_for_seed(F.seed, 1, model.latent_dim, F.truncation)[0]
    b = latents_for_seed(seed2, 1, model.latent_dim, F.truncation)[0]
    frames = run_batched(model, interpolate_latents(a, b, F.frames, F.interpolation),
                         F.batch_size)
    write_pngs(frames, F.out, "frame")
    gif = os.path.join(F.out, "interpolation.gif")
    write_gif(frames, gif, F.frame_ms)
    print(f"{len(frames)} frames, seed {F.seed} -> {seed2} ({F.interpolation})"
          f"{truncation_note()}, {size(model)}: {F.out}/frame_*.png, {gif}")


def write_icons(icons, prefix: str):
    """F.out/{prefix}_0000.png, ... and F.out/grid.png."""
    from mel_tf.deploy.generate import write_pngs
    from mel_tf.images import image_grid, save_png
    write_pngs(icons, F.out, prefix)
    save_png(os.path.join(F.out, "grid.png"), image_grid(icons))


def icons(model):
    from mel_tf.deploy.generate import generate_icons
    made = generate_icons(model, F.seed, F.num, F.batch_size, F.truncation)
    write_icons(made, "icon")
    print(f"{len(made)} icons of seed {F.seed}{truncation_note()}, {size(model)}: "
          f"{F.out}/icon_*.png, {F.out}/grid.png")


def variations(model):
    from mel_tf.deploy.generate import variation_icons
    made = variation_icons(model, F.variations_of, F.num, F.variation_strength, F.batch_size,
                           F.truncation)
    write_icons(made, "variation")
    print(f"{len(made)} variations of seed {F.variations_of} at strength "
          f"{F.variation_strength}{truncation_note()}, {size(model)}: "
          f"{F.out}/variation_*.png")


def print_latents(latent_dim: int):
    import json
    from mel_tf.deploy.seeds import latent_test_vectors
    if F.variations_of is None:
        vectors = latent_test_vectors(F.seed, F.num, latent_dim, F.truncation)
    else:
        vectors = latent_test_vectors(F.variations_of, F.num, latent_dim, F.truncation,
                                      F.variation_strength)
    print(json.dumps(vectors, indent=2))


def check_flags():
    """ValueError for flags that do not go together."""
    if F.interpolate and F.variations_of is not None:
        raise ValueError("--interpolate and --variations_of cannot be combined")
    if not F.print_latents:
        if F.model is None or F.out is None:
            raise ValueError("--model and --out are required to make icons")
        if F.latent_dim is not None:
            raise ValueError("--latent_dim goes with --print_latents only")
        return
    if F.interpolate:
        raise ValueError("--print_latents prints the latents of --seed or --variations_of, "
                         "not an interpolation")
    if F.out is not None:
        raise ValueError("--print_latents writes no files; leave out --out")
    if (F.model is None) == (F.latent_dim is None):
        raise ValueError("--print_latents takes the latent size from --model or from "
                         "--latent_dim: give one of them")


def truncation_note() -> str:
    return "" if F.truncation is None else f", truncation {F.truncation}"


def size(model) -> str:
    return f"{model.resolution}x{model.resolution}"


def main(argv):
    del argv
    from mel_tf.deploy.seeds import check_truncation
    from mel_tf.deploy.serving import load_model
    try:
        check_truncation(F.truncation)
        check_flags()
        # --print_latents with --latent_dim needs no model (and no TensorFlow).
        model = None if F.model is None else load_model(F.model, num_threads=F.threads)
    except ValueError as e:      # ModelLoadError too
        fail(e)
    if F.print_latents:
        print_latents(F.latent_dim if model is None else model.latent_dim)
    elif F.interpolate:
        interpolation(model)
    elif F.variations_of is not None:
        variations(model)
    else:
        icons(model)


def run():
    run_app(main, sys.modules[__name__])


if __name__ == "__main__":
    run()
