"""Time per-icon generation of every exported format.

    python -m benchmarks.generate_bench --out=bench.json

Builds a run directory holding an untrained generator (the seed preset at
256x256, full width by default: the weights' values do not change the time),
exports it with every option, and times batch-1 generation for the Keras
generator, the SavedModel and each .tflite file with 1 and 2 threads. Each
(format, threads) pair runs in its own process, because TensorFlow fixes its
thread pools when it starts. The time is the median of --reps calls after
--warmup calls; the minimum is kept too, as the machine may be shared.

Output JSON: {"date", "machine", "model", "target_ms_per_icon", "results":
[{"format", "threads", "ms_per_icon", "ms_min", "bytes"}, ...], "export",
"vs_source"}.

vs_source (when PyTorch is installed; `pip install torch==2.13.0`): the
target is stated against the source's generator, 9.9 ms with two threads on
another, faster 2-core machine (AVX-512), and timings taken minutes apart
here drift by 10-40% with the shared host. So the float32 .tflite (one
LiteRT thread) and the PyTorch port of the source's
generator (research/source_torch_bench.py, two threads, eval mode, batch 1)
are timed in turns (`run_pair_worker`); the median of the per-turn ratios is
compared with 5 / 9.9.
"""

import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

from benchmarks.machine import finished_untrained_run, machine_info, timed

flags.DEFINE_string("out", None, "JSON file for the results.")
flags.DEFINE_string("preset", "seed", "Network preset.")
flags.DEFINE_integer("resolution", 256, "Icon resolution.")
flags.DEFINE_float("width", 1.0, "Channel width multiplier.")
flags.DEFINE_list("threads", ["1", "2"], "Thread counts to time.")
flags.DEFINE_integer("reps", 30, "Timed calls per measurement.")
flags.DEFINE_integer("warmup", 5, "Untimed calls first.")
flags.DEFINE_string("work_dir", None, "Keep the run and export here (default: a temp dir).")
# Internal: one measurement in a fresh process.
flags.DEFINE_bool("vs_source", True, "Also time the source's PyTorch generator side by "
                  "side with the float32 .tflite (skipped without torch).")
flags.DEFINE_integer("pair_rounds", 100, "Alternating bursts of each for vs_source.")
flags.DEFINE_bool("tune_malloc", True, "vs_source workers keep freed memory mapped (glibc "
                  "mmap and trim thresholds 256 MiB) instead of faulting it in on every call.")
flags.DEFINE_string("worker_model", None, "(internal) time this model and print JSON.")
flags.DEFINE_enum("worker_serve", None, ["tflite", "source"],
                  "(internal) serve bursts of calls of this generator for vs_source.")
flags.DEFINE_integer("worker_threads", 1, "(internal) threads of the measurement.")
FLAGS = flags.FLAGS

TARGET_MS = 5.0
# The source's generator on that faster machine (two threads): the target
# is this fraction of it.
SOURCE_REFERENCE_MS = 9.9
PAIR_BURST = 10          # calls per turn of a vs_source worker (the burst's median counts)
PAIR_PREFIX = "PAIR "    # marks a vs_source worker's replies on its stdout


