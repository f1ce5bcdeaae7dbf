"""Time the page written by `export.py --web` in headless Chromium.

    python -m benchmarks.web_bench --out=benchmarks/results/web_bench_DATE.json

For each resolution, builds a finished run of an untrained generator (the seed
preset, full width by default: the weights' values do not change the time),
exports it with --web, serves the page on 127.0.0.1 and measures:

* first_icon_ms: navigation start to the first icon drawn (fetching the page,
  LiteRT.js and the model, compiling the WebAssembly and the model, one call),
  each load in a fresh browser context (empty cache); median of --loads;
* browser_ms_per_icon: one model call in the page (input tensor, run,
  read-back), median of --reps after --warmup calls and --warmup_s; latents_ms: the page's seed ->
  z for one icon (BigInt SplitMix64 and Box-Muller);
* python_ms_per_icon: the same .tflite file with Python's ai-edge-litert,
  one thread (generate_bench.py's worker, a fresh process), batch 1;
* paired: the page and a Python worker (generate_bench.py's --worker_serve,
  ai-edge-litert, one thread) take turns, --pair_burst calls each, --pair_rounds
  times, so that the shared host's drift hits both alike; the median of the
  per-round ratios (page / Python) is the comparison to quote;
* vs_python: the page's icons of seeds 0 .. --compare_seeds-1 against
  Python's ai-edge-litert on the same file (`mel_tf.deploy.generate --seed=s --num=1`):
  how many uint8 values differ, and by at most how many levels;
* download: the files the page fetched, in bytes as stored (what
  `python -m http.server` and hosts without compression send) and gzipped
  (level 6, what a host that compresses sends; the .tflite and .wasm dominate).

Needs what tests/test_web.py needs: Chromium, playwright, `npm ci`.
"""

import datetime
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

from benchmarks.machine import (chromium_path, emit_json, finished_untrained_run, machine_info,
                                served)

flags.DEFINE_string("out", None, "JSON file for the results.")
flags.DEFINE_string("preset", "seed", "Network preset.")
flags.DEFINE_list("resolutions", ["64", "256"], "Icon resolutions to export and time.")
flags.DEFINE_float("width", 1.0, "Channel width multiplier.")
flags.DEFINE_integer("reps", 30, "Timed calls per measurement.")
flags.DEFINE_integer("warmup", 5, "Untimed calls first.")
flags.DEFINE_float("warmup_s", 3.0, "Untimed calls in the browser for at least this long "
                   "(V8 replaces its baseline WebAssembly code with optimised code meanwhile).")
flags.DEFINE_integer("compare_seeds", 16, "Seeds whose icons are compared with Python's.")
flags.DEFINE_integer("pair_rounds", 30, "Turns of the paired browser / Python timing.")
flags.DEFINE_integer("pair_burst", 10, "Calls per turn of the paired timing.")
flags.DEFINE_integer("loads", 3, "Page loads timed (fresh browser context each).")
flags.DEFINE_string("chromium", None, "Chromium binary (default: chromium on PATH).")
flags.DEFINE_string("logdir", None, "Time this trained run's page instead (its own "
                    "resolution; --resolutions, --preset and --width are then ignored).")
flags.DEFINE_string("work_dir", None, "Keep the runs and exports here (default: a temp dir).")
FLAGS = flags.FLAGS

PAIR_PREFIX = "PAIR "    # generate_bench.py's worker marks its replies with this


