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
`latents_for_seed` for the exact rule), so the same model gives the same icons.
TensorFlow is imported only for SavedModels and run directories: a .tflite
file needs just ai-edge-litert, numpy and Pillow.
"""

from __future__ import annotations

import math
import os
import sys
from typing import List, Optional, Sequence

import numpy as np

from mel_tf.images import image_grid

SIGNATURE_KEY = "serving_default"
INPUT_NAME = "z"
OUTPUT_NAME = "icons"

# ---- seed -> latents ------------------------------------------------------------

SPLITMIX64_GAMMA = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1

# Written into every exported JSON, so that an app can implement the rule.
SEED_TO_Z = {
    "algorithm": "mel_tf-splitmix64-box-muller-v1",
    "description": (
        "All integer arithmetic is on unsigned 64-bit integers, modulo 2^64; the seed "
        "is taken modulo 2^64 (a negative 64-bit seed is read as unsigned). "
        "x_k = mix(seed + k * 0x9E3779B97F4A7C15) for k = 1, 2, 3, ..., where "
        "mix(x): x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9; "
        "x = (x ^ (x >> 27)) * 0x94D049BB133111EB; return x ^ (x >> 31) "
        "(this is SplitMix64: x_1, x_2, ... are its outputs for that seed). "
        "u(x) = ((x >> 11) + 1) / 2^53, in (0, 1]. "
        "For j = 0, 1, 2, ...: r = sqrt(-2 ln u(x_{2j+1})), t = 2 pi u(x_{2j+2}), "
        "n_{2j} = r cos t, n_{2j+1} = r sin t (in double precision, then rounded to "
        "float32). Latent i (0-based) of a seed is n_{i*D} ... n_{i*D+D-1} for "
        "latent_dim D, so the first icons of a seed do not depend on how many are made."),
    "test_vectors": {"splitmix64 seed 1234567": [
        "6457827717110365317", "3203168211198807973", "9817491932198370423"]},
}


def splitmix64(seed: int, count: int) -> np.ndarray:
    """The first `count` outputs of SplitMix64 (Steele, Lea, Flood 2014) for `seed`.

    Output k (1-based) is mix(seed + k * 0x9E3779B97F4A7C15), all modulo 2^64:
    the generator is counter-based, so numpy computes every output at once.
    """
    seed = int(seed) & _MASK64
    with np.errstate(over="ignore"):
        k = np.arange(1, count + 1, dtype=np.uint64)
        x = np.uint64(seed) + k * np.uint64(SPLITMIX64_GAMMA)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def latents_for_seed(seed: int, num: int, latent_dim: int) -> np.ndarray:
    """`num` latent vectors [num, latent_dim] float32, i.i.d. N(0, 1), from `seed`.

    The rule (SEED_TO_Z), simple enough for a Kotlin or Swift app:

        // all ULong / UInt64 arithmetic wraps modulo 2^64
        fun mix(x0: ULong): ULong {
            var x = x0
            x = (x xor (x shr 30)) * 0xBF58476D1CE4E5B9uL
            x = (x xor (x shr 27)) * 0x94D049BB133111EBuL
            return x xor (x shr 31)
        }
        var state = seed.toULong()
        fun next(): ULong { state += 0x9E3779B97F4A7C15uL; return mix(state) }   // SplitMix64
        fun uniform(): Double = ((next() shr 11).toDouble() + 1.0) / 9007199254740992.0  // (0, 1]
        // normals in pairs (Box-Muller), consumed in order:
        val r = sqrt(-2.0 * ln(uniform())); val t = 2.0 * PI * uniform()
        n[2j] = r * cos(t); n[2j + 1] = r * sin(t)         // then .toFloat()

    Latent i is n[i * latent_dim until (i + 1) * latent_dim], so
    latents_for_seed(s, 16, d)[:4] == latents_for_seed(s, 4, d). Different
    libm implementations may differ in the last bit of a double; after rounding
    to float32 that changes nothing visible.
    """
    if num < 0 or latent_dim < 1:
        raise ValueError(f"need num >= 0 and latent_dim >= 1, got {num}, {latent_dim}")
    total = num * latent_dim
    pairs = (total + 1) // 2
    x = splitmix64(seed, 2 * pairs)
    u = ((x >> np.uint64(11)).astype(np.float64) + 1.0) * (1.0 / 2.0 ** 53)
    r = np.sqrt(-2.0 * np.log(u[0::2]))
    t = 2.0 * np.pi * u[1::2]
    normals = np.empty(2 * pairs, np.float64)
    normals[0::2] = r * np.cos(t)
    normals[1::2] = r * np.sin(t)
    return normals[:total].astype(np.float32).reshape(num, latent_dim)


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation between latents a and b (linear when they are parallel).

    Gaussian latents of high dimension all lie near the sphere of radius
    sqrt(latent_dim); the straight line between two of them passes through
    shorter vectors the generator rarely saw, the great-circle arc does not.
    """
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = np.dot(a64, b64) / (np.linalg.norm(a64) * np.linalg.norm(b64) + 1e-30)
    omega = math.acos(float(np.clip(cos, -1.0, 1.0)))
    if math.sin(omega) < 1e-6:
        return ((1.0 - t) * a64 + t * b64).astype(np.float32)
    s = math.sin(omega)
    return (math.sin((1.0 - t) * omega) / s * a64 + math.sin(t * omega) / s * b64).astype(np.float32)