def main(argv):
    del argv
    if FLAGS.worker_model and not FLAGS.worker_serve:
        print(json.dumps(measure(FLAGS.worker_model, FLAGS.worker_threads, FLAGS.reps,
                                 FLAGS.warmup)))
        return
    if FLAGS.worker_serve:
        serve(FLAGS.worker_serve, FLAGS.worker_model, FLAGS.worker_threads, FLAGS.warmup)
        return
    if not FLAGS.out:
        raise app.UsageError("--out is required")
    if FLAGS.work_dir:
        report = measure_all(FLAGS.work_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="generate_bench-") as work:
            report = measure_all(work)
    with open(FLAGS.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {FLAGS.out}")


def measure_all(work):
    """Exports into `work`, times every format, returns the report."""
    load_before = os.getloadavg()
    run, export_dir, model_info = build_and_export(work, FLAGS.preset, FLAGS.resolution,
                                                   FLAGS.width)
    with open(os.path.join(export_dir, "generator.json")) as f:
        tflite_summary = json.load(f)
    formats = [("keras", run, _checkpoint_bytes(run)),
               ("saved_model", os.path.join(export_dir, "saved_model"),
                _tree_bytes(os.path.join(export_dir, "saved_model")))]
    for stem, name in (("generator", "tflite_float32"), ("generator_float16", "tflite_float16"),
                       ("generator_int8", "tflite_int8")):
        path = os.path.join(export_dir, stem + ".tflite")
        formats.append((name, path, os.path.getsize(path)))
    results = []
    for name, path, size in formats:
        for threads in map(int, FLAGS.threads):
            timing = run_worker(path, threads)
            results.append({"format": name, "threads": threads,
                            "ms_per_icon": round(timing["median_ms"], 3),
                            "ms_min": round(timing["min_ms"], 3), "bytes": size})
            print(f"{name:15s} threads={threads}  {timing['median_ms']:8.2f} ms/icon "
                  f"(min {timing['min_ms']:.2f})  {size / 1e6:7.2f} MB", flush=True)
    vs_source = None
    if FLAGS.vs_source:
        vs_source = run_pair_worker(os.path.join(export_dir, "generator.tflite"))
        if vs_source:
            print(f"side by side: tflite float32 1 thread {vs_source['tflite_ms']:.2f} ms, "
                  f"source PyTorch 2 threads {vs_source['source_ms']:.2f} ms, paired ratio "
                  f"{vs_source['paired_ratio']:.3f} (target {vs_source['target_ratio']:.3f})",
                  flush=True)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(("tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert"), load_before),
        "model": model_info,
        "batch_size": 1, "reps": FLAGS.reps, "warmup": FLAGS.warmup,
        "target_ms_per_icon": {"format": "tflite_float32", "threads": 1, "ms": TARGET_MS},
        "results": results,
        "export": {"psnr_db_vs_float32": _psnrs(export_dir),
                   "exported_at": tflite_summary["exported_at"]},
        "vs_source": vs_source,
    }


def build_and_export(work, preset_name, resolution, width):
    """A finished run of an untrained generator, and its export with every option."""
    from mel_tf.deploy.export import export_generator

    run = os.path.join(work, "run")
    net_cfg = finished_untrained_run(run, preset_name, resolution, width)
    export_dir = os.path.join(work, "export")
    export_generator(run, export_dir, tflite=True, quantize="none,float16,int8",
                     overwrite=True, dataset_credit="untrained (benchmark)", log=print)
    info = {"preset": preset_name, "resolution": resolution, "width": width,
            "latent_dim": net_cfg.latent_dim, "weights": "untrained (random)"}
    return run, export_dir, info