def main(argv):
    del argv
    chromium = chromium_path(FLAGS.chromium)
    load_before = os.getloadavg()
    work = FLAGS.work_dir or tempfile.mkdtemp(prefix="web_bench-")
    results = []
    try:
        resolutions = [None] if FLAGS.logdir else map(int, FLAGS.resolutions)
        for resolution in resolutions:
            web_dir, model_info = export_page(work, resolution)
            model = os.path.join(web_dir, "generator_batch1.tflite")
            python = python_timing(model)
            browser = browser_timing(web_dir, chromium, python_icons(model), model)
            results.append(dict(model_info, **browser, python_ms_per_icon=python["median_ms"],
                                python_ms_min=python["min_ms"], python_threads=1))
            side = model_info["resolution"]
            print(f"{side}x{side}: paired browser / Python "
                  f"{browser['paired']['ratio']:.2f}x, first icon {browser['first_icon_ms']:.0f} ms, "
                  f"browser {browser['browser_ms_per_icon']:.2f} ms/icon, Python LiteRT "
                  f"{python['median_ms']:.2f} ms/icon, download "
                  f"{browser['download']['bytes'] / 1e6:.2f} MB raw / "
                  f"{browser['download']['gzip_bytes'] / 1e6:.2f} MB gzip", flush=True)
    finally:
        if not FLAGS.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": dict(machine_info(("tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert",
                                      "playwright"), load_before),
                        chromium=_chromium_version(chromium)),
        "reps": FLAGS.reps, "warmup": FLAGS.warmup, "warmup_s": FLAGS.warmup_s,
        "pair_rounds": FLAGS.pair_rounds, "pair_burst": FLAGS.pair_burst,
        "loads": FLAGS.loads,
        "results": results,
    }
    emit_json(report, FLAGS.out)


def export_page(work, resolution):
    """A finished run of an untrained generator at `resolution` (or --logdir's trained
    run), exported with web."""
    from mel_tf.deploy.export import export_generator
    from mel_tf.training.rundir import read_config

    run = FLAGS.logdir or os.path.join(work, f"run_{resolution}")
    if FLAGS.logdir:
        net_cfg, weights = read_config(run)[0], f"trained: {os.path.basename(run)}"
    else:
        net_cfg = finished_untrained_run(run, FLAGS.preset, resolution, FLAGS.width)
        weights = "untrained (random)"
    out = os.path.join(work, f"export_{resolution or 'trained'}")
    summary = export_generator(run, out, web=True, overwrite=True,
                               dataset_credit=None if FLAGS.logdir else "untrained (benchmark)",
                               log=print)
    return summary["web"]["path"], {
        "preset": net_cfg.preset, "resolution": summary["resolution"], "width": net_cfg.width,
        "latent_dim": net_cfg.latent_dim, "weights": weights,
        "model_bytes": summary["web"]["bytes"]}


def python_timing(path):
    """generate_bench.py's one-measurement worker: ai-edge-litert, one thread, batch 1."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.generate_bench", f"--worker_model={path}",
         "--worker_threads=1", f"--reps={FLAGS.reps}", f"--warmup={FLAGS.warmup}"],
        capture_output=True, text=True, check=True)
    timing = json.loads(result.stdout.strip().splitlines()[-1])
    return {k: round(v, 3) for k, v in timing.items()}


def python_icons(path, seeds=None):
    """{seed: uint8 icon} from Python's ai-edge-litert, as `mel_tf.deploy.generate --seed=s --num=1`."""
    from mel_tf.deploy.generate import generate_icons
    from mel_tf.deploy.serving import load_model
    model = load_model(path)
    seeds = range(FLAGS.compare_seeds) if seeds is None else seeds
    return {seed: generate_icons(model, seed, 1)[0] for seed in seeds}


