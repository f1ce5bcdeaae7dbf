"""mel_tf's training step beside the source's own, timed in turns in one process.

    python -m benchmarks.source_ab --source=PATH/TO/image_generator_2 --out=FILE.json

One iteration as each system trains: mel_tf's `ProGAN.train_step` (seed preset,
XLA) and the loop body of the source's PGGAN_train.py run on its own networks and
gradient penalty, imported from a clone (research.source_code.SourceRun: G step,
EMA, D step with penalty and drift). Batch 8, random data, the fade active at a = 0.5
(4x4: stable). Each resolution runs in a fresh subprocess that builds both systems,
warms them up, then times them in alternating rounds (`--per_round` iterations of
each), so that the machine's drift hits both alike; the speed-up is the median of
the per-round ratios. mel_tf is timed at each width of --widths
(benchmarks.steps.timed_networks: at full width the source's own networks, at the
others the defaults). Both frameworks get --threads threads, and glibc's allocator
as the process starts; --allocators instead sets mel_tf's turns to keep freed memory
(benchmarks.memory) and the source's to glibc's default in its end state, each turn
followed by one untimed iteration.
"""

from __future__ import annotations

import json
import math
import os

from absl import app, flags

from benchmarks.machine import (emit_json, interleaved, machine_info, median_ratio,
                                per_resolution, result_header, seconds_summary,
                                tensorflow_threads)
from benchmarks.memory import default_allocator, keep_freed_memory
from benchmarks.steps import BATCH, mel_tf_step
from mel_tf.training.estimate import iteration_gflops

F = flags.FLAGS
flags.DEFINE_string("source", None, "A clone of zassou65535/image_generator_2.", required=True)
flags.DEFINE_string("resolutions", "4,8,16,32,64,128,256", "Stage resolutions to time.")
flags.DEFINE_list("widths", ["1.0", "0.5"], "mel_tf's width multipliers.")
flags.DEFINE_integer("threads", 2, "Threads for each framework.")
flags.DEFINE_integer("warmup", 3, "Untimed iterations of each after tracing.")
flags.DEFINE_integer("rounds", 6, "Alternating timed rounds.")
flags.DEFINE_integer("per_round", 2, "Iterations of each system per round.")
flags.DEFINE_string("out", None, "Write the JSON here (always printed).")
flags.DEFINE_string("table_out", None, "Also write mel_tf's seconds per iteration per width "
                    "and resolution here, for mel_tf.training.estimate (its step_seconds.json).")
flags.DEFINE_bool("allocators", False, "mel_tf with freed memory kept, the source with "
                  "glibc's default in its end state (glibc only); else both as the process "
                  "starts.")
flags.DEFINE_integer("one", None, "Internal: time one resolution in this process.")


def source_step(resolution):
    """A function that runs one iteration of the source's loop body at the stage."""
    import torch

    from research.source_code import SourceRun, import_source

    run = SourceRun(torch, import_source(F.source), torch.float32, 0)
    layer = int(math.log2(resolution)) - 2
    res = layer + 0.5 if layer else 0.5           # a = 0.5 in a fade; 4x4 is stable
    real = torch.rand(BATCH, 3, resolution, resolution)
    counter = iter(range(10**9))

    def step():
        run.step(next(counter), res, real, torch.randn(BATCH, 8192), torch.randn(BATCH, 8192),
                 None)
    return step


def time_one(resolution):
    import torch

    tensorflow_threads(F.threads)
    torch.set_num_threads(F.threads)
    calls, nets = {"source": source_step(resolution)}, {}
    for width in F.widths:
        calls[f"mel_tf_w{width}"], nets[width] = mel_tf_step(resolution, float(width))
    before = None
    if F.allocators:
        before = {name: keep_freed_memory for name in calls if name != "source"}
        before["source"] = default_allocator
    times = interleaved(calls, F.rounds, F.per_round, warmup=1 + F.warmup, before=before)
    result = {"resolution": resolution, "allocators": F.allocators}
    for name, seconds in times.items():
        result[name] = seconds_summary(seconds)
    for width, net in nets.items():
        name = f"mel_tf_w{width}"
        gflops = iteration_gflops(net, resolution, resolution > 4, BATCH)
        result[name].update(speedup_vs_source=median_ratio(times["source"], times[name]),
                            gflops_per_iter=gflops,
                            gflops_per_s=gflops / result[name]["median_s"],
                            channel_floor=net.channel_floor())
    return result


def main(argv):
    del argv
    rows = per_resolution("benchmarks.source_ab", F.one, F.resolutions, time_one)
    if rows is None:
        return 0
    result = result_header("benchmarks.source_ab", threads=F.threads, batch_size=BATCH,
                           rounds=F.rounds, per_round=F.per_round, machine=machine_info(
                               packages=("tensorflow-cpu", "keras", "torch")), results=rows)
    emit_json(result, F.out)
    if F.table_out:
        write_step_table(result, F.table_out)
    return 0


# Measured on a whole run, not here: kept from the table being replaced.
WHOLE_RUN_KEYS = ("overhead_s_per_step", "overhead_source")


def write_step_table(result: dict, path: str):
    """mel_tf's median seconds per iteration, {width: {resolution: s}}, the channel
    floor of the networks timed at each width, and where the figures come from."""
    seconds = {w: {str(r["resolution"]): round(r[f"mel_tf_w{w}"]["median_s"], 4)
                   for r in result["results"]} for w in F.widths}
    floors = {w: result["results"][0][f"mel_tf_w{w}"]["channel_floor"] for w in F.widths}
    kept = {}
    if os.path.isfile(path):
        with open(path) as f:
            kept = {k: v for k, v in json.load(f).items() if k in WHOLE_RUN_KEYS}
    with open(path, "w") as f:
        json.dump({"machine": result["machine"]["cpu"], "date": result["date"],
                   "channel_floor": floors, "threads": F.threads, "source": F.out,
                   "seconds": seconds, **kept},
                  f, indent=2)


if __name__ == "__main__":
    app.run(main)