def run_worker(path, threads):
    """One measurement in a fresh Python process (TensorFlow's threads are per process)."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.generate_bench", f"--worker_model={path}",
         f"--worker_threads={threads}", f"--reps={FLAGS.reps}", f"--warmup={FLAGS.warmup}"],
        capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"worker for {path} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def generator_call(path, threads):
    """A no-argument function making one icon (batch 1) with the exported model at `path`."""
    if not path.endswith(".tflite"):
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    from mel_tf.deploy.seeds import latents_for_seed
    from mel_tf.deploy.serving import load_model
    model = load_model(path, num_threads=threads)
    z = latents_for_seed(0, 1, model.latent_dim)
    return lambda: model(z)


def measure(path, threads, reps, warmup):
    """Median and minimum milliseconds of a batch-1 call."""
    call = generator_call(path, threads)
    for _ in range(warmup):
        call()
    times = sorted(timed(call, reps))
    return {"median_ms": 1000 * times[len(times) // 2], "min_ms": 1000 * times[0]}


def run_pair_worker(path):
    """The vs_source measurement; None (with a note) without PyTorch.

    Worker processes, one serving the float32 .tflite (one LiteRT thread), the
    others the source's generator (PyTorch, two threads and one), take turns: a
    burst of calls from each in turn, --pair_rounds times. Only one runs at a
    time, so they do not share the CPU, and the bursts of a round are a few
    tenths of a second apart, so the host's drift hits them alike.
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        print("vs_source skipped: PyTorch is not installed (pip install torch==2.13.0)")
        return None
    import numpy as np
    kinds = {"tflite": ("tflite", 1), "source": ("source", 2), "source_1_thread": ("source", 1)}
    # glibc's malloc otherwise maps and unmaps PyTorch's large intermediate
    # tensors afresh on every call, and the page faults slow the source's
    # generator unless something large had been freed first (--notune_malloc
    # measures it without). LiteRT allocates its arena once.
    env = dict(os.environ)
    if FLAGS.tune_malloc:
        env.update(MALLOC_MMAP_THRESHOLD_=str(1 << 28), MALLOC_TRIM_THRESHOLD_=str(1 << 28))
    workers = {name: subprocess.Popen(
        [sys.executable, "-m", "benchmarks.generate_bench", f"--worker_serve={kind}",
         f"--worker_model={path}", f"--worker_threads={threads}", f"--warmup={FLAGS.warmup}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for name, (kind, threads) in kinds.items()}
    times = {name: [] for name in workers}
    try:
        for name, worker in workers.items():
            _worker_reply(worker)                  # loaded and warmed up
        for _ in range(FLAGS.pair_rounds):
            for name, worker in workers.items():
                worker.stdin.write(f"{PAIR_BURST}\n")
                worker.stdin.flush()
                times[name].append(float(np.median(_worker_reply(worker))))
    finally:
        for worker in workers.values():
            worker.stdin.close()
            worker.wait()
    ours, theirs = np.array(times["tflite"]), np.array(times["source"])
    theirs_1 = np.array(times["source_1_thread"])
    return {"tflite_threads": 1, "source_threads": 2, "rounds": FLAGS.pair_rounds,
            "tune_malloc": FLAGS.tune_malloc,
            "calls_per_burst": PAIR_BURST,
            "tflite_ms": round(1e3 * float(np.median(ours)), 3),
            "source_ms": round(1e3 * float(np.median(theirs)), 3),
            "paired_ratio": round(float(np.median(ours / theirs)), 4),
            "paired_ratio_p10_p90": [round(float(np.percentile(ours / theirs, q)), 4)
                                     for q in (10, 90)],
            # A two-thread job suffers more from a busy host core than a
            # one-thread job, so the source on one thread is reported too.
            "source_1_thread_ms": round(1e3 * float(np.median(theirs_1)), 3),
            "paired_ratio_vs_source_1_thread": round(float(np.median(ours / theirs_1)), 4),
            "target_ratio": round(TARGET_MS / SOURCE_REFERENCE_MS, 4),
            "source_reference_ms": SOURCE_REFERENCE_MS,
            "target_ms_scaled_to_this_machine": round(
                TARGET_MS / SOURCE_REFERENCE_MS * 1e3 * float(np.median(theirs)), 3)}


def _worker_reply(worker):
    for line in worker.stdout:
        if line.startswith(PAIR_PREFIX):
            return json.loads(line[len(PAIR_PREFIX):])
    raise RuntimeError("a vs_source worker ended early (see its stderr above)")


def serve(kind, path, threads, warmup):
    """Worker: loads one generator, then times a burst of calls per line read."""
    if kind == "source":
        import torch

        from research.source_torch_bench import LATENT_DIM, build
        torch.set_num_threads(threads)
        torch.set_grad_enabled(False)
        torch.manual_seed(0)
        source = build(torch)[0](256).eval()
        z = torch.randn(1, LATENT_DIM)

        def call():
            source(z, 1.0)
    else:
        call = generator_call(path, threads)
    for _ in range(warmup):
        call()
    print(PAIR_PREFIX + "[]", flush=True)
    for line in sys.stdin:
        times = []
        for _ in range(int(line)):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        print(PAIR_PREFIX + json.dumps(times), flush=True)


def _psnrs(export_dir):
    out = {}
    for stem in ("generator_float16", "generator_int8"):
        with open(os.path.join(export_dir, stem + ".json")) as f:
            out[stem] = json.load(f)["psnr_db_vs_float32"]
    return out


def _checkpoint_bytes(run):
    from mel_tf.training import rundir
    prefix = rundir.latest_checkpoint(run)
    folder = os.path.dirname(prefix)
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)
               if f.startswith(os.path.basename(prefix) + "."))


def _tree_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


if __name__ == "__main__":
    app.run(main)
