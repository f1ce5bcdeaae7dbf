"""The machine's limits for a roofline, and a reader that puts a profile on it.

    python -m benchmarks.roofline --threads=2 --out=ROOFLINE.json
    python -m benchmarks.roofline --report=PROFILE.json --limits=ROOFLINE.json

Measured on the machine at hand, on --threads threads:
* float32 peak: a large square matmul in TensorFlow (its own kernel and XLA's), and
  numpy's; the peak is the best TensorFlow rate (the one training can reach).
* memory bandwidth: stream-like copy (2 x 4 bytes per element) and triad
  (a = b + s * c, 3 x 4 bytes) over arrays far larger than the L3 cache, each thread
  on its slice (numpy releases the GIL), best of --stream_reps; the bandwidth is the
  better of the two. The same over arrays that fit in L3 gives a cache bandwidth: most
  activations at 128-256 px are a few MB, so the DRAM roof is the pessimistic one.
* bfloat16: whether the CPU has native bf16 (avx512_bf16, amx_bf16 in /proc/cpuinfo),
  and a bf16 matmul when it does (or with --bf16=always).

The report (`--report`) reads benchmarks.profile_step's JSON and prints, per stage, a
markdown table: each class's time and share of the measured step, GFLOP, GB moved,
achieved GFLOP/s and GB/s, arithmetic intensity, the roofline's bound for that
intensity, min(peak, intensity x bandwidth), and the floor time it implies; then the
step's floor (the sum of the classes' floors) against its measured time.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import os
import statistics
import sys

from absl import app, flags

from benchmarks.machine import emit_json, machine_info, tensorflow_threads, timed

F = flags.FLAGS
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
STREAM_BLOCK = 1 << 15     # floats per triad block: its temporary stays in L1/L2


def define_flags():
    """The command line's flags, defined only when this module is the program: the
    tests import benchmarks.profile_step and benchmarks.roofline together, and
    absl refuses a flag name (--threads, --out) defined by two modules."""
    flags.DEFINE_integer("threads", 2, "Threads for TensorFlow and the stream kernels.")
    flags.DEFINE_integer("matmul_n", 2048, "Side of the square matrices.")
    flags.DEFINE_integer("matmul_reps", 10, "Timed matmuls (the best is the rate).")
    flags.DEFINE_bool("numpy", True, "Also time numpy's matmul (its own threads).")
    flags.DEFINE_enum("bf16", "auto", ["auto", "always", "never"],
                      "bfloat16 matmul: when the CPU has native bf16 (auto), always, never.")
    flags.DEFINE_integer("stream_mib", 0, "MiB per stream array (0: 8x the L3 cache, >= 256).")
    flags.DEFINE_integer("cache_mib", 0, "MiB per array of the in-cache stream (0: L3 / 8).")
    flags.DEFINE_integer("stream_reps", 10, "Stream repetitions (the best is the rate).")
    flags.DEFINE_string("out", None, "Write the JSON here (always printed).")
    flags.DEFINE_string("report", None, "A profile_step JSON to put on the roofline.")
    flags.DEFINE_string("limits", None, "This module's JSON (the machine's limits) for --report.")
    flags.DEFINE_enum("roof", "dram", ["dram", "cache"], "Which bandwidth the report's roof uses.")


# ---- what the CPU is ------------------------------------------------------------------------

def cpu_flags(path: str = "/proc/cpuinfo") -> set:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def isa(flags_found: set) -> dict:
    """The instruction sets that matter here, and whether bf16 is native."""
    found = {name: name in flags_found for name in ISA_FLAGS}
    found["native_bf16"] = any(found[f] for f in BF16_FLAGS)
    return found


def l3_bytes(path: str = "/sys/devices/system/cpu/cpu0/cache/index3/size"):
    """The L3 cache's size ("32768K" in sysfs), None where unknown."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


