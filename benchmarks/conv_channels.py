"""XLA's 3x3 convolutions with few channels, as they are and zero-padded to more.

    python -m benchmarks.conv_channels --pairs=4:4,8:4,4:8,8:8 --pad_to=8 --out=FILE.json

At 256x256 the seed preset's blocks have 4 to 8 channels, where the profile finds
the convolutions far under the machine's peak. This times one convolution's
forward pass with its input and weight gradients (batch 8, float32, one XLA
function each) for each in:out pair, beside the same convolution with both channel
counts zero-padded to --pad_to and the output sliced back (the same values), in
alternating rounds in one process. Below 1, padding is faster.
"""

from __future__ import annotations


from absl import app, flags

from benchmarks.machine import (emit_json, interleaved, machine_info, median_ratio,
                                result_header, seconds_summary, tensorflow_threads)
from benchmarks.steps import BATCH

F = flags.FLAGS
flags.DEFINE_list("pairs", ["4:4", "8:4", "4:8", "8:8"], "Input:output channel pairs.")
flags.DEFINE_integer("resolution", 256, "Height and width of the activations.")
flags.DEFINE_integer("pad_to", 8, "Channels to pad both sides to (pairs already there: "
                     "timed as they are only).")
flags.DEFINE_integer("threads", 2, "TensorFlow's intra- and inter-op threads.")
flags.DEFINE_integer("rounds", 10, "Alternating timed rounds.")
flags.DEFINE_integer("warmup", 3, "Untimed calls of each after compiling.")
flags.DEFINE_string("out", None, "Write the JSON here (always printed).")


def conv_step(cin: int, cout: int, pad_to: int):
    """One XLA-compiled forward + input and weight gradients of a 3x3 'SAME' conv."""
    import tensorflow as tf

    x = tf.random.stateless_normal([BATCH, F.resolution, F.resolution, cin], [0, 1])
    w = tf.Variable(tf.random.stateless_normal([3, 3, cin, cout], [0, 2]))

    def conv(x, w):
        if not pad_to:
            return tf.nn.conv2d(x, w, 1, "SAME")
        xp = tf.pad(x, [[0, 0], [0, 0], [0, 0], [0, pad_to - cin]])
        wp = tf.pad(w, [[0, 0], [0, 0], [0, pad_to - cin], [0, pad_to - cout]])
        return tf.nn.conv2d(xp, wp, 1, "SAME")[..., :cout]

    @tf.function(jit_compile=True)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = conv(x, w)
            loss = tf.reduce_sum(y * y)
        gx, gw = tape.gradient(loss, [x, w])
        return loss, tf.reduce_sum(gx), tf.reduce_sum(gw)
    return lambda: [float(v) for v in step(x)]


def time_pair(cin: int, cout: int) -> dict:
    calls = {"as_is": conv_step(cin, cout, 0)}
    if cin < F.pad_to or cout < F.pad_to:
        calls[f"padded_to_{F.pad_to}"] = conv_step(cin, cout, F.pad_to)
        # Same values: the padding is zeros and the slice removes what they add.
        a, b = (call() for call in calls.values())
        assert all(abs(u - v) <= 1e-3 * max(1.0, abs(u)) for u, v in zip(a, b)), (a, b)
    times = interleaved(calls, F.rounds, warmup=F.warmup)
    row = {"in": cin, "out": cout, **{k: seconds_summary(v) for k, v in times.items()}}
    if len(times) == 2:
        padded, plain = times[f"padded_to_{F.pad_to}"], times["as_is"]
        row["padded_over_as_is"] = median_ratio(padded, plain)
    return row


def main(argv):
    del argv
    tensorflow_threads(F.threads)
    rows = [time_pair(*map(int, pair.split(":"))) for pair in F.pairs]
    emit_json(result_header("benchmarks.conv_channels", resolution=F.resolution, batch_size=BATCH,
                            threads=F.threads, rounds=F.rounds, machine=machine_info(),
                            results=rows), F.out)
    return 0


if __name__ == "__main__":
    app.run(main)
