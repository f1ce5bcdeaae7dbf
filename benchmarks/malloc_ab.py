"""mel_tf's training step with freed memory kept (benchmarks.memory.keep_freed_memory:
large buffers from one heap, reused) against glibc's default (large buffers mapped and
unmapped at every step).

    python -m benchmarks.malloc_ab --resolutions=64,128,256 --widths=0.5,1.0 --out=FILE.json

The same compiled step is timed under both settings in alternating rounds in one
process per resolution (seed preset, batch 8, random data, the fade at a = 0.5); each
round sets the allocator, runs one untimed step so that the heap settles, then times
--per_round steps. The "default" arm is glibc's default in its end state
(memory.default_allocator); the first steps, before any setting, are recorded apart
("untouched") to show that the two agree. Besides seconds: the page faults and the process's
user and kernel CPU seconds per step. The ratio is the median of the per-round ratios
kept / default (below 1: keeping is faster).
"""

from __future__ import annotations

import resource
import time

from absl import app, flags

from benchmarks.machine import (emit_json, machine_info, median_ratio, per_resolution,
                                result_header, seconds_summary, tensorflow_threads)
from benchmarks.memory import default_allocator, glibc, keep_freed_memory
from benchmarks.steps import BATCH, mel_tf_step

flags.DEFINE_string("resolutions", "128,256", "Stage resolutions to time.")
flags.DEFINE_list("widths", ["0.5", "1.0"], "Width multipliers.")
flags.DEFINE_integer("threads", 2, "TensorFlow's intra- and inter-op threads.")
flags.DEFINE_integer("rounds", 6, "Alternating timed rounds.")
flags.DEFINE_integer("per_round", 2, "Timed steps of each setting per round.")
flags.DEFINE_string("out", None, "Write the JSON here (always printed).")
flags.DEFINE_integer("one", None, "Internal: time one resolution in this process.")
F = flags.FLAGS

SETTINGS = {"default": default_allocator, "kept": keep_freed_memory}


def measured(step, steps: int) -> dict:
    """Per step: wall seconds, page faults, user and kernel CPU seconds."""
    before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - t0) / steps
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": seconds,
            "page_faults": (after.ru_minflt - before.ru_minflt) / steps,
            "user_s": (after.ru_utime - before.ru_utime) / steps,
            "kernel_s": (after.ru_stime - before.ru_stime) / steps}


def time_one(resolution: int) -> dict:
    """Both settings at every width, one process; the untouched steps come first."""
    if glibc() is None:
        raise SystemExit("malloc_ab: needs Linux with glibc")
    tensorflow_threads(F.threads)
    steps, result = {}, {"resolution": resolution}
    for width in F.widths:
        steps[width], net = mel_tf_step(resolution, float(width))
        for _ in range(3):
            steps[width]()                      # compiled and warm
        result[f"w{width}"] = {"g_block_channels": net.g_block_channels(resolution)}
    for width, step in steps.items():
        result[f"w{width}"]["untouched"] = measured(step, F.per_round)
    runs = {(name, width): [] for name in SETTINGS for width in F.widths}
    for r in range(F.rounds):
        for name in (list(SETTINGS) if r % 2 == 0 else list(SETTINGS)[::-1]):
            if not SETTINGS[name]():
                raise RuntimeError("glibc refused the allocator setting")
            for width, step in steps.items():
                step()                          # the heap settles
                runs[name, width].append(measured(step, F.per_round))
    for (name, width), rows in runs.items():
        result[f"w{width}"][name] = dict(
            seconds_summary([row["seconds"] for row in rows]),
            **{k: sum(row[k] for row in rows) / len(rows)
               for k in ("page_faults", "user_s", "kernel_s")})
    for width in F.widths:
        result[f"w{width}"]["kept_over_default"] = median_ratio(
            *([row["seconds"] for row in runs[name, width]] for name in ("kept", "default")))
    return result


def main(argv):
    del argv
    rows = per_resolution("benchmarks.malloc_ab", F.one, F.resolutions, time_one)
    if rows is not None:
        emit_json(result_header("benchmarks.malloc_ab", threads=F.threads, batch_size=BATCH,
                                rounds=F.rounds, per_round=F.per_round,
                                machine=machine_info(), results=rows), F.out)
    return 0


if __name__ == "__main__":
    app.run(main)
