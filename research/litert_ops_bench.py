"""LiteRT (XNNPACK, one thread) timings of the exported generator's op choices.

    python -m research.litert_ops_bench --out=FILE.json

Each case is a small float32 .tflite converted from TensorFlow ops; the
variants of a case are loaded in one process and timed interleaved, so that a
shared machine's drift hits them alike. Cases, at the seed preset's shapes:

- pixel_norm: the channel mean by MEAN (the training graph) against a 1x1
  convolution with a [C, C] matrix of 1/C (`litert_layout.mean_by_conv`), at
  every generator resolution; this sets litert_layout.LITERT_NARROW_CHANNELS.
- upsample_conv: the fused upsample-conv (2x2 convolution over four phases)
  with its outputs laid out the earlier way (each phase cut out of the
  convolution's output by a channel slice, then concat and depth_to_space)
  against the layout now in `EqualizedConv2D` (depth_to_space, then a crop of
  one pixel per side). Without the bias: this path converts the bias to a
  separate ADD, which the exported generator does not have (its converter
  moves the bias into the convolution).
- conv3x3_4to4, to_rgb_4to3, pixel_norm_conv: the 256x256 block's layers in
  NHWC and over column pairs (`litert_layout.column_pairs_conv2d`; toRGB gains
  nothing and is exported in NHWC).
- xla_pixel_norm_fwd_bwd (TensorFlow, not LiteRT): why training keeps MEAN,
  a pixel norm's forward and backward pass under XLA at batch 8.
- generator: the seed preset's 256x256 generator (float output, batch 1) as
  trained (`Generator(cfg)`) and as exported (`litert_layout.LiteRTGenerator`).

Output JSON: {"date", "machine", "threads", "results": [{"case", "shape",
"variant", "ms_median", "ms_p10"}, ...]}.
"""

from __future__ import annotations

import datetime
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging

from benchmarks.machine import emit_json, interleaved, machine_info

F = flags.FLAGS
flags.DEFINE_integer("rounds", 40, "Interleaved rounds of 5 calls per variant.")
flags.DEFINE_integer("threads", 1, "LiteRT threads.")
flags.DEFINE_string("out", None, "Write the JSON here (always printed).")

# Seed preset, full width: G's output channels at each resolution.
SEED_CHANNELS = {4: 256, 8: 128, 16: 64, 32: 32, 64: 16, 128: 8, 256: 4}


def norm_by_conv(column_pairs=False):
    """The seed preset's pixel norm with its channel mean by a 1x1 convolution."""
    import tensorflow as tf

    from mel_tf.training.layers import PixelNorm
    from mel_tf.deploy.litert_layout import mean_by_conv
    norm = PixelNorm(1e-7, "seed")
    return lambda x: norm.normalize(x, mean_by_conv(tf.square(x), column_pairs))


def pixel_norm_cases():
    from mel_tf.training.layers import PixelNorm
    for r, c in SEED_CHANNELS.items():
        yield ("pixel_norm", [1, r, r, c], {
            "mean": PixelNorm(1e-7, "seed"), "conv1x1": norm_by_conv()})


def upsample_conv_cases():
    import tensorflow as tf

    from mel_tf.training.layers import EqualizedConv2D, pad1

    def phase_slices(layer):
        """The earlier layout: phase (a, b) at y[i + a, j + b], cut out per phase."""
        def call(x):
            h, w, f = x.shape[1], x.shape[2], layer.filters
            k = tf.concat([k for rows in _old_phases(layer.scaled_kernel(), 0)
                           for k in _old_phases(rows, 1)], axis=-1)
            y = tf.nn.conv2d(pad1(pad1(x, 1, edge=True), 2, edge=True), k, strides=1, padding="VALID")
            y = tf.concat([y[:, a:a + h, b:b + w, (2 * a + b) * f:(2 * a + b + 1) * f]
                           for a in (0, 1) for b in (0, 1)], axis=-1)
            return tf.nn.depth_to_space(y, 2)
        return call

    for r in (32, 128, 256):
        c = SEED_CHANNELS[r]
        layer = EqualizedConv2D(c, 3, padding="reflect", upsample=True, use_bias=False)
        layer.build((None, None, None, 2 * c))
        yield ("upsample_conv", [1, r // 2, r // 2, 2 * c], {
            "phase_slices_concat": phase_slices(layer), "depth_to_space_crop": layer})