def best_and_median(call, reps: int):
    """(best, median) seconds of `reps` calls, after one untimed call."""
    call()
    times = timed(call, reps)
    return min(times), statistics.median(times)


# ---- compute ---------------------------------------------------------------------------------

def tf_matmul(n: int, dtype: str, xla: bool, reps: int) -> dict:
    """GFLOP/s of an n x n matmul in TensorFlow (2 n^3 FLOPs), best of `reps`."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal([n, n]), dtype)
    b = tf.cast(tf.random.normal([n, n]), dtype)
    fn = tf.function(lambda x, y: tf.matmul(x, y), jit_compile=xla, autograph=False)
    # Eager execution is synchronous: the call returns when the product is done.
    best, median = best_and_median(lambda: fn(a, b), reps)
    return rate(n, best, median)


def numpy_matmul(n: int, reps: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    best, median = best_and_median(lambda: a @ b, reps)
    return rate(n, best, median)


def rate(n: int, best: float, median: float) -> dict:
    flops = 2.0 * n ** 3
    return {"n": n, "best_s": best, "median_s": median, "gflops": flops / best / 1e9,
            "median_gflops": flops / median / 1e9}


def matmuls(n: int, reps: int, bf16: bool, with_numpy: bool) -> dict:
    found = {"tf_float32": tf_matmul(n, "float32", False, reps),
             "xla_float32": tf_matmul(n, "float32", True, reps)}
    if with_numpy:
        found["numpy_float32"] = numpy_matmul(n, reps)
    if bf16:
        found["tf_bfloat16"] = tf_matmul(n, "bfloat16", False, reps)
        found["xla_bfloat16"] = tf_matmul(n, "bfloat16", True, reps)
    return found


# ---- memory ----------------------------------------------------------------------------------

def slices(n: int, parts: int) -> list:
    step = -(-n // parts)
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def copy_part(dst, src, part):
    dst[part] = src[part]


def triad_part(a, b, c, scalar, part):
    """a = b + scalar * c over one slice, in blocks whose temporary stays in cache
    (numpy would otherwise write and read back a full-size temporary)."""
    import numpy as np

    tmp = np.empty(STREAM_BLOCK, dtype=a.dtype)
    for start in range(part.start, part.stop, STREAM_BLOCK):
        stop = min(start + STREAM_BLOCK, part.stop)
        t = tmp[:stop - start]
        np.multiply(c[start:stop], scalar, out=t)
        np.add(t, b[start:stop], out=a[start:stop])


def stream(n: int, threads: int, reps: int) -> dict:
    """Copy and triad GB/s over float32 arrays of n elements, `threads` threads."""
    import numpy as np

    a, b, c = (np.full(n, v, dtype=np.float32) for v in (1.0, 2.0, 0.5))
    parts = slices(n, threads)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        def each(fn, *args):
            list(pool.map(lambda p: fn(*args, p), parts))
        copy, copy_median = best_and_median(lambda: each(copy_part, a, b), reps)
        triad, triad_median = best_and_median(lambda: each(triad_part, a, b, c, 3.0), reps)
    size = 4.0 * n
    return {"mib_per_array": size / 2**20, "threads": threads,
            "copy_gbs": 2 * size / copy / 1e9, "copy_median_gbs": 2 * size / copy_median / 1e9,
            "triad_gbs": 3 * size / triad / 1e9,
            "triad_median_gbs": 3 * size / triad_median / 1e9}


def stream_sizes(stream_mib: int, cache_mib: int):
    """(elements far beyond L3, elements well inside it) per array."""
    l3 = l3_bytes() or 32 << 20
    big = stream_mib << 20 if stream_mib else max(8 * l3, 256 << 20)
    small = cache_mib << 20 if cache_mib else l3 // 8
    return big // 4, small // 4


def measure() -> dict:
    """The limits JSON: machine, instruction sets, matmul rates, stream bandwidths."""
    tensorflow_threads(F.threads)
    found = isa(cpu_flags())
    bf16 = F.bf16 == "always" or (F.bf16 == "auto" and found["native_bf16"])
    load = os.getloadavg()
    rates = matmuls(F.matmul_n, F.matmul_reps, bf16, F.numpy)
    big, small = stream_sizes(F.stream_mib, F.cache_mib)
    dram, cache = (stream(n, F.threads, F.stream_reps) for n in (big, small))
    return {"benchmark": "roofline", "date": datetime.date.today().isoformat(),
            "command": " ".join(["python -m benchmarks.roofline"] + sys.argv[1:]),
            "threads": F.threads, "machine": machine_info(load_before=load),
            "isa": found, "l3_bytes": l3_bytes(), "matmul": rates,
            "stream_dram": dram, "stream_cache": cache,
            "peak_gflops": max(rates[k]["gflops"] for k in ("tf_float32", "xla_float32")),
            "bandwidth_gbs": max(dram["copy_gbs"], dram["triad_gbs"]),
            "cache_bandwidth_gbs": max(cache["copy_gbs"], cache["triad_gbs"])}


# ---- the report --------------------------------------------------------------------------------

def bound_gflops(flops: float, nbytes: float, peak_gflops: float, bandwidth_gbs: float) -> float:
    """The roofline at a class's arithmetic intensity: min(peak, intensity x bandwidth)."""
    if nbytes <= 0:
        return peak_gflops
    return min(peak_gflops, flops / nbytes * bandwidth_gbs)


