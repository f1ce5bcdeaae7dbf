"""mel_tf's training step with the channel floor widening the 256x256 block
(NetworkConfig.widen_to_floor: 8 channels, not full width's 4) against the default.

    python -m benchmarks.widen_ab --resolutions=256 --widths=0.5,1.0 --out=FILE.json

Widening adds arithmetic, but it also turns the block's mixed 8:4 and 4:8
convolutions into 8:8 ones, which XLA runs faster (benchmarks/conv_channels.py).
Each resolution runs in a fresh subprocess that builds both models (seed preset,
batch 8, random data, the fade at a = 0.5), warms them up and times them in
alternating rounds; the ratio is the median of the per-round ratios widened /
default (below 1: widening is faster).
"""

from __future__ import annotations

from absl import app, flags

from benchmarks.machine import emit_json, machine_info, per_resolution, result_header, \
    tensorflow_threads
from benchmarks.steps import BATCH, time_versions

F = flags.FLAGS
flags.DEFINE_string("resolutions", "256", "Stage resolutions to time.")
flags.DEFINE_list("widths", ["0.5", "1.0"], "Width multipliers.")
flags.DEFINE_integer("threads", 2, "TensorFlow's intra- and inter-op threads.")
flags.DEFINE_integer("warmup", 3, "Untimed iterations of each after tracing.")
flags.DEFINE_integer("rounds", 6, "Alternating timed rounds.")
flags.DEFINE_integer("per_round", 2, "Iterations of each version per round.")
flags.DEFINE_string("out", None, "Write the JSON here (always printed).")
flags.DEFINE_integer("one", None, "Internal: time one resolution in this process.")
VERSIONS = {"default": {}, "widened": {"widen_to_floor": True}}


def time_one(resolution):
    tensorflow_threads(F.threads)
    return time_versions(resolution, F.widths, VERSIONS, F.rounds, F.per_round,
                         warmup=1 + F.warmup)


def main(argv):
    del argv
    rows = per_resolution("benchmarks.widen_ab", F.one, F.resolutions, time_one)
    if rows is None:
        return 0
    emit_json(result_header("benchmarks.widen_ab", threads=F.threads, batch_size=BATCH,
                            rounds=F.rounds, per_round=F.per_round, machine=machine_info(),
                            results=rows), F.out)
    return 0


if __name__ == "__main__":
    app.run(main)
