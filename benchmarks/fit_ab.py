"""Paired A/B of the training step's host loop: the hand-written loop that
`train()` used before (a tf.function of train_step, a set before each step,
the logs read back) against `ProGAN.fit()` with the callbacks `train()` passes.

    python -m benchmarks.fit_ab --resolutions=4,64,256 --out=FILE.json

Both run the same model, the same phase dataset (`training.phase_dataset`)
and XLA, in one process per resolution, alternating rounds of --steps steps,
so a shared machine's drift hits both alike; the order alternates (ABBA). Per round: the median step
(the time between the ends of consecutive steps) and the round's wall time
per step (with each path's start-up: the iterator, fit's set-up). The ratio
fit/loop is reported per round; its median and range are the result.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

from absl import app, flags

from benchmarks.machine import emit_json, machine_info, per_resolution, result_header


F = flags.FLAGS
flags.DEFINE_string("resolutions", "4,64,256", "Stage resolutions.")
flags.DEFINE_enum("preset", "seed", ["seed", "paper"], "Architecture preset.")
flags.DEFINE_float("width", 1.0, "Channel width multiplier.")
flags.DEFINE_integer("batch_size", 8, "Batch size.")
flags.DEFINE_integer("rounds", 6, "Rounds (each runs both paths).")
flags.DEFINE_string("steps", "4:24,64:8,256:4", "Steps per path per round, by resolution.")
flags.DEFINE_bool("xla", True, "Compile the step with XLA.")
flags.DEFINE_string("out", None, "Write the JSON here (always printed).")
flags.DEFINE_integer("one", None, "Internal: run one resolution in this process.")


def paths(resolution: int):
    """(model, {"loop": run(steps) -> step end times, "fit": ...})."""
    import math

    import keras
    import numpy as np
    import tensorflow as tf

    from benchmarks.steps import timed_networks
    from mel_tf.training import callbacks as cb
    from mel_tf.config import LoopOptions, TrainConfig
    from mel_tf.training.data import ImageSet, LoadReport
    from mel_tf.training.schedule import Phase, Schedule
    from mel_tf.training.loop import loop_callbacks, phase_dataset
    from mel_tf.training.progan import ProGAN

    net = timed_networks(resolution, F.width, F.preset)
    tc = TrainConfig(batch_size=F.batch_size)
    rng = np.random.default_rng(0)
    images = ImageSet([rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)
                       for _ in range(64)], LoadReport("random", 64))
    model = ProGAN(net, tc)
    model.compile(jit_compile=F.xla)
    fading = resolution > 4
    # One long phase, half faded: no phase end (and so no checkpoint) while timed.
    phase = Phase(resolution, fading, 10**9, F.batch_size, tc.learning_rate)
    clock = cb.Clock(Schedule([phase]), images_shown=phase.images // 2)
    writer = tf.summary.create_noop_writer()
    model.set_stage(resolution, fading)
    step_fn = tf.function(model.train_step, jit_compile=F.xla, autograph=False)
    first = [0]

    def dataset(steps):
        first[0] += steps
        return phase_dataset(images, net, tc, resolution, F.batch_size, first[0], steps)

    def loop(steps):
        ends = []
        for element in dataset(steps):
            model.set_alpha(clock.alpha)
            out = {k: float(v) for k, v in step_fn(element).items()}
            assert all(math.isfinite(v) for v in out.values())
            ends.append(time.perf_counter())
        return ends

    class Ends(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    ends = Ends()
    # train()'s callbacks; nothing is due to be saved or sampled while timed.
    callbacks = [*loop_callbacks(clock, "-", "-", writer, None, LoopOptions(progress=False,
                                 sample_every_images=0), None, chief=False),
                 cb.Checkpoints(clock, None, None, 0, cb.StopRequests()), ends]

    def fit(steps):
        model.fit(dataset(steps), steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False,
                  callbacks=callbacks)
        return ends.ends
    return {"loop": loop, "fit": fit}


def run_one(resolution: int) -> dict:
    steps = dict(item.split(":") for item in F.steps.split(","))
    steps = int(steps.get(str(resolution), 4))
    runs = paths(resolution)
    compile_s = {}
    for name, run in runs.items():      # trace and compile each path once, untimed
        t0 = time.perf_counter()
        run(2)
        compile_s[name] = time.perf_counter() - t0
    rounds = []
    for i in range(F.rounds):
        row = {"first": "loop" if i % 2 == 0 else "fit"}
        # ABBA: each path goes first in every other round, so that what the
        # order itself costs (the previous pipeline's teardown) hits both alike.
        for name in (("loop", "fit") if i % 2 == 0 else ("fit", "loop")):
            run = runs[name]
            t0 = time.perf_counter()
            ends = run(steps)
            wall = time.perf_counter() - t0
            row[name] = {"median_step_s": statistics.median(
                b - a for a, b in zip(ends, ends[1:])), "wall_per_step_s": wall / steps}
        row["ratio_step"] = row["fit"]["median_step_s"] / row["loop"]["median_step_s"]
        row["ratio_wall"] = row["fit"]["wall_per_step_s"] / row["loop"]["wall_per_step_s"]
        rounds.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    def summary(key):
        values = sorted(r[key] for r in rounds)
        return {"median": statistics.median(values), "min": values[0], "max": values[-1]}
    return {"resolution": resolution, "steps_per_round": steps, "rounds": rounds,
            "first_call_s": compile_s, "ratio_step": summary("ratio_step"),
            "ratio_wall": summary("ratio_wall"),
            "loop_median_step_s": statistics.median(r["loop"]["median_step_s"] for r in rounds),
            "fit_median_step_s": statistics.median(r["fit"]["median_step_s"] for r in rounds)}


def main(argv):
    del argv
    load = os.getloadavg()
    results = per_resolution("benchmarks.fit_ab", F.one, F.resolutions, run_one)
    if results is None:
        return 0
    emit_json(result_header(
        "benchmarks.fit_ab", what="fit() with train()'s callbacks / the hand-written loop, per step",
        preset=F.preset, width=F.width, batch_size=F.batch_size, xla=F.xla, rounds=F.rounds,
        machine=machine_info(load_before=load), results=results), F.out)
    return 0


if __name__ == "__main__":
    app.run(main)