def floor_seconds(flops: float, nbytes: float, peak_gflops: float, bandwidth_gbs: float) -> float:
    """The least time the roofline allows: FLOPs at the bound, i.e. the longer of
    FLOPs at peak and bytes at the bandwidth (bytes alone where there are no FLOPs)."""
    if flops <= 0:
        return nbytes / (bandwidth_gbs * 1e9)
    return flops / (bound_gflops(flops, nbytes, peak_gflops, bandwidth_gbs) * 1e9)


def class_row(name: str, values: dict, measured: float, peak: float, bandwidth: float) -> dict:
    """One class on the roofline (None where its time was not measured)."""
    t, flops, nbytes = values.get("seconds"), values["flops"], values["bytes"]
    timed = t is not None and t > 0
    share = t / measured if t is not None and measured else None
    return {"class": name, "seconds": t, "share": share,
            "gflop": flops / 1e9, "gb": nbytes / 1e9,
            "gflops": flops / t / 1e9 if timed else None,
            "gbs": nbytes / t / 1e9 if timed else None,
            "intensity": flops / nbytes if nbytes else None,
            "bound_gflops": bound_gflops(flops, nbytes, peak, bandwidth) if flops else None,
            "floor_seconds": floor_seconds(flops, nbytes, peak, bandwidth)}


