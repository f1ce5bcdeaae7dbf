"""XLA's 3x3 convolutions with few channels, as they are and in other forms.

    python -m benchmarks.conv_channels --pairs=4:4,8:4,4:8,8:8 --pad_to=8 --out=FILE.json
    python -m benchmarks.conv_channels --pairs=8:8,16:16 --forms=im2col --out=FILE.json

At 256x256 the seed preset's blocks have 4 to 8 channels, where the profile finds
the convolutions far under the machine's peak. This times one convolution's
forward pass with its input and weight gradients (batch 8, float32, one XLA
function each) for each in:out pair, beside the same values computed in other
--forms, in alternating rounds in one process: "padded" (both channel counts
zero-padded to --pad_to, the output sliced back) and "im2col" (the nine shifted
copies of the input side by side, one matrix product with the kernel as a
[9 x in, out] matrix). Below 1, the other form is faster.
"""

from __future__ import annotations


from absl import app, flags

from benchmarks.machine import (emit_json, interleaved, machine_info, median_ratio,
                                result_header, seconds_summary, tensorflow_threads)
from benchmarks.steps import BATCH

F = flags.FLAGS
FORMS = ("padded", "im2col")
flags.DEFINE_list("pairs", ["4:4", "8:4", "4:8", "8:8"], "Input:output channel pairs.")
flags.DEFINE_integer("resolution", 256, "Height and width of the activations.")
flags.DEFINE_integer("pad_to", 8, "Channels to pad both sides to (pairs already there: "
                     "timed as they are only).")
flags.DEFINE_list("forms", ["padded"], "Other forms to time beside the convolution: "
                  "padded, im2col.")
flags.DEFINE_integer("threads", 2, "TensorFlow's intra- and inter-op threads.")
flags.DEFINE_integer("rounds", 10, "Alternating timed rounds.")
flags.DEFINE_integer("warmup", 3, "Untimed calls of each after compiling.")
flags.DEFINE_string("out", None, "Write the JSON here (always printed).")


def conv_step(cin: int, cout: int, form: str):
    """One XLA-compiled forward + input and weight gradients of a 3x3 'SAME' conv."""
    import tensorflow as tf

    x = tf.random.stateless_normal([BATCH, F.resolution, F.resolution, cin], [0, 1])
    w = tf.Variable(tf.random.stateless_normal([3, 3, cin, cout], [0, 2]))
    size = F.resolution

    def conv(x, w):
        if form == "as_is":
            return tf.nn.conv2d(x, w, 1, "SAME")
        if form == "im2col":
            xp = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
            patches = tf.concat([xp[:, i:i + size, j:j + size] for i in range(3)
                                 for j in range(3)], axis=-1)        # (i, j, c) as w's rows
            return tf.einsum("bhwk,kf->bhwf", patches, tf.reshape(w, [9 * cin, cout]))
        xp = tf.pad(x, [[0, 0], [0, 0], [0, 0], [0, F.pad_to - cin]])
        wp = tf.pad(w, [[0, 0], [0, 0], [0, F.pad_to - cin], [0, F.pad_to - cout]])
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


def form_name(form: str) -> str:
    return f"padded_to_{F.pad_to}" if form == "padded" else form


def time_pair(cin: int, cout: int) -> dict:
    calls = {"as_is": conv_step(cin, cout, "as_is")}
    for form in F.forms:
        if form != "padded" or cin < F.pad_to or cout < F.pad_to:
            calls[form_name(form)] = conv_step(cin, cout, form)
    # Same values in every form (padding adds zeros that the slice removes).
    a = calls["as_is"]()
    for call in list(calls.values())[1:]:
        b = call()
        assert all(abs(u - v) <= 1e-3 * max(1.0, abs(u)) for u, v in zip(a, b)), (a, b)
    times = interleaved(calls, F.rounds, warmup=F.warmup)
    row = {"in": cin, "out": cout, **{k: seconds_summary(v) for k, v in times.items()}}
    for name in list(times)[1:]:
        row[f"{name}_over_as_is"] = median_ratio(times[name], times["as_is"])
    return row


def main(argv):
    del argv
    if set(F.forms) - set(FORMS):
        raise app.UsageError(f"--forms must be among {', '.join(FORMS)}, got {F.forms}")
    tensorflow_threads(F.threads)
    rows = [time_pair(*map(int, pair.split(":"))) for pair in F.pairs]
    emit_json(result_header("benchmarks.conv_channels", resolution=F.resolution, batch_size=BATCH,
                            threads=F.threads, rounds=F.rounds, machine=machine_info(),
                            results=rows), F.out)
    return 0


if __name__ == "__main__":
    app.run(main)
