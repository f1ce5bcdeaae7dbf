"""mel_tf's training step compiled by XLA against the same step as a TensorFlow graph.

    python -m benchmarks.xla_ab --resolutions=64,128,256 --widths=1.0,0.5 --out=FILE.json

XLA fuses the step into one executable; without it TensorFlow runs each op,
the convolutions in oneDNN's kernels, which spread over the cores differently.
Which is faster depends on the resolution and width, so each resolution runs in a
fresh subprocess that builds both versions of the same model (seed preset, batch
8, random data, the fade at a = 0.5), warms them up and times them in alternating
rounds; the ratio is the median of the per-round ratios graph / XLA (above 1: XLA
is faster).
"""

from __future__ import annotations


from absl import app, flags

from benchmarks.machine import emit_json, machine_info, per_resolution, result_header, \
    tensorflow_threads
from benchmarks.steps import BATCH, time_versions

F = flags.FLAGS
flags.DEFINE_string("resolutions", "4,8,16,32,64,128,256", "Stage resolutions to time.")
flags.DEFINE_list("widths", ["1.0", "0.5"], "Width multipliers.")
flags.DEFINE_integer("threads", 2, "TensorFlow's intra- and inter-op threads.")
flags.DEFINE_integer("warmup", 3, "Untimed iterations of each after tracing.")
flags.DEFINE_integer("rounds", 6, "Alternating timed rounds.")
flags.DEFINE_integer("per_round", 2, "Iterations of each version per round.")
flags.DEFINE_string("out", None, "Write the JSON here (always printed).")
flags.DEFINE_integer("one", None, "Internal: time one resolution in this process.")
VERSIONS = {"xla": {"jit_compile": True}, "graph": {"jit_compile": False}}


def time_one(resolution):
    tensorflow_threads(F.threads)
    return time_versions(resolution, F.widths, VERSIONS, F.rounds, F.per_round,
                         warmup=1 + F.warmup)


def main(argv):
    del argv
    rows = per_resolution("benchmarks.xla_ab", F.one, F.resolutions, time_one)
    if rows is None:
        return 0
    emit_json(result_header("benchmarks.xla_ab", threads=F.threads, batch_size=BATCH,
                            rounds=F.rounds, per_round=F.per_round, machine=machine_info(),
                            results=rows), F.out)
    return 0


if __name__ == "__main__":
    app.run(main)