def cell(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def stage_classes(result: dict):
    """(classes, measured step seconds or None, unattributed seconds or None) of a
    stage: profile_step's summary, or part (b)'s classes alone when (a) did not run."""
    if "step" in result:
        step = result["step"]
        return step["classes"], step["measured_step_seconds"], step["unattributed_seconds"]
    return result["b"]["classes"], None, None


def class_table(result: dict, peak: float, bandwidth: float) -> list:
    """Markdown lines: the classes of one stage on the roofline, the unattributed
    rest, the step, and the step's floor against its measured time."""
    classes, measured, rest = stage_classes(result)
    rows = [class_row(c, v, measured, peak, bandwidth) for c, v in classes.items()]
    lines = ["| class | s | share | GFLOP | GB | GFLOP/s | GB/s | FLOP/B | bound GFLOP/s "
             "| floor s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['class']} | {cell(r['seconds'], '.4f')} | {cell(r['share'], '.1%')} "
                     f"| {r['gflop']:.3f} | {r['gb']:.3f} | {cell(r['gflops'], '.1f')} "
                     f"| {cell(r['gbs'], '.1f')} | {cell(r['intensity'], '.2f')} "
                     f"| {cell(r['bound_gflops'], '.1f')} | {r['floor_seconds']:.4f} |")
    flops = sum(r["gflop"] for r in rows)
    floor = sum(r["floor_seconds"] for r in rows)
    if measured is None:
        return lines + ["", f"Step floor {floor:.4f} s (the sum of the class floors); no "
                        "measured step without part (a)."]
    lines.append(f"| unattributed | {rest:.4f} | {rest / measured:.1%} | | | | | | | |")
    lines.append(f"| **step (measured)** | {measured:.4f} | 100% | {flops:.3f} "
                 f"| {sum(r['gb'] for r in rows):.3f} | {flops / measured:.1f} | | | "
                 f"| {floor:.4f} |")
    return lines + ["", f"Step floor {floor:.4f} s (the sum of the class floors) against "
                    f"{measured:.4f} s measured: {measured / floor:.1f}x the floor."]


def subgraph_table(result: dict) -> list:
    """Markdown lines: part (a)'s sub-graphs, and (b)'s sums of micro-benchmarks."""
    seconds = result["a"]["seconds"]
    fed = seconds["full_step_fed"]
    estimate = result.get("b", {}).get("subgraph_estimates", {})
    lines = ["| sub-graph (a) | s | share of fed step | sum of micro-benchmarks (b) |",
             "|---|---|---|---|"]
    for name, t in seconds.items():
        lines.append(f"| {name} | {t:.4f} | {t / fed:.1%} | {cell(estimate.get(name), '.4f')} |")
    return lines


def profiler_table(result: dict) -> list:
    """Markdown lines: part (c)'s thunk CPU time per class."""
    c = result["c"]
    total = c["thunk_cpu_seconds"]
    lines = [f"Profiler (c): thunks {total:.4f} CPU s per step, executable "
             f"{c['executable_wall_seconds']:.4f} s wall, names matched "
             f"{c['matched_fraction']:.0%}.", "", "| class | CPU s | share |", "|---|---|---|"]
    for name, t in sorted(c["classes_cpu_seconds"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {t:.4f} | {t / total:.1%} |")
    return lines


def roof(limits: dict, which: str):
    """(peak GFLOP/s, bandwidth GB/s) of the limits JSON, DRAM or cache bandwidth."""
    key = "bandwidth_gbs" if which == "dram" else "cache_bandwidth_gbs"
    return limits["peak_gflops"], limits[key]


def report(profile: dict, limits: dict, which: str = "dram") -> str:
    """The markdown report of a profile_step JSON on a roofline JSON's limits."""
    peak, bandwidth = roof(limits, which)
    lines = [f"Roof: {peak:.1f} GFLOP/s (TensorFlow float32 matmul), {bandwidth:.1f} GB/s "
             f"({which} stream), on {limits['machine']['cpu']} with {limits['threads']} "
             f"threads; the profile ran on {profile['machine']['cpu']} with "
             f"{profile['threads']}."]
    for result in profile["results"]:
        r = result["resolution"]
        phase = f"fading, a = {result['alpha']}" if result.get("fading", True) else "stable"
        lines += ["", f"### {r}x{r}, width {result['width']}, batch {result['batch_size']}, "
                      f"{phase}", ""]
        if "step" in result or "b" in result:
            lines += class_table(result, peak, bandwidth) + [""]
        if "a" in result:
            lines += subgraph_table(result) + [""]
        if "c" in result:
            lines += profiler_table(result)
    return "\n".join(lines)


def main(argv):
    del argv
    if F.report:
        if not F.limits:
            raise app.UsageError("--report needs --limits (this module's JSON)")
        with open(F.report) as f, open(F.limits) as g:
            print(report(json.load(f), json.load(g), F.roof))
        return 0
    emit_json(measure(), F.out)
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