def interpolate_latents(a: np.ndarray, b: np.ndarray, frames: int,
                        mode: str = "slerp") -> np.ndarray:
    """`frames` latents [frames, D] from a to b inclusive; mode "slerp" or "linear"."""
    if frames < 2:
        raise ValueError(f"need at least 2 frames, got {frames}")
    if mode not in ("slerp", "linear"):
        raise ValueError(f"interpolation must be 'slerp' or 'linear', got {mode!r}")
    ts = np.linspace(0.0, 1.0, frames)
    if mode == "linear":
        return np.stack([(1.0 - t) * a + t * b for t in ts]).astype(np.float32)
    return np.stack([slerp(a, b, t) for t in ts])


# ---- models -------------------------------------------------------------------------

class ModelLoadError(ValueError):
    """A path that holds no usable model; the message is one line."""


class TFLiteIconModel:
    """An exported .tflite generator run by the LiteRT interpreter (ai-edge-litert)."""

    def __init__(self, path: str, num_threads: Optional[int] = None):
        from ai_edge_litert.interpreter import Interpreter
        self.path = path
        try:
            interpreter = Interpreter(model_path=path, num_threads=num_threads)
        except (ValueError, RuntimeError) as e:
            raise ModelLoadError(f"{path}: not a readable .tflite model ({one_line(e)})") from e
        signature = interpreter.get_signature_list().get(SIGNATURE_KEY)
        if signature != {"inputs": [INPUT_NAME], "outputs": [OUTPUT_NAME]}:
            raise ModelLoadError(f"{path}: no '{SIGNATURE_KEY}' signature {INPUT_NAME} -> "
                                 f"{OUTPUT_NAME}; is it a mel_tf export?")
        self._runner = interpreter.get_signature_runner(SIGNATURE_KEY)
        self.latent_dim = int(self._runner.get_input_details()[INPUT_NAME]["shape"][-1])
        self.resolution = int(self._runner.get_output_details()[OUTPUT_NAME]["shape"][1])

    def __call__(self, z: np.ndarray) -> np.ndarray:
        # The runner resizes its input to the batch; copy the output out of
        # the interpreter's buffer before the next call reuses it.
        return np.array(self._runner(**{INPUT_NAME: np.asarray(z, np.float32)})[OUTPUT_NAME])


class SavedModelIconModel:
    """An exported SavedModel's serving signature."""

    def __init__(self, path: str):
        import tensorflow as tf
        self.path = path
        try:
            self._serve = tf.saved_model.load(path).signatures[SIGNATURE_KEY]
        except (KeyError, OSError, ValueError) as e:
            raise ModelLoadError(f"{path}: no usable '{SIGNATURE_KEY}' signature "
                                 f"({one_line(e)})") from e
        inputs = self._serve.structured_input_signature[1]
        outputs = self._serve.structured_outputs
        if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise ModelLoadError(f"{path}: signature is not {INPUT_NAME} -> {OUTPUT_NAME}")
        self.latent_dim = int(inputs[INPUT_NAME].shape[-1])
        self.resolution = int(outputs[OUTPUT_NAME].shape[1])
        self._tf = tf

    def __call__(self, z: np.ndarray) -> np.ndarray:
        z = self._tf.constant(np.asarray(z, np.float32))
        return self._serve(**{INPUT_NAME: z})[OUTPUT_NAME].numpy()


class KerasIconModel:
    """A Keras `Generator` at its current stage, with the export's uint8 output."""

    def __init__(self, generator):
        import tensorflow as tf
        from mel_tf.export import serving_function
        self.generator = generator
        self.latent_dim = generator.cfg.latent_dim
        self.resolution = generator.stage_resolution
        self._serve = tf.function(serving_function(generator), input_signature=[
            tf.TensorSpec([None, self.latent_dim], tf.float32)])

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return self._serve(np.asarray(z, np.float32))[OUTPUT_NAME].numpy()


def load_model(path: str, num_threads: Optional[int] = None):
    """A model with `.latent_dim`, `.resolution` and `__call__(z) -> uint8 [N, R, R, 3]`.

    path: a .tflite file; a SavedModel folder; an export folder (its
    saved_model/ is used); or a run directory (its EMA generator at the highest
    completed resolution). num_threads applies to .tflite models (TensorFlow's
    threads are set process-wide with tf.config.threading). Raises
    ModelLoadError, or ExportError for a run with no completed stage.
    """
    if os.path.isfile(path):
        if not path.endswith(".tflite"):
            raise ModelLoadError(f"{path}: expected a .tflite file, a SavedModel folder, "
                                 f"an export folder or a run directory")
        return TFLiteIconModel(path, num_threads=num_threads)
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return SavedModelIconModel(path)
    if os.path.isfile(os.path.join(path, "saved_model", "saved_model.pb")):
        return SavedModelIconModel(os.path.join(path, "saved_model"))
    if os.path.isfile(os.path.join(path, "config.json")):
        from mel_tf.export import load_run_generator
        return KerasIconModel(load_run_generator(path).generator)
    if not os.path.exists(path):
        raise ModelLoadError(f"{path} does not exist")
    raise ModelLoadError(f"{path}: no model here (expected a .tflite file, a SavedModel "
                         f"folder, an export folder or a run directory)")


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


def one_line(e: BaseException) -> str:
    """The first line of an exception's message, for one-line command-line errors."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


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
    except ValueError as e:      # ModelLoadError, ExportError
        print(f"generate: error: {one_line(e)}", file=sys.stderr)
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
