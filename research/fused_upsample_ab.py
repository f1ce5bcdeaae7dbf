"""A/B of the generator's fused upsample-conv against upsample-then-conv.

    python -m research.fused_upsample_ab --resolutions=16,64,256 --out=FILE.json

Both variants live in one process and are timed interleaved (A, B, A, B, ...),
so that the drift of a shared machine hits both alike; separate-process
benchmarks here vary by 10-15% from run to run, more than the effect measured.
The unfused variant is the same layers with the fusion switched off (`unfuse`):
each EqualizedConv2D(upsample=True) upsamples its input (Upsample2x) and runs
the plain 3x3 path, which is what the generator did before the fusion.

Measured: the seed preset's training step (batch 8, full width, XLA, fade at
a = 0.5) per resolution, and the 256x256 generator as a float32 .tflite with
one LiteRT thread (batch 1).
"""

from __future__ import annotations

import datetime
import os
import statistics
import tempfile

from absl import app, flags


from benchmarks.machine import emit_json, interleaved, machine_info

F = flags.FLAGS
flags.DEFINE_list("resolutions", ["16", "64", "256"], "Training-step resolutions to compare.")
flags.DEFINE_integer("rounds", 8, "Interleaved timed rounds per variant.")
flags.DEFINE_bool("tflite", True, "Also compare the 256x256 float32 .tflite generator.")
flags.DEFINE_integer("tflite_rounds", 40, "Interleaved rounds of 5 calls for the .tflite A/B.")
flags.DEFINE_string("out", None, "Write the JSON here (always printed).")


def unfuse(network):
    """Switches every fused upsample-conv of `network` to upsample-then-conv.

    Each such layer's `call` becomes Upsample2x followed by a twin layer without
    the fusion that reads the same kernel and bias (its own are only built).
    """
    from mel_tf.training.layers import EqualizedConv2D, Upsample2x
    from mel_tf.training.networks import weight_layers
    upsample = Upsample2x()

    def unfused_call(layer):
        twin = EqualizedConv2D(layer.filters, 3, gain=layer.gain, padding=layer.padding,
                               use_bias=layer.use_bias, parameterization=layer.parameterization)
        twin.build((None, None, None, layer.kernel.shape[2]))
        twin.kernel, twin.bias = layer.kernel, layer.bias if layer.use_bias else None

        def call(x):
            return twin(upsample(x))
        return call

    for layer in weight_layers(network):
        if isinstance(layer, EqualizedConv2D) and layer.upsample:
            layer.call = unfused_call(layer)


def summary(times):
    return {k: {"median_s": statistics.median(v), "min_s": min(v)} for k, v in times.items()}


def train_step_ab(resolution, tf):
    import numpy as np

    from mel_tf.config import TrainConfig, source_networks
    from mel_tf.training.progan import ProGAN, step_noise

    net, tc, batch_size = source_networks(resolution), TrainConfig(batch_size=8), 8
    noise = step_noise(net, tc, batch_size)
    images = np.random.default_rng(0).integers(0, 256, (batch_size, resolution, resolution, 3),
                                               dtype=np.uint8)
    batch = {"images": tf.constant(images), "steps": tf.fill([batch_size], tf.constant(7, tf.int64)),
             **{k: tf.constant(v) for k, v in noise(7).items()}}
    fns = {}
    for name in ("fused", "unfused"):
        model = ProGAN(net, tc)
        model.set_stage(resolution, resolution > 4)
        model.set_alpha(0.5)
        if name == "unfused":
            unfuse(model.generator)
            unfuse(model.generator_ema)
        step = tf.function(model.train_step, jit_compile=True, autograph=False)
        for _ in range(3):
            float(step(batch)["d_loss"])
        fns[name] = lambda step=step: float(step(batch)["d_loss"])
    result = summary(interleaved(fns, F.rounds))
    return {"resolution": resolution, **result,
            "unfused_over_fused": result["unfused"]["median_s"] / result["fused"]["median_s"]}


def tflite_ab(tf):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from mel_tf.config import source_networks
    from mel_tf.deploy.convert import convert_to_tflite, write_saved_model
    from mel_tf.training.networks import Generator

    net = source_networks(256)
    fns, sizes = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("fused", "unfused"):
            tf.keras.utils.set_random_seed(0)
            generator = Generator(net)
            generator.set_stage(256, False)
            if name == "unfused":
                unfuse(generator)
            # The product's own export path: SavedModel (z -> uint8 icons) -> .tflite.
            saved = os.path.join(tmp, name + "_saved_model")
            write_saved_model(generator, saved)
            path = os.path.join(tmp, name + ".tflite")
            with open(path, "wb") as f:
                f.write(convert_to_tflite(saved))
            sizes[name] = os.path.getsize(path)
            interpreter = Interpreter(model_path=path, num_threads=1)
            interpreter.allocate_tensors()
            inp = interpreter.get_input_details()[0]
            interpreter.set_tensor(inp["index"], np.random.default_rng(0).standard_normal(
                inp["shape"]).astype(np.float32))
            for _ in range(5):
                interpreter.invoke()
            fns[name] = interpreter.invoke
        result = summary(interleaved(fns, F.tflite_rounds, per_round=5))
    return {"format": "tflite_float32", "threads": 1, "resolution": 256,
            **{k: {"median_ms": 1000 * v["median_s"], "min_ms": 1000 * v["min_s"],
                   "bytes": sizes[k]} for k, v in result.items()},
            "unfused_over_fused": result["unfused"]["median_s"] / result["fused"]["median_s"]}


def main(argv):
    del argv
    import tensorflow as tf

    out = {"date": datetime.date.today().isoformat(), "machine": machine_info(),
           "train_step": [train_step_ab(int(r), tf) for r in F.resolutions]}
    if F.tflite:
        out["tflite"] = tflite_ab(tf)
    emit_json(out, F.out)
    return 0


if __name__ == "__main__":
    app.run(main)