def browser_timing(web_dir, chromium, expected, model):
    from playwright.sync_api import sync_playwright
    first_icon, timing, fetched = [], None, []
    with served(web_dir) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        for load in range(FLAGS.loads):
            context = browser.new_context()
            page = context.new_page()
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url)
            page.evaluate("() => window.melTfPage.ready")
            first_icon.append(page.evaluate("() => window.melTfPage.firstIconMs"))
            if load == 0:
                fetched = requests
                diffs = [_page_icon_diff(page, seed, icon) for seed, icon in expected.items()]
                vs_python = {"seeds": len(diffs), "values": sum(d.size for d in diffs),
                             "values_differing": sum(int((d > 0).sum()) for d in diffs),
                             "seeds_differing": sum(int(d.max() > 0) for d in diffs),
                             "max_abs_diff": max(int(d.max()) for d in diffs)}
                timing = page.evaluate(
                    "([n, w, ms]) => window.melTfPage.timeIcon(n, w, ms)",
                    [FLAGS.reps, FLAGS.warmup, 1000 * FLAGS.warmup_s])
                paired = paired_timing(page, model)
            context.close()
        browser.close()
    first_icon.sort()
    return {"first_icon_ms": round(first_icon[len(first_icon) // 2], 1),
            "first_icon_ms_all": [round(x, 1) for x in first_icon],
            "browser_ms_per_icon": round(timing["iconMs"], 3),
            "latents_ms": round(timing["latentsMs"], 3),
            "paired": paired,
            "vs_python": vs_python,
            "download": download_size(web_dir, url, fetched)}


def paired_timing(page, model):
    """Browser and Python LiteRT in turns: per-round medians and their ratio."""
    import numpy as np
    worker = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.generate_bench", "--worker_serve=tflite",
         f"--worker_model={model}", "--worker_threads=1", f"--warmup={FLAGS.warmup}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    browser_ms, python_ms = [], []
    try:
        _worker_reply(worker)                          # loaded and warmed up
        for _ in range(FLAGS.pair_rounds):
            browser_ms.append(page.evaluate("(n) => window.melTfPage.timeIcon(n, 0, 0)",
                                            FLAGS.pair_burst)["iconMs"])
            worker.stdin.write(f"{FLAGS.pair_burst}\n")
            worker.stdin.flush()
            python_ms.append(1e3 * float(np.median(_worker_reply(worker))))
    finally:
        worker.stdin.close()
        worker.wait()
    ratio = np.array(browser_ms) / np.array(python_ms)
    return {"rounds": FLAGS.pair_rounds, "calls_per_burst": FLAGS.pair_burst,
            "browser_ms": round(float(np.median(browser_ms)), 3),
            "python_ms": round(float(np.median(python_ms)), 3),
            "ratio": round(float(np.median(ratio)), 3),
            "ratio_p10_p90": [round(float(np.percentile(ratio, q)), 3) for q in (10, 90)]}


def _worker_reply(worker):
    """The next reply of a generate_bench.py --worker_serve process (its protocol)."""
    for line in worker.stdout:
        if line.startswith(PAIR_PREFIX):
            return json.loads(line[len(PAIR_PREFIX):])
    raise RuntimeError("the Python timing worker ended early (see its stderr above)")


def _page_icon_diff(page, seed, expected):
    """|page - expected| per uint8 value of seed's icon, drawn by the page."""
    import numpy as np
    page.fill("#seed", str(seed))
    page.click("#seed-form button[type=submit]")
    page.evaluate("() => window.melTfPage.whenIdle()")
    size, data = page.evaluate("""() => { const c = document.getElementById('icon');
        return [c.width, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; }""")
    icon = np.array(data, np.uint8).reshape(size, size, 4)[..., :3]
    return np.abs(icon.astype(int) - expected.astype(int))


def download_size(web_dir, url, requests):
    """Bytes of the files the page fetched: as stored and gzipped (level 6)."""
    files = []
    for request in dict.fromkeys(requests):          # in order, once each
        if not request.startswith(url):
            raise RuntimeError(f"the page fetched {request}, outside {url}")
        rel = urllib.parse.urlparse(request).path.lstrip("/") or "index.html"
        with open(os.path.join(web_dir, rel), "rb") as f:
            data = f.read()
        files.append({"file": rel, "bytes": len(data),
                      "gzip_bytes": len(gzip.compress(data, compresslevel=6))})
    return {"bytes": sum(f["bytes"] for f in files),
            "gzip_bytes": sum(f["gzip_bytes"] for f in files), "files": files}


def _chromium_version(chromium):
    try:
        return subprocess.run([chromium, "--version"], capture_output=True, text=True,
                              timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    app.run(main)
