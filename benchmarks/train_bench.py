"""Training speed: seconds per iteration (one G step + one D step with penalty and drift).

    python -m benchmarks.train_bench --preset=seed --resolutions=4,8,16,32,64,128,256 --out=FILE.json

The source's measurement: batch 8, random data, the fade
active at a = 0.5, the median of several timed iterations after warm-up.
Each resolution runs in a fresh subprocess, so its peak resident memory is its
own. FLOPs come from the layer shapes (multiply-add = 2), counting an
iteration as roughly 4 generator forwards + 14 discriminator forwards per image
(the G step, the D step on reals and fakes, the penalty's double backward). With --data_dir (or --dataset) the benchmark also runs real
training steps from the data pipeline and reports the share of time spent
waiting for data.
"""

from __future__ import annotations

import resource
import statistics
import time

from absl import app, flags

from mel_tf.training.estimate import iteration_gflops
from benchmarks.machine import emit_json, machine_info, per_resolution, result_header


F = flags.FLAGS
flags.DEFINE_enum("preset", "seed", ["seed", "paper"], "Architecture preset.")
flags.DEFINE_string("resolutions", "4,8,16,32,64,128,256", "Stage resolutions to time.")
flags.DEFINE_float("width", 1.0, "Channel width multiplier.")
flags.DEFINE_integer("batch_size", 8, "Batch size.")
flags.DEFINE_integer("warmup", 3, "Untimed iterations after tracing.")
flags.DEFINE_integer("iterations", 10, "Timed iterations (the median is reported).")
flags.DEFINE_bool("xla", True, "Compile the step with XLA.")
flags.DEFINE_bool("mixed_precision", False, "bfloat16 compute, float32 weights.")
flags.DEFINE_string("data_dir", None, "Also measure the data-wait share on real data from here.")
flags.DEFINE_string("dataset", None, "...or from a built-in dataset (twemoji_faces).")
flags.DEFINE_string("out", None, "Write the JSON here (always printed).")
flags.DEFINE_integer("one", None, "Internal: time one resolution in this process.")

# The source's PyTorch code, timed on another (faster, AVX-512) 2-core machine, s/iteration.
SOURCE_SEC_PER_ITER = {4: 0.137, 8: 0.255, 16: 0.364, 32: 0.501, 64: 0.731, 128: 1.112, 256: 2.469}


def time_one(resolution):
    """Times one resolution in this process; returns its result dict."""
    import numpy as np
    import tensorflow as tf

    from benchmarks.steps import timed_networks
    from mel_tf.config import Execution, TrainConfig
    from mel_tf.training.progan import ProGAN, step_noise

    policy = Execution(mixed_precision=F.mixed_precision).dtype_policy
    net = timed_networks(resolution, F.width, F.preset)
    tc = TrainConfig(batch_size=F.batch_size)
    model = ProGAN(net, tc, dtype_policy=policy)
    fading = resolution > 4
    model.set_stage(resolution, fading)
    model.set_alpha(0.5)
    step_fn = tf.function(model.train_step, jit_compile=F.xla, autograph=False)
    noise = step_noise(net, tc, F.batch_size)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (F.batch_size, resolution, resolution, 3), dtype=np.uint8)

    def batch(step):
        return {"images": tf.constant(images), "steps": tf.fill([F.batch_size], tf.constant(step, tf.int64)),
                **{k: tf.constant(v) for k, v in noise(step).items()}}

    t0 = time.perf_counter()
    float(step_fn(batch(0))["d_loss"])
    trace_s = time.perf_counter() - t0
    for i in range(F.warmup):
        float(step_fn(batch(1 + i))["d_loss"])
    times = []
    for i in range(F.iterations):
        b = batch(100 + i)
        t0 = time.perf_counter()
        float(step_fn(b)["d_loss"])
        times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    gflops = iteration_gflops(net, resolution, fading, F.batch_size)
    result = {"resolution": resolution, "sec_per_iter": sec, "images_per_sec": F.batch_size / sec,
              "gflops_per_iter": gflops, "gflops_per_sec": gflops / sec,
              "min_sec_per_iter": min(times), "trace_and_compile_sec": trace_s,
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if F.preset == "seed" and F.width == 1.0 and resolution in SOURCE_SEC_PER_ITER:
        result["source_sec_per_iter"] = SOURCE_SEC_PER_ITER[resolution]
        result["speedup_vs_source"] = SOURCE_SEC_PER_ITER[resolution] / sec
    if F.data_dir or F.dataset:
        result.update(data_wait(model, net, tc, resolution, step_fn))
    return result


def data_wait(model, net, tc, resolution, step_fn, steps=30):
    """Share of wall time spent waiting for the next batch in a real data loop."""
    from mel_tf.training import data as data_lib
    from mel_tf.training.loop import phase_dataset

    image_set = data_lib.open_dataset(data_dir=F.data_dir, dataset=F.dataset,
                                      max_resolution=resolution)
    it = iter(phase_dataset(image_set, net, tc, resolution, F.batch_size, 0, steps + 1))
    float(step_fn(next(it))["d_loss"])            # the pipeline's own warm-up
    waiting = total = 0.0
    for _ in range(steps):
        t0 = time.perf_counter()
        element = next(it)
        t1 = time.perf_counter()
        float(step_fn(element)["d_loss"])
        t2 = time.perf_counter()
        waiting += t1 - t0
        total += t2 - t0
    return {"data_wait_fraction": waiting / total, "data_steps_timed": steps}


def main(argv):
    del argv
    results = per_resolution("benchmarks.train_bench", F.one, F.resolutions, time_one)
    if results is None:
        return 0
    out = result_header("benchmarks.train_bench", preset=F.preset, width=F.width,
                        batch_size=F.batch_size, xla=F.xla, mixed_precision=F.mixed_precision,
                        machine=machine_info(), results=results)
    emit_json(out, F.out)
    return 0


if __name__ == "__main__":
    app.run(main)