def column_pairs_cases():
    """The 256x256 block's 4-channel layers, NHWC and over column pairs."""
    from mel_tf.training.layers import EqualizedConv2D
    from mel_tf.deploy.litert_layout import column_pairs_conv2d

    def pair(filters, kernel_size, channels):
        plain = EqualizedConv2D(filters, kernel_size, padding="reflect")
        plain.build((None, None, None, channels))
        return {"nhwc": plain, "column_pairs": lambda x: column_pairs_conv2d(
            x, plain.scaled_kernel(), plain.bias, "reflect")}

    shape = [1, 256, 256, 4]
    yield ("conv3x3_4to4", shape, pair(4, 3, 4))
    yield ("to_rgb_4to3", shape, pair(3, 1, 4))
    yield ("pixel_norm_conv", shape, {"nhwc": norm_by_conv(),
                                      "column_pairs": norm_by_conv(column_pairs=True)})


def generator_cases():
    """The whole 256x256 seed generator (full width, untrained), as trained and as exported."""
    import keras

    from mel_tf.config import source_networks
    from mel_tf.deploy.litert_layout import LiteRTGenerator
    from mel_tf.training.networks import Generator
    cfg = source_networks(256)
    keras.utils.set_random_seed(0)
    trained = Generator(cfg)
    exported = LiteRTGenerator(trained)
    yield ("generator", [1, cfg.latent_dim], {"training_graph": trained,
                                              "litert_graph": exported})


def _old_phases(w, axis):
    import tensorflow as tf
    w0, w1, w2 = tf.unstack(w, axis=axis)
    return (tf.stack([w0, w1 + w2], axis=axis), tf.stack([w0 + w1, w2], axis=axis))


def to_tflite(fn, shape, path):
    import tensorflow as tf
    f = tf.function(lambda x: fn(x), input_signature=[tf.TensorSpec(shape, tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()])
    with open(path, "wb") as out:
        out.write(converter.convert())


def time_variants(case, shape, variants, work, rounds, threads):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    interpreters, outputs = {}, {}
    for name, fn in variants.items():
        path = os.path.join(work, f"{case}_{name}_{'x'.join(map(str, shape))}.tflite")
        to_tflite(fn, shape, path)
        it = Interpreter(model_path=path, num_threads=threads)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        outputs[name] = it.get_tensor(it.get_output_details()[0]["index"]).copy()
        interpreters[name] = it
    reference = outputs[next(iter(outputs))]
    for name, y in outputs.items():          # the variants must compute the same thing
        if not np.allclose(y, reference, rtol=1e-4, atol=1e-4):
            raise AssertionError(f"{case} {shape}: {name} differs from the first variant")
    times = interleaved({name: it.invoke for name, it in interpreters.items()}, rounds, 5)
    return rows_of(case, shape, times)


def xla_training_rows(rounds):
    """Why training keeps MEAN: a pixel norm's forward and backward under XLA, batch 8."""
    import numpy as np
    import tensorflow as tf

    from mel_tf.training.layers import PixelNorm
    rows = []
    for r, c in ((256, 4), (128, 8)):
        x = tf.constant(np.random.default_rng(0).standard_normal((8, r, r, c)), tf.float32)
        steps = {}
        for name, norm in (("mean", PixelNorm(1e-7, "seed")),
                           ("conv1x1", norm_by_conv())):
            @tf.function(jit_compile=True)
            def step(x, norm=norm):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = tf.reduce_sum(norm(x) * x)
                return tape.gradient(y, x)
            step(x).numpy()
            steps[name] = lambda step=step: step(x).numpy()
        rows += rows_of("xla_pixel_norm_fwd_bwd", [8, r, r, c],
                        interleaved(steps, rounds // 2, 1))
    return rows


def rows_of(case, shape, times):
    """JSON rows (median and 10th percentile in ms), printed as they are made."""
    rows = []
    for name, ts in times.items():
        ts = sorted(ts)
        rows.append({"case": case, "shape": shape, "variant": name,
                     "ms_median": round(1e3 * ts[len(ts) // 2], 4),
                     "ms_p10": round(1e3 * ts[len(ts) // 10], 4)})
        print(f"{case:14s} {'x'.join(map(str, shape)):14s} {name:20s} "
              f"{rows[-1]['ms_median']:7.3f} ms (p10 {rows[-1]['ms_p10']:.3f})", flush=True)
    return rows


def main(argv):
    del argv
    logging.set_verbosity(logging.ERROR)     # the converter logs twice per model
    load_before = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory(prefix="litert_ops_bench-") as work:
        cases = (list(pixel_norm_cases()) + list(upsample_conv_cases())
                 + list(column_pairs_cases()) + list(generator_cases()))
        for case, shape, variants in cases:
            results += time_variants(case, shape, variants, work, F.rounds, F.threads)
    results += xla_training_rows(F.rounds)
    emit_json({
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(("tensorflow-cpu", "tensorflow", "ai-edge-litert"), load_before),
        "threads": F.threads, "rounds": F.rounds, "calls_per_round": 5,
        "results": results}, F.out)


if __name__ == "__main__":
    app.run(main)
