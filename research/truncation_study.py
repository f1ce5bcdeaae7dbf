"""What truncation and variation strength do to a trained generator's icons.

    python -m research.truncation_study --logdir=runs/faces256 --out=docs/controls/faces256
    python -m research.truncation_study --model=exports/faces/generator.tflite \
        --data_dir=data/faces --out=OUT

For each truncation t in --truncations (mel_tf.deploy.seeds.TRUNCATION; "off" is the
plain seed rule) the model makes --num_images icons from latents 0..N-1 of
--seed, scored with mel_tf.metrics.evaluate_images (multi-scale SWD, MS-SSIM of
the fake and the real set) against N real icons: the run's own data (its
dataset.json) or --data_dir / --dataset, the subset `mel-evaluate` draws for
--seed. So the "off" row is what `mel-evaluate --seed=S --num_images=N` reports.

For each variation strength s in --strengths (mel_tf.deploy.seeds.VARIATION) the set
is variations 0..K-1 (K = --per_base) of the seeds 0..N/K-1, ordered so that
neighbours come from different seeds (evaluate_images' MS-SSIM pairs
neighbours): its SWD and MS-SSIM say whether variations are as good and as
varied as plain icons, and two more numbers say how near they stay:
ms_ssim_to_base (each variation against its seed's own icon; 1 at s = 0) and
ms_ssim_siblings (variations 0 and 1 of one seed).

Writes OUT/truncation_study.json (with the machine: benchmarks/machine.py's
machine_info), OUT/truncation_study.png (the four curves, drawn with PIL),
OUT/truncation_grid.png (the icon of each --grid_seeds seed, latent 0 as the
page and `mel-generate --seed=S --num=1` draw it, at each t: a row per seed)
and OUT/variation_grid.png (a row per strength: seed --grid_seeds[0]'s icon,
then its first variations).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy as np
from absl import app, flags
from PIL import Image, ImageDraw, ImageFont


F = flags.FLAGS
flags.DEFINE_string("logdir", None, "A trained run directory (its data from its dataset.json).")
flags.DEFINE_string("model", None, "Or a .tflite file, SavedModel or export folder.")
flags.DEFINE_string("data_dir", None, "Real images: a folder (default: the run's own data).")
flags.DEFINE_string("dataset", None, "Real images: a built-in dataset (twemoji_faces).")
flags.DEFINE_string("out", None, "Folder for the JSON and the images (created).", required=True)
flags.DEFINE_integer("num_images", 1000, "Icons per set (fewer if the real set is smaller).")
flags.DEFINE_integer("seed", 0, "Seed of the latents, the real subset and the metrics' draws.")
flags.DEFINE_list("truncations", ["off", "2.0", "1.5", "1.0", "0.7", "0.5"],
                  "Truncations to measure; off is the plain seed rule.")
flags.DEFINE_list("strengths", ["0.1", "0.2", "0.3", "0.5", "0.7", "1.0"],
                  "Variation strengths to measure.")
flags.DEFINE_integer("per_base", 4, "Variations per seed in a strength's set.", lower_bound=2)
flags.DEFINE_list("grid_seeds", ["0", "1", "2", "3"], "Seeds of the image grids.")
flags.DEFINE_integer("batch_size", 64, "Latents per model call.", lower_bound=1)
flags.DEFINE_integer("threads", None, "Interpreter threads for a .tflite model.")

# The real subset of `mel-evaluate` (mel_tf/cli/evaluate.py) for a seed.
REAL_SUBSET_TAG = 0x4556
GRID_CELL = 64           # pixels of an icon in the image grids, at least
VARIATION_GRID_COLUMNS = 6


# ---- inputs ----------------------------------------------------------------------------

def parse_truncation(text: str) -> float:
    return math.inf if text.strip().lower() == "off" else float(text)


def truncation_name(t: float) -> str:
    return "off" if t == math.inf else f"{t:g}"


def data_config(run_dir):
    """The real images: --data_dir or --dataset, else the run's own record."""
    from mel_tf.config import DataConfig
    if F.data_dir and F.dataset:
        raise ValueError("give --data_dir or --dataset, not both")
    if F.data_dir:
        return DataConfig(data_dir=F.data_dir)
    if F.dataset:
        return DataConfig(dataset=F.dataset)
    path = os.path.join(run_dir or "", "dataset.json")
    if not run_dir or not os.path.isfile(path):
        raise ValueError("no record of the real images here: give --data_dir or --dataset")
    with open(path) as f:
        return DataConfig.from_record(json.load(f))


def real_images(data_cfg, resolution: int) -> np.ndarray:
    from mel_tf.training import data as data_lib
    image_set = data_lib.open_data(data_cfg, resolution)
    n = min(F.num_images, len(image_set))
    rng = np.random.default_rng([F.seed, REAL_SUBSET_TAG])
    return image_set.images(resolution)[rng.choice(len(image_set), n, replace=False)]


# ---- sets and scores ----------------------------------------------------------------------

