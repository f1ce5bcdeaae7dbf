"""mel_tf's training iteration as the speed benchmarks time it (shared by them)."""

from mel_tf.config import NetworkConfig, TrainConfig, preset, source_networks

BATCH = 8


def timed_networks(resolution, width, preset_name="seed", **network) -> NetworkConfig:
    """The networks the speed benchmarks time: at full width the preset's own, no
    layer widened (for the seed preset, the source's networks, so full width compares
    at equal networks), at other widths the defaults; `network` overrides either."""
    own = source_networks().channel_floor() if width == 1.0 else {}
    return preset(preset_name, resolution, width, **{**own, **network})


def mel_tf_step(resolution, width, jit_compile=True, dtype_policy="float32", **network):
    """A function that runs one mel_tf training iteration at the stage, and its
    NetworkConfig (`timed_networks` with `network`'s fields); `jit_compile` False runs
    the step as a TensorFlow graph (oneDNN's kernels) instead of one XLA executable;
    `dtype_policy` is the layers' Keras policy (Execution.dtype_policy)."""
    import numpy as np
    import tensorflow as tf

    from mel_tf.training.progan import ProGAN, step_noise

    net, tc = timed_networks(resolution, width, **network), TrainConfig(batch_size=BATCH)
    model = ProGAN(net, tc, dtype_policy=dtype_policy)
    model.set_stage(resolution, resolution > 4)
    model.set_alpha(0.5)
    step_fn = tf.function(model.train_step, jit_compile=jit_compile, autograph=False)
    noise = step_noise(net, tc, BATCH)
    images = np.random.default_rng(0).integers(0, 256, (BATCH, resolution, resolution, 3),
                                               dtype=np.uint8)
    counter = iter(range(10**9))

    def step():
        i = next(counter)
        batch = {"images": tf.constant(images), "steps": tf.fill([BATCH], tf.constant(i, tf.int64)),
                 **{k: tf.constant(v) for k, v in noise(i).items()}}
        float(step_fn(batch)["d_loss"])
    return step, net


def time_versions(resolution, widths, versions, rounds, per_round, warmup):
    """Versions of the step ({name: mel_tf_step keywords}, the baseline first) at each
    width, timed in alternating rounds (benchmarks.machine.interleaved): their seconds,
    G's block channels, and for each other version "<it>_over_<first>_w<width>", the
    median of the per-round ratios (above 1: the baseline is faster)."""
    from benchmarks.machine import interleaved, median_ratio, seconds_summary

    calls, channels = {}, {}
    for width in widths:
        for name, keywords in versions.items():
            calls[f"{name}_w{width}"], net = mel_tf_step(resolution, float(width), **keywords)
            channels[f"{name}_w{width}"] = net.g_block_channels(resolution)
    times = interleaved(calls, rounds, per_round, warmup=warmup)
    result = {"resolution": resolution, "g_block_channels": channels}
    result.update({name: seconds_summary(seconds) for name, seconds in times.items()})
    base, *others = versions
    for other in others:
        for width in widths:
            result[f"{other}_over_{base}_w{width}"] = median_ratio(times[f"{other}_w{width}"],
                                                                   times[f"{base}_w{width}"])
    return result


def define_ab_flags(resolutions: str, widths) -> None:
    """The flags of an A/B of versions of the step (xla_ab, widen_ab, precision_ab)."""
    from absl import flags

    flags.DEFINE_string("resolutions", resolutions, "Stage resolutions to time.")
    flags.DEFINE_list("widths", widths, "Width multipliers.")
    flags.DEFINE_integer("threads", 2, "TensorFlow's intra- and inter-op threads.")
    flags.DEFINE_integer("warmup", 3, "Untimed iterations of each after tracing.")
    flags.DEFINE_integer("rounds", 6, "Alternating timed rounds.")
    flags.DEFINE_integer("per_round", 2, "Iterations of each version per round.")
    flags.DEFINE_string("out", None, "Write the JSON here (always printed).")
    flags.DEFINE_integer("one", None, "Internal: time one resolution in this process.")


def ab_main(module: str, versions: dict):
    """The absl main of `module`, an A/B of versions of the step (time_versions),
    each resolution in a fresh process (benchmarks.machine.per_resolution)."""
    from absl import flags

    from benchmarks.machine import emit_json, machine_info, per_resolution, result_header, \
        tensorflow_threads
    F = flags.FLAGS

    def time_one(resolution):
        tensorflow_threads(F.threads)
        return time_versions(resolution, F.widths, versions, F.rounds, F.per_round,
                             warmup=1 + F.warmup)

    def main(argv):
        del argv
        rows = per_resolution(module, F.one, F.resolutions, time_one)
        if rows is not None:
            emit_json(result_header(module, threads=F.threads, batch_size=BATCH,
                                    rounds=F.rounds, per_round=F.per_round,
                                    machine=machine_info(), results=rows), F.out)
        return 0
    return main
