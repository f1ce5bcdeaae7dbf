"""The serving contract of every exported model, and loading a model to make icons.

Every model maps latents z (float32 [N, latent_dim], input INPUT_NAME) to icons
(uint8 [N, R, R, 3], RGB, output OUTPUT_NAME) through the signature
SIGNATURE_KEY; `serving_function` is that signature over a Keras generator, and
mel_tf/export.py writes it into every file. `load_model` reads any of them back,
or a run directory's EMA generator (`load_run_generator`).

TensorFlow is imported only for SavedModels, run directories and Keras
generators: a .tflite file needs just ai-edge-litert and numpy.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import numpy as np

from mel_tf.errors import first_line
from mel_tf.config import MIN_RESOLUTION, NetworkConfig, TrainConfig
from mel_tf.training.schedule import schedule_for

SIGNATURE_KEY = "serving_default"
INPUT_NAME = "z"
OUTPUT_NAME = "icons"


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
            raise ModelLoadError(f"{path}: not a readable .tflite model ({first_line(e)})") from e
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
                                 f"({first_line(e)})") from e
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
    ModelLoadError (a ValueError), also for a run with no completed stage.
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
        return KerasIconModel(load_run_generator(path).generator)
    if not os.path.exists(path):
        raise ModelLoadError(f"{path} does not exist")
    raise ModelLoadError(f"{path}: no model here (expected a .tflite file, a SavedModel "
                         f"folder, an export folder or a run directory)")


def serving_function(generator):
    """z [N, latent_dim] float32 -> {"icons": uint8 [N, R, R, 3]} at the generator's stage."""
    from mel_tf.training.networks import network_to_uint8
    cfg = generator.cfg

    def icons(z):
        return {OUTPUT_NAME: network_to_uint8(generator(z), cfg)}
    return icons


# ---- run directories ----------------------------------------------------------

@dataclasses.dataclass
class LoadedRun:
    """The EMA generator of a run, set to the stage chosen for export."""
    generator: object            # mel_tf.training.networks.Generator, at `resolution`, fading off
    net_cfg: NetworkConfig
    train_cfg: TrainConfig
    images_shown: int
    resolution: int
    fade_complete: bool          # False only for a stage exported with allow_partial_fade
    training_alpha: float        # the run's a at that stage (1.0 once the fade is done)
    checkpoint: str              # the checkpoint read (rundir.load_ema)


def load_run_generator(logdir: str, resolution: Optional[int] = None,
                       allow_partial_fade: bool = False) -> LoadedRun:
    """The run's EMA generator at the stage to export, with fading off (a = 1).

    resolution None: the highest completed resolution, or with
    allow_partial_fade the stage the run is training now. A stage whose fade has
    not finished needs allow_partial_fade; a stage not reached yet is refused.
    Raises ModelLoadError with a one-line message for every unusable run.
    """
    from mel_tf.training import rundir                   # imports TensorFlow
    try:
        generator, net_cfg, train_cfg, images_shown, checkpoint = rundir.load_ema(logdir)
    except (ValueError, KeyError, TypeError, OSError) as e:  # RunDirError, bad config.json
        message = first_line(e)      # a mismatch lists variables and their values: keep it short
        raise ModelLoadError(message if len(message) <= 300 else message[:297] + "...") from e
    schedule = schedule_for(net_cfg, train_cfg)
    completed = rundir.completed_resolution(net_cfg, train_cfg, images_shown)
    position = schedule.locate(images_shown)
    current = position.phase.resolution if not position.done else net_cfg.resolution
    progress = (f"{position.phase.name} phase, {position.images_into_phase} of "
                f"{position.phase.images} images")
    if resolution is None:
        if allow_partial_fade:
            resolution = max(current, completed)
        elif completed == 0 or (completed == MIN_RESOLUTION and net_cfg.resolution > MIN_RESOLUTION):
            raise ModelLoadError(
                f"{logdir}: the run has not finished a stage worth exporting yet ({progress}); "
                f"pass a resolution and allow_partial_fade (--allow_partial_fade) to export "
                f"it anyway")
        else:
            resolution = completed
    elif resolution not in net_cfg.resolutions:
        raise ModelLoadError(f"resolution {resolution} is not a stage of this run "
                             f"({', '.join(map(str, net_cfg.resolutions))})")
    fade_complete = resolution <= completed
    if not fade_complete:
        if resolution > current:
            raise ModelLoadError(f"{logdir}: the run has not reached {resolution}x{resolution} "
                                 f"yet ({progress})")
        if not allow_partial_fade:
            instead = f", or export {completed}x{completed}" if completed else ""
            raise ModelLoadError(
                f"{logdir}: {resolution}x{resolution} is still training ({progress}); pass "
                f"allow_partial_fade (--allow_partial_fade) to export it at a=1 anyway{instead}")
    generator.set_stage(resolution, fading=False)
    alpha = 1.0 if fade_complete else float(position.alpha)
    return LoadedRun(generator, net_cfg, train_cfg, images_shown, resolution, fade_complete, alpha,
                     checkpoint)