def icons(model, z: np.ndarray) -> np.ndarray:
    from mel_tf.deploy.generate import run_batched
    return run_batched(model, z, F.batch_size)


def truncation_row(model, real: np.ndarray, t: float) -> dict:
    from mel_tf.metrics import evaluate_images
    from mel_tf.deploy.seeds import latents_for_seed
    start = time.time()
    z = latents_for_seed(F.seed, len(real), model.latent_dim, t)
    scores = evaluate_images(real, icons(model, z), F.seed)
    return {"truncation": truncation_name(t), **scores,
            "seconds": round(time.time() - start, 1)}


def variation_set(model, strength: float, num: int):
    """(variations, their seeds' icons): K-major, so neighbours have different seeds."""
    from mel_tf.deploy.seeds import latents_for_seed, variation_latents
    bases = num // F.per_base
    z = np.stack([variation_latents(b, F.per_base, model.latent_dim, strength)
                  for b in range(bases)])                       # [bases, K, D]
    base_z = np.concatenate([latents_for_seed(b, 1, model.latent_dim) for b in range(bases)])
    return icons(model, z.transpose(1, 0, 2).reshape(-1, model.latent_dim)), icons(model, base_z)


def interleave(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[a0, b0, a1, b1, ...]: ms_ssim_diversity then scores the pairs (a_i, b_i)."""
    out = np.empty((2 * len(a),) + a.shape[1:], a.dtype)
    out[0::2], out[1::2] = a, b
    return out


def variation_row(model, real: np.ndarray, strength: float) -> dict:
    from mel_tf.metrics import evaluate_images, ms_ssim_diversity
    start = time.time()
    num = len(real) // F.per_base * F.per_base
    fake, base = variation_set(model, strength, num)
    scores = evaluate_images(real[:num], fake, F.seed)
    bases = len(base)
    return {"strength": strength, "per_base": F.per_base, **scores,
            "ms_ssim_to_base": ms_ssim_diversity(interleave(base, fake[:bases])),
            "ms_ssim_siblings": ms_ssim_diversity(interleave(fake[:bases],
                                                             fake[bases:2 * bases])),
            "seconds": round(time.time() - start, 1)}


# ---- pictures -----------------------------------------------------------------------------

def font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:            # Pillow before 10.1: one small bitmap font
        return ImageFont.load_default()


def labelled_grid(rows, row_labels, column_labels) -> Image.Image:
    """Icons (uint8 [rows][cols][R, R, 3]) in cells of at least GRID_CELL px, labelled."""
    size = rows[0][0].shape[0]
    scale = max(1, math.ceil(GRID_CELL / size))
    cell, left, top, pad = size * scale, 90, 24, 4
    width = left + len(column_labels) * (cell + pad)
    image = Image.new("RGB", (width, top + len(rows) * (cell + pad)), "white")
    draw, text = ImageDraw.Draw(image), font(13)
    for c, label in enumerate(column_labels):
        draw.text((left + c * (cell + pad), 4), label, fill="black", font=text)
    for r, (row, label) in enumerate(zip(rows, row_labels)):
        y = top + r * (cell + pad)
        draw.text((4, y + cell // 2 - 7), label, fill="black", font=text)
        for c, icon in enumerate(row):
            big = Image.fromarray(icon).resize((cell, cell), Image.Resampling.NEAREST)
            image.paste(big, (left + c * (cell + pad), y))
    return image


def truncation_grid(model, truncations, seeds) -> Image.Image:
    from mel_tf.deploy.seeds import latents_for_seed
    rows = [icons(model, np.concatenate([latents_for_seed(s, 1, model.latent_dim, t)
                                         for t in truncations])) for s in seeds]
    return labelled_grid(rows, [f"seed {s}" for s in seeds],
                         [f"t {truncation_name(t)}" for t in truncations])


def variation_grid(model, strengths, seed) -> Image.Image:
    from mel_tf.deploy.seeds import latents_for_seed, variation_latents
    base = latents_for_seed(seed, 1, model.latent_dim)
    rows = [icons(model, np.concatenate([base, variation_latents(
        seed, VARIATION_GRID_COLUMNS, model.latent_dim, s)])) for s in strengths]
    return labelled_grid(rows, [f"s {s:g}" for s in strengths],
                         [f"seed {seed}"] + [f"var {k}" for k in range(VARIATION_GRID_COLUMNS)])


COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


def panel(draw, box, title, x_labels, series):
    """A line plot in `box` (x0, y0, x1, y1): categories along x, `series` a list
    of (name, values); a series of one value is drawn as a dashed level."""
    x0, y0, x1, y1 = box
    text = font(12)
    draw.text((x0, y0), title, fill="black", font=font(14))
    left, top, right, bottom = x0 + 48, y0 + 24, x1 - 8, y1 - 36
    values = [v for _, vs in series for v in vs]
    lo, hi = min(values), max(values)
    lo, hi = (lo - 0.05 * (hi - lo or 1), hi + 0.05 * (hi - lo or 1))
    to_y = lambda v: bottom - (v - lo) / (hi - lo) * (bottom - top)   # noqa: E731
    to_x = lambda i: left + (i + 0.5) * (right - left) / len(x_labels)   # noqa: E731
    draw.rectangle((left, top, right, bottom), outline="black")
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        draw.text((x0, to_y(v) - 7), f"{v:.3g}", fill="black", font=text)
    for i, label in enumerate(x_labels):
        draw.text((to_x(i) - 10, bottom + 4), label, fill="black", font=text)
    for n, (name, vs) in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        if len(vs) == 1:
            for x in range(int(left), int(right), 10):
                draw.line((x, to_y(vs[0]), x + 5, to_y(vs[0])), fill=colour, width=2)
        else:
            points = [(to_x(i), to_y(v)) for i, v in enumerate(vs)]
            draw.line(points, fill=colour, width=2)
            for x, y in points:
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        draw.text((left + 4 + 140 * n, bottom + 18), name, fill=colour, font=text)


def plot(result) -> Image.Image:
    t_rows, v_rows = result["truncation"], result["variation"]
    t_labels = [r["truncation"] for r in t_rows]
    s_labels = [f"{r['strength']:g}" for r in v_rows]
    plain = next((r for r in t_rows if r["truncation"] == "off"), None)
    image = Image.new("RGB", (960, 640), "white")
    draw = ImageDraw.Draw(image)
    panel(draw, (0, 0, 480, 320), "SWD avg (x1e3) by truncation", t_labels,
          [("fake", [r["swd"]["avg"] for r in t_rows])])
    panel(draw, (480, 0, 960, 320), "MS-SSIM by truncation (lower: more varied)", t_labels,
          [("fake", [r["ms_ssim_fake"] for r in t_rows]),
           ("real", [t_rows[0]["ms_ssim_real"]])])
    swd = [("variations", [r["swd"]["avg"] for r in v_rows])]
    panel(draw, (0, 320, 480, 640), "SWD avg (x1e3) by variation strength", s_labels,
          swd + ([("plain (t off)", [plain["swd"]["avg"]])] if plain else []))
    panel(draw, (480, 320, 960, 640), "MS-SSIM by variation strength", s_labels,
          [("to its seed", [r["ms_ssim_to_base"] for r in v_rows]),
           ("siblings", [r["ms_ssim_siblings"] for r in v_rows]),
           ("set", [r["ms_ssim_fake"] for r in v_rows])])
    return image


# ---- the study ------------------------------------------------------------------------------

def study() -> dict:
    from benchmarks.machine import machine_info
    from mel_tf.deploy.seeds import TRUNCATION, VARIATION
    from mel_tf.deploy.serving import load_model

    if (F.logdir is None) == (F.model is None):
        raise ValueError("give exactly one of --logdir and --model")
    run_dir = F.logdir or (F.model if os.path.isdir(F.model) else None)
    data_cfg = data_config(run_dir)
    model = load_model(F.logdir or F.model, num_threads=F.threads)
    real = real_images(data_cfg, model.resolution)
    truncations = [parse_truncation(t) for t in F.truncations]
    strengths = [float(s) for s in F.strengths]
    result = {
        "model": F.logdir or F.model, "resolution": model.resolution,
        "latent_dim": model.latent_dim, "data": data_cfg.name, "num_images": len(real),
        "seed": F.seed, "rules": [TRUNCATION["algorithm"], VARIATION["algorithm"]],
        "truncation": [truncation_row(model, real, t) for t in truncations],
        "variation": [variation_row(model, real, s) for s in strengths],
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_info(packages=("tensorflow-cpu", "ai-edge-litert", "numpy")),
    }
    os.makedirs(F.out, exist_ok=True)
    seeds = [int(s) for s in F.grid_seeds]
    truncation_grid(model, truncations, seeds).save(os.path.join(F.out, "truncation_grid.png"))
    variation_grid(model, strengths, seeds[0]).save(os.path.join(F.out, "variation_grid.png"))
    plot(result).save(os.path.join(F.out, "truncation_study.png"))
    with open(os.path.join(F.out, "truncation_study.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result


def main(argv):
    del argv
    try:
        result = study()
    except (ValueError, OSError) as e:
        print(f"truncation_study: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    for row in result["truncation"]:
        print(f"t {row['truncation']:>4}: SWD {row['swd']['avg']:7.2f}  "
              f"MS-SSIM {row['ms_ssim_fake']:.3f} (real {row['ms_ssim_real']:.3f})")
    for row in result["variation"]:
        print(f"s {row['strength']:>4g}: SWD {row['swd']['avg']:7.2f}  MS-SSIM set "
              f"{row['ms_ssim_fake']:.3f}, to its seed {row['ms_ssim_to_base']:.3f}, "
              f"siblings {row['ms_ssim_siblings']:.3f}")
    print(f"wrote {F.out}/truncation_study.json, truncation_study.png, truncation_grid.png, "
          f"variation_grid.png")
    return 0


if __name__ == "__main__":
    app.run(main)
