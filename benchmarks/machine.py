"""What machine a benchmark ran on, interleaved timing, and JSON output (shared by the benchmarks)."""

import contextlib
import datetime
import functools
import http.server
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time


def cpuinfo_field(name: str):
    """The value of the first `name` line of /proc/cpuinfo, or None where there is none."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return cpuinfo_field("model name") or platform.processor() or platform.machine()


# The vector features that decide which kernels run; the model name alone ("AMD EPYC")
# can be an AVX2-only machine or one with AVX-512 and native bfloat16.
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_flags() -> list:
    """The VECTOR_FLAGS that /proc/cpuinfo lists for this CPU."""
    present = set((cpuinfo_field("flags") or "").split())
    return [flag for flag in VECTOR_FLAGS if flag in present]


def package_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info(packages=("tensorflow-cpu", "tensorflow", "keras"), load_before=None) -> dict:
    info = {"platform": platform.platform(), "cpu": cpu_model(), "cpu_flags": cpu_flags(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "packages": {p: v for p in packages if (v := package_version(p))},
            "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    if load_before is not None:
        info["load_average_before"] = [round(x, 2) for x in load_before]
    return info


def result_header(module: str, **settings) -> dict:
    """The fields every benchmark's JSON starts with: what ran, when, the command."""
    return {"benchmark": module.rsplit(".", 1)[-1], "date": datetime.date.today().isoformat(),
            "command": " ".join([f"python -m {module}"] + sys.argv[1:]), **settings}


def emit_json(result: dict, out=None):
    """Prints the result as indented JSON and, given a path, writes it there too."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")


def timed(call, reps: int) -> list:
    """Seconds of each of `reps` calls of `call`, in order."""
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def interleaved(calls, rounds, per_round=1, warmup=0, before=None):
    """{name: [seconds, ...]}: each round times `per_round` calls of each function in
    turn, so that a shared machine's drift hits all of them alike; first `warmup`
    untimed calls of each. `before` ({name: function}) sets up a name's turn in each
    round, untimed, followed by one untimed call so that what it changed settles."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            if before and name in before:
                before[name]()
                call()
            for _ in range(per_round):
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    return times


def finished_untrained_run(run, preset_name, resolution, width):
    """A run directory as a finished run leaves it, holding an untrained (seeded)
    EMA generator: what the export and generation benchmarks time. Returns its
    NetworkConfig."""
    import keras

    from benchmarks.steps import timed_networks
    from mel_tf.training import rundir
    from mel_tf.config import TrainConfig
    from mel_tf.training.networks import Generator
    from mel_tf.training.schedule import schedule_for

    net_cfg = timed_networks(resolution, width, preset_name)
    train_cfg = TrainConfig()
    rundir.prepare(run, net_cfg, train_cfg)
    keras.utils.set_random_seed(0)
    generator = Generator(net_cfg, name="generator_ema")
    state = rundir.RunState()
    state.images_shown.assign(schedule_for(net_cfg, train_cfg).total_images)
    rundir.checkpoint_manager(run, generator_ema=generator, state=state).save()
    return net_cfg


RESULT_MARK = "RESULT "


def print_result(result: dict) -> None:
    """The line a per-resolution subprocess ends with (see `run_each`)."""
    print(RESULT_MARK + json.dumps(result), flush=True)


def per_resolution(module: str, one, resolutions: str, time_one):
    """A per-resolution benchmark's driver. In the child (`one` set: its --one flag)
    times that resolution, prints the result for the parent and returns None; in the
    parent runs each of the comma-separated `resolutions` in a fresh process of
    `module` (`run_each`) and returns their results."""
    if one is not None:
        print_result(time_one(one))
        return None
    return run_each(module, [int(x) for x in resolutions.split(",")])


def seconds_summary(seconds) -> dict:
    """The median and the fastest of a list of timings."""
    return {"median_s": statistics.median(seconds), "min_s": min(seconds)}


def median_ratio(numerators, denominators) -> float:
    """The median of the per-round ratios of two interleaved series of timings."""
    return statistics.median(a / b for a, b in zip(numerators, denominators))


def tensorflow_threads(threads: int) -> None:
    """TensorFlow with `threads` intra-op and inter-op threads (call before it runs)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def run_each(module: str, resolutions, drop=("--out", "--resolutions")) -> list:
    """For each resolution, `python -m <module> --one=R` with this process's other
    flags, in a fresh process (its memory and compiled state its own); returns the
    results the subprocesses printed with `print_result`."""
    passthrough = forwarded_flags(drop + ("--one",))
    return [child_result(module, [f"--one={r}"] + passthrough, f"at {r}") for r in resolutions]


def forwarded_flags(drop) -> list:
    """This process's command-line arguments except those starting with one of `drop`:
    what a parent passes on to the children it runs."""
    return [a for a in sys.argv[1:] if not a.startswith(tuple(drop))]


def child_result(module: str, args, what: str, env=None) -> dict:
    """Runs `python -m <module> ARGS` (with `env` added to this process's environment)
    and returns the result it printed with `print_result`; SystemExit with its error
    output if it failed."""
    proc = subprocess.run([sys.executable, "-m", module] + list(args), capture_output=True,
                          text=True, env={**os.environ, **(env or {})})
    lines = [l for l in proc.stdout.splitlines() if l.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{module} {what}: {proc.stderr[-3000:]}")
    result = json.loads(lines[-1][len(RESULT_MARK):])
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def chromium_path(given=None) -> str:
    """The Chromium binary: `given`, else chromium (or chromium-browser) on PATH."""
    path = given or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise SystemExit("Chromium not found: apt-get install chromium, or --chromium=PATH")
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def served(folder):
    """`folder` served on 127.0.0.1 at a free port from a thread; yields its URL."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=folder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
