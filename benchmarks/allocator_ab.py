"""Training through fit() under each memory allocator: whole runs, processes in turn.

    python -m benchmarks.allocator_ab --resolution=256 --width=0.5 --rounds=2 --out=FILE.json

An allocator is chosen as a process starts, so each arm is a fresh process that runs
`mel_tf.training.train` (Keras's fit(), XLA, all cores) on --icons random icons: 4x4
stable, one short fade per resolution, then a stable phase at --resolution whose
steps after the first --skip are the steady state. The arms (ARMS; one whose library
is missing is left out): glibc's allocator as it comes; glibc with one arena, no mmap
and no trimming (GLIBC_TUNABLES: large buffers from one heap, reused); jemalloc and
tcmalloc through LD_PRELOAD. Rounds run every arm in turn, the order reversed every
other round. Per process: the steady state's median seconds per step, page faults and
user and kernel CPU seconds per step, and the whole process's wall, CPU and peak
memory. The ratio of an arm is the median over rounds of its steady-state step time
over glibc's in the same round (below 1: faster than glibc's).
"""

from __future__ import annotations

import ctypes.util
import os
import resource
import statistics
import time

from absl import app, flags

from benchmarks.machine import (child_result, emit_json, forwarded_flags, machine_info,
                                median_ratio, print_result, result_header)
from benchmarks.memory import KEPT, tunables
from benchmarks.steps import BATCH

F = flags.FLAGS


def define_flags():
    """The command line's flags, defined only when this module is the program: the tests
    import it beside modules that define --resolution and --out too."""
    flags.DEFINE_integer("resolution", 256, "The last stage; its stable phase is timed.")
    flags.DEFINE_float("width", 0.5, "Channel width multiplier.")
    flags.DEFINE_integer("icons", 64, "Random icons to train on.")
    flags.DEFINE_integer("steps", 60, "Steps of the last stable phase (and of 4x4's).")
    flags.DEFINE_integer("skip", 10, "Steps of the last phase left out of the steady state.")
    flags.DEFINE_integer("rounds", 2, "Rounds; each runs every arm once.")
    flags.DEFINE_list("arms", [], "Arms to run (default: every one available).")
    flags.DEFINE_string("logdir", "/tmp/mel_tf_allocator_ab", "Scratch run directories.")
    flags.DEFINE_string("out", None, "Write the JSON here (always printed).")
    flags.DEFINE_string("arm", None, "Internal: train once under the allocator this process has.")


FADE_STEPS = 8


def preloaded(name: str):
    """The environment that preloads library `name` (ld's short name), or None."""
    path = ctypes.util.find_library(name)
    return {"LD_PRELOAD": path} if path else None


# Each arm's environment for the child process (None: not available here).
ARMS = {
    "glibc": lambda: {},
    "glibc_one_arena": lambda: {"GLIBC_TUNABLES": tunables(**KEPT)},
    "jemalloc": lambda: preloaded("jemalloc"),
    "tcmalloc": lambda: preloaded("tcmalloc_minimal") or preloaded("tcmalloc"),
}


def step_clock():
    """A Keras callback whose `rows` get the clock, page faults and CPU times at every
    step's end."""
    import keras

    class StepClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.rows = []

        def on_train_batch_end(self, batch, logs=None):
            usage = resource.getrusage(resource.RUSAGE_SELF)
            self.rows.append((time.perf_counter(), usage.ru_minflt, usage.ru_utime,
                              usage.ru_stime))
    return StepClock()


def steady_state(rows) -> dict:
    """Per step over `rows` (step_clock's, in order): median seconds, mean faults and CPU."""
    n = len(rows) - 1
    return {"median_s": statistics.median(b[0] - a[0] for a, b in zip(rows, rows[1:])),
            "page_faults": (rows[-1][1] - rows[0][1]) / n,
            "user_s": (rows[-1][2] - rows[0][2]) / n,
            "kernel_s": (rows[-1][3] - rows[0][3]) / n,
            "steps": n}


def train_once(arm: str) -> dict:
    """One short run under this process's allocator; its steady state and totals."""
    start = time.perf_counter()
    import numpy as np

    from mel_tf.config import LoopOptions, TrainConfig, preset
    from mel_tf.training.data import ImageSet, LoadReport
    from mel_tf.training.loop import train

    rng = np.random.default_rng(0)
    size = (F.resolution, F.resolution, 3)
    images = ImageSet([rng.integers(0, 256, size, dtype=np.uint8) for _ in range(F.icons)],
                      LoadReport("random", F.icons))
    net = preset("seed", F.resolution, width=F.width)
    train_cfg = TrainConfig(fade_images=FADE_STEPS * BATCH, stable_images=F.steps * BATCH,
                            batch_size=BATCH)
    options = LoopOptions(progress=False, sample_every_images=0, checkpoint_every_images=0,
                          metrics_images=0)
    clock = step_clock()
    train(net, train_cfg, images, os.path.join(F.logdir, f"{arm}_{os.getpid()}"),
          options=options, callbacks=[clock])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"arm": arm, "preload": os.environ.get("LD_PRELOAD"),
            "tunables": os.environ.get("GLIBC_TUNABLES"),
            "steady": steady_state(clock.rows[-(F.steps - F.skip):]),
            "process": {"wall_s": time.perf_counter() - start, "user_s": usage.ru_utime,
                        "kernel_s": usage.ru_stime, "page_faults": usage.ru_minflt,
                        "peak_rss_mb": usage.ru_maxrss / 1024}}


def summary(runs, arms) -> dict:
    """Per arm: every process's figures and the median ratio to glibc's step time."""
    out = {}
    for arm in arms:
        mine = [r for r in runs if r["arm"] == arm]
        out[arm] = {"runs": mine}
        if "glibc" in arms:
            out[arm]["step_over_glibc"] = median_ratio(
                [r["steady"]["median_s"] for r in mine],
                [r["steady"]["median_s"] for r in runs if r["arm"] == "glibc"])
    return out


def main(argv):
    del argv
    if F.arm is not None:
        print_result(train_once(F.arm))
        return 0
    if F.skip >= F.steps - 1:
        raise SystemExit("allocator_ab: --skip must leave at least two steps of --steps")
    envs = {name: ARMS[name]() for name in (F.arms or ARMS)}
    arms = [name for name, env in envs.items() if env is not None]
    passthrough = forwarded_flags(("--out", "--rounds", "--arms"))
    runs = []
    for r in range(F.rounds):
        for arm in (arms if r % 2 == 0 else arms[::-1]):
            runs.append(child_result("benchmarks.allocator_ab", [f"--arm={arm}"] + passthrough,
                                     f"arm {arm}", envs[arm]))
    emit_json(result_header("benchmarks.allocator_ab", resolution=F.resolution, width=F.width,
                            batch_size=BATCH, steps=F.steps, skip=F.skip, rounds=F.rounds,
                            missing=[n for n, env in envs.items() if env is None],
                            machine=machine_info(), arms=summary(runs, arms)), F.out)
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
