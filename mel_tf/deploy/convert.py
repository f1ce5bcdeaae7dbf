"""A generator's graph and its conversions: SavedModel, LiteRT, and the check that
an exported file draws what the Keras generator draws. Shared by `export` and
`web`, which write the files.
"""

from __future__ import annotations

import math
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from mel_tf.deploy.serving import (INPUT_NAME, OUTPUT_NAME, SIGNATURE_KEY, ModelLoadError,
                                   TFLiteIconModel, serving_function)
from mel_tf.errors import first_line

# An exported float32 model may differ from Keras by one level of 255 (a
# rounding boundary crossed by float noise), never more.
MAX_FLOAT32_DIFF = 1


class ExportError(ValueError):
    """An export that cannot be done as asked; the message is one line."""


def icons_from_generator(generator, z: np.ndarray) -> np.ndarray:
    """uint8 icons of a Keras generator at its current stage (eager)."""
    return serving_function(generator)(tf.constant(z, tf.float32))[OUTPUT_NAME].numpy()


def write_saved_model(generator, path: str, batch_size: Optional[int] = None):
    """A SavedModel of the generator's current stage with the serving signature.

    batch_size None leaves the batch dimension of z dynamic; a number fixes it
    (LiteRT.js runs only static shapes).

    Written through keras.export.ExportArchive: with Keras 3 variables, a plain
    tf.Module + tf.saved_model.save gives a SavedModel that TensorFlow itself
    loads correctly but that the TFLite converter reads with garbage weights
    (wrong icons, NaN), while an ExportArchive converts faithfully.
    """
    import keras
    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive.add_endpoint(SIGNATURE_KEY, serving_function(generator), input_signature=[
        tf.TensorSpec([batch_size, generator.cfg.latent_dim], tf.float32, name=INPUT_NAME)])
    archive.write_out(path, verbose=False)


def convert_to_tflite(saved_model: str, quantize: str = "none") -> bytes:
    """The LiteRT flatbuffer of a SavedModel's serving signature.

    tf.lite.TFLiteConverter is still the converter that ships with TensorFlow
    2.21 (the ai-edge-litert package has the runtime, not a converter for
    TensorFlow graphs). Built-in ops only, so the model runs on the plain
    LiteRT runtime of a phone without the Flex delegate.
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=[SIGNATURE_KEY])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        # Dynamic range: no representative dataset, so activations stay float32.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize != "none":
        raise ExportError(f"unknown quantize mode {quantize!r}")
    try:
        return converter.convert()
    except Exception as e:  # the converter raises several unrelated types
        raise ExportError(f"TFLite conversion ({quantize}) failed: {first_line(e)}") from e


def run_tflite(path: str, z: np.ndarray, num_threads: Optional[int] = None) -> np.ndarray:
    """Icons from a .tflite file through its serving signature (ai-edge-litert)."""
    try:
        model = TFLiteIconModel(path, num_threads=num_threads)
    except ModelLoadError as e:
        raise ExportError(first_line(e)) from e
    return model(z)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 image batches in dB (inf if equal)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))


def check_icons(icons: np.ndarray, n: int, resolution: int, path: str):
    """Raises ExportError unless `icons` are uint8 [n, resolution, resolution, 3]."""
    if icons.dtype != np.uint8 or icons.shape != (n, resolution, resolution, 3):
        raise ExportError(f"{os.path.basename(path)} gives {icons.dtype} {icons.shape}, "
                          f"expected uint8 {(n, resolution, resolution, 3)}")


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.max(np.abs(a.astype(np.int32) - b.astype(np.int32))))


def check_float32(icons: np.ndarray, reference: np.ndarray, what: str) -> int:
    """The largest difference in levels of 255 between an exported float32 model's
    icons and the Keras generator's; ExportError when over MAX_FLOAT32_DIFF."""
    diff = max_abs_diff(icons, reference)
    if diff > MAX_FLOAT32_DIFF:
        raise ExportError(f"{what} differs from the Keras generator by {diff}/255 (at most "
                          f"{MAX_FLOAT32_DIFF} allowed); nothing was written")
    return diff
