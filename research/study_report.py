"""Report of the 256x256 study: SWD at equal images, time to quality, quality against time.

    python -m research.study_report --runs=/work/study/runs --out=/tmp/report \
        --real_floor=docs/source_study/256x256/real_floor.json \
        --real_floor=docs/source_study/64x64/real_floor.json

Reads RUNS/<system>_seed<seed>/timeline.jsonl of every run, finished or not (the
lines research/source_study.py appends: "step", "images", "train_seconds" and,
where scored, "resolution", "swd" per level and "avg", "ms_ssim_fake",
"ms_ssim_real"). Both systems follow one schedule (--res_step iterations per
phase, batch 8), so one step is the same images shown in every run. Writes to
OUT:

* report.md (also printed): at each phase end, each run's SWD per level and
  MS-SSIM, each system's mean, each system's mean / the source's mean per level
  at that step (where both are at one resolution), and the reals' floor (the SWD
  of two disjoint halves of the real icons, mean of the floor file's splits);
  then, for each other system, its ratios to the source at every step both
  scored, fades included (each of its runs' SWD avg over the source's mean too);
  then the time to quality.
* report.json: the same figures.
* quality_vs_time.png: SWD avg (top row) and SWD at the finest level (bottom
  row) against train_seconds, one line per run, one column per resolution, the
  reals' floor dashed.

Time to quality at --resolution: the source's final SWD avg there (its last
scored point at that resolution, mean over its seeds) is the target; for each
other run, the first train_seconds at which its SWD avg at that resolution is
at or under the target, divided by the source's train_seconds to its final
point there (mean over its seeds). Standalone: numpy and PIL only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

RUN_NAME = re.compile(r"^(?P<system>.+)_seed(?P<seed>\d+)$")


# ---- reading --------------------------------------------------------------------

def read_timeline(path):
    """The rows of one timeline.jsonl; a last line cut off mid-write is left out."""
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if line.endswith("\n"):
                    raise ValueError(f"{path}: a broken line that is not the last: {line!r}")
    return rows


def read_runs(runs_dir):
    """[{"name", "system", "seed", "timeline"}] of every RUNS/<system>_seed<seed>/
    with a timeline.jsonl, sorted by system and seed."""
    if not os.path.isdir(runs_dir):
        raise FileNotFoundError(f"--runs: no folder {runs_dir}")
    runs = []
    for name in sorted(os.listdir(runs_dir)):
        path = os.path.join(runs_dir, name, "timeline.jsonl")
        match = RUN_NAME.match(name)
        if match and os.path.isfile(path):
            runs.append({"name": name, "system": match["system"], "seed": int(match["seed"]),
                         "timeline": read_timeline(path)})
    if not runs:
        raise ValueError(f"no <system>_seed<N>/timeline.jsonl in {runs_dir}")
    return sorted(runs, key=lambda r: (r["system"], r["seed"]))


def read_floors(paths):
    """{resolution: {level: mean SWD of the splits}} of real_floor.json files."""
    floors = {}
    for path in paths:
        with open(path) as f:
            record = json.load(f)
        splits = [s["swd"] for s in record["splits"]]
        floors[int(record["resolution"])] = {
            level: float(np.mean([s[level] for s in splits])) for level in splits[0]}
    return floors


def scored(run, resolution=None):
    """The run's scored rows (at `resolution`, if given), by step."""
    return [r for r in run["timeline"] if "swd" in r
            and (resolution is None or r["resolution"] == resolution)]


def by_step(runs):
    """{(step, resolution): {run name: scored row}} of the runs."""
    groups = {}
    for run in runs:
        for row in scored(run):
            groups.setdefault((row["step"], row["resolution"]), {})[run["name"]] = row
    return groups


# ---- SWD at the phase ends ------------------------------------------------------

def mean_row(rows):
    """Mean SWD per level and MS-SSIM of rows at one step and resolution."""
    keys = rows[0]["swd"].keys()
    return {"swd": {k: float(np.mean([r["swd"][k] for r in rows])) for k in keys},
            "ms_ssim_fake": float(np.mean([r["ms_ssim_fake"] for r in rows])),
            "ms_ssim_real": float(np.mean([r["ms_ssim_real"] for r in rows])), "runs": len(rows)}


def phase_ends(runs, floors, res_step, source="source"):
    """[{step, images, resolution, runs: {name: row}, means: {system: mean_row},
    ratios: {system: {level: mean / source mean}}, floor}] for every phase end that
    some run has scored, by step, then resolution."""
    groups = {key: rows for key, rows in by_step(runs).items() if key[0] % res_step == 0}
    system = {run["name"]: run["system"] for run in runs}
    ends = []
    for (step, resolution), rows in sorted(groups.items()):
        by_system = {}
        for name, row in rows.items():
            by_system.setdefault(system[name], []).append(row)
        means = {s: mean_row(r) for s, r in sorted(by_system.items())}
        ratios = {s: {k: v / means[source]["swd"][k] for k, v in m["swd"].items()}
                  for s, m in means.items() if s != source and source in means}
        ends.append({"step": step, "images": next(iter(rows.values()))["images"],
                     "resolution": resolution, "runs": rows, "means": means,
                     "ratios": ratios, "floor": floors.get(resolution)})
    return ends


def phase_end_table(end, source="source"):
    """Markdown of one phase end (see `phase_ends`)."""
    levels = [k for k in next(iter(end["runs"].values()))["swd"] if k != "avg"] + ["avg"]
    head = (f"| step {end['step']:,}, {end['images']:,} images, {end['resolution']}x"
            f"{end['resolution']} | " + " | ".join(f"SWD {k}" for k in levels)
            + " | MS-SSIM fake | MS-SSIM real |")
    lines = [head, "|" + "---|" * (len(levels) + 3)]

    def line(label, swd, fake="", real=""):
        return (f"| {label} | " + " | ".join(swd.get(k, "") for k in levels)
                + f" | {fake} | {real} |")
    for name, row in sorted(end["runs"].items()):
        lines.append(line(name, {k: f"{v:.1f}" for k, v in row["swd"].items()},
                          f"{row['ms_ssim_fake']:.3f}", f"{row['ms_ssim_real']:.3f}"))
    for system, mean in end["means"].items():
        lines.append(line(f"mean {system} ({mean['runs']})",
                          {k: f"{v:.1f}" for k, v in mean["swd"].items()},
                          f"{mean['ms_ssim_fake']:.3f}", f"{mean['ms_ssim_real']:.3f}"))
    for system, ratio in end["ratios"].items():
        lines.append(line(f"{system} / {source}", {k: f"{v:.2f}x" for k, v in ratio.items()}))
    if end["floor"] is not None:
        lines.append(line("reals' floor", {k: f"{v:.1f}" for k, v in end["floor"].items()}))
    return "\n".join(lines)


# ---- against the source at every scored step ---------------------------------------

def versus_source(runs, system, source="source"):
    """[{step, images, resolution, alpha, ratio: {level: mean / source mean}, per_run:
    {name: SWD avg / source mean avg}, ms_ssim: (system's, source's, reals')}] at every
    step where `system` and the source both scored at one resolution, by step."""
    mine = by_step([r for r in runs if r["system"] == system])
    theirs = by_step([r for r in runs if r["system"] == source])
    lines = []
    for key in sorted(mine.keys() & theirs.keys()):
        own, base = mean_row(list(mine[key].values())), mean_row(list(theirs[key].values()))
        first = next(iter(mine[key].values()))
        lines.append({
            "step": key[0], "images": first["images"], "resolution": key[1],
            "alpha": first.get("alpha", 1.0),
            "ratio": {k: v / base["swd"][k] for k, v in own["swd"].items()},
            "per_run": {name: row["swd"]["avg"] / base["swd"]["avg"]
                        for name, row in sorted(mine[key].items())},
            "runs": (own["runs"], base["runs"]),
            "ms_ssim": (own["ms_ssim_fake"], base["ms_ssim_fake"], base["ms_ssim_real"])})
    return lines


def versus_source_table(lines, system, source="source"):
    """Markdown of `versus_source`: one row a step, the levels finest first."""
    if not lines:
        return f"No step where both {system} and the {source} scored."
    names = list(lines[0]["per_run"])
    levels = sorted({k for line in lines for k in line["ratio"] if k != "avg"},
                    key=int, reverse=True)
    out = ["| images, stage | " + " | ".join(f"SWD {k}" for k in levels)
           + f" | SWD avg | avg per run | MS-SSIM fake, {system} / {source} (real) | runs |",
           "|" + "---|" * (len(levels) + 5)]
    for line in lines:
        res, alpha = line["resolution"], line["alpha"]
        stage = f"{res}x{res}" + ("" if alpha >= 1.0 else f", a = {alpha:.2f}")
        cells = [f"{line['ratio'][k]:.2f}x" if k in line["ratio"] else "" for k in levels]
        per_run = " / ".join(f"{line['per_run'][n]:.2f}x" if n in line["per_run"] else "-"
                             for n in names)
        fake, base, real = line["ms_ssim"]
        out.append(f"| {line['images']:,}, {stage} | " + " | ".join(cells)
                   + f" | {line['ratio']['avg']:.2f}x | {per_run} | {fake:.3f} / {base:.3f}"
                   f" ({real:.3f}) | {line['runs'][0]} / {line['runs'][1]} |")
    return "\n".join(out)


# ---- time to quality -------------------------------------------------------------

def phase_over(run, resolution, res_step):
    """Whether the run has left `resolution` for good: it has scores at a higher one,
    or it has done the stable phase that ends a schedule at `resolution` (4x4 and
    one fade per doubling before it: log2(resolution) phases)."""
    last = run["timeline"][-1]["step"] if run["timeline"] else 0
    return (any(r["resolution"] > resolution for r in scored(run))
            or last >= round(math.log2(resolution)) * res_step)


def time_to_quality(runs, resolution, res_step, source="source"):
    """The target (the source's final SWD avg at `resolution`, mean over its runs) and,
    for every other run, when it first got there (see the module's docstring).
    "source_done" is False while a source run is still at `resolution` (the
    target then is its latest point, not its final one)."""
    sources = [r for r in runs if r["system"] == source and scored(r, resolution)]
    if not sources:
        return {"resolution": resolution, "target": None, "runs": {}}
    finals = [scored(r, resolution)[-1] for r in sources]
    target = float(np.mean([f["swd"]["avg"] for f in finals]))
    seconds = float(np.mean([f["train_seconds"] for f in finals]))
    result = {"resolution": resolution, "target": target, "source_seconds": seconds,
              "source_final_steps": [f["step"] for f in finals],
              "source_done": all(phase_over(r, resolution, res_step) for r in sources),
              "runs": {}}
    for run in runs:
        if run["system"] != source:
            result["runs"][run["name"]] = first_at_or_under(run, resolution, res_step, target,
                                                            seconds)
    return result


def first_at_or_under(run, resolution, res_step, target, source_seconds):
    """{"reached": ...} for one run: the first scored point at `resolution` with SWD
    avg at or under `target`, else its best there and whether it is past `resolution`."""
    rows = scored(run, resolution)
    for row in rows:
        if row["swd"]["avg"] <= target:
            return {"reached": True, "step": row["step"], "swd_avg": row["swd"]["avg"],
                    "train_seconds": row["train_seconds"],
                    "ratio": row["train_seconds"] / source_seconds}
    best = min(rows, key=lambda r: r["swd"]["avg"]) if rows else None
    return {"reached": False, "past_resolution": phase_over(run, resolution, res_step),
            "best_swd_avg": best["swd"]["avg"] if best else None,
            "best_step": best["step"] if best else None,
            "last_step": run["timeline"][-1]["step"] if run["timeline"] else 0}


def time_to_quality_text(ttq, source="source"):
    """Markdown lines of `time_to_quality`."""
    res = ttq["resolution"]
    if ttq["target"] is None:
        return f"No {source} run has a scored point at {res}x{res} yet: no target."
    lines = [f"Target: the {source}'s final SWD avg at {res}x{res}, {ttq['target']:.1f} "
             f"(mean over {len(ttq['source_final_steps'])} runs, at steps "
             f"{', '.join(f'{s:,}' for s in ttq['source_final_steps'])}), reached after "
             f"{ttq['source_seconds']:,.0f} s of training (mean)."
             + ("" if ttq["source_done"] else " PROVISIONAL: a source run is still at "
                f"{res}x{res}, so this is its latest point, not its final one."), ""]
    for name, r in ttq["runs"].items():
        if r["reached"]:
            lines.append(f"* {name}: at or under it at step {r['step']:,} (SWD avg "
                         f"{r['swd_avg']:.1f}) after {r['train_seconds']:,.0f} s: "
                         f"{r['ratio']:.2f}x the {source}'s time.")
        elif r["best_swd_avg"] is None:
            lines.append(f"* {name}: no scored point at {res}x{res} yet (step "
                         f"{r['last_step']:,}).")
        else:
            when = ("NEVER reached it: its " f"{res}x{res} phase is over" if r["past_resolution"]
                    else f"not reached yet (still running, step {r['last_step']:,})")
            lines.append(f"* {name}: {when}; best {r['best_swd_avg']:.1f} at step "
                         f"{r['best_step']:,}.")
    return "\n".join(lines)


def report_markdown(ends, versus, ttq, source="source"):
    """`versus`: {system: versus_source(...)}."""
    parts = ["## SWD at each phase end (x 1e3; same step = same images shown)",
             "Ratios are each system's mean over its runs / the source's mean, level by "
             "level; the reals' floor is the mean of the floor file's splits."]
    parts += [phase_end_table(end, source) for end in ends]
    for system, lines in versus.items():
        parts += [f"## {system} / {source} at every step both scored",
                  f"Ratios of means level by level; \"avg per run\": each {system} run's "
                  f"SWD avg / the {source}'s mean ({', '.join(lines[0]['per_run']) if lines else ''})"
                  "; \"runs\": how many runs each mean has.",
                  versus_source_table(lines, system, source)]
    parts += [f"## Time to quality at {ttq['resolution']}x{ttq['resolution']}",
              time_to_quality_text(ttq, source)]
    return "\n\n".join(parts) + "\n"


# ---- quality against wall-clock time ----------------------------------------------

PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
PANEL = (440, 300)           # width, height of one panel, axes and labels included
MARGIN = (62, 30, 16, 40)    # left, top, right, bottom of a panel's plot area


def font(size=13):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:        # a Pillow without scalable default fonts
        return ImageFont.load_default()


def linear_ticks(lo, hi, count=5):
    """Round values (1, 2 or 5 x 10^k apart) from lo to hi."""
    raw = (hi - lo) / count if hi > lo else 1.0
    step = min((m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)
                if m * 10 ** math.floor(math.log10(raw)) >= raw))
    return [i * step for i in range(math.ceil(lo / step), math.floor(hi / step) + 1)]


def log_ticks(lo, hi):
    """1, 2 and 5 x 10^k from lo to hi."""
    return [m * 10 ** k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
            for m in (1, 2, 5) if lo <= m * 10 ** k <= hi]


class Axes:
    """Data -> pixel mapping of one panel: x linear (hours), y logarithmic (SWD)."""

    def __init__(self, box, xs, ys):
        left, top = box[0] + MARGIN[0], box[1] + MARGIN[1]
        self.area = (left, top, box[0] + PANEL[0] - MARGIN[2], box[1] + PANEL[1] - MARGIN[3])
        self.x = (0.0, 1.05 * max(xs) or 1.0)      # from 0: times compare across runs
        self.y = (math.log10(min(ys) / 1.25), math.log10(max(ys) * 1.25))

    def __call__(self, x, y):
        (x0, y0, x1, y1), (a, b), (c, d) = self.area, self.x, self.y
        return (x0 + (x - a) / (b - a) * (x1 - x0), y1 - (math.log10(y) - c) / (d - c) * (y1 - y0))


def draw_axes(draw, axes, title, text_font):
    x0, y0, x1, y1 = axes.area
    draw.rectangle(axes.area, outline=(0, 0, 0))
    draw.text((x0, y0 - 20), title, fill=(0, 0, 0), font=text_font)
    for t in linear_ticks(*axes.x):
        px = axes(t, 10 ** axes.y[0])[0]
        draw.line([(px, y1), (px, y1 + 4)], fill=(0, 0, 0))
        draw.text((px - 8, y1 + 6), f"{t:g}", fill=(0, 0, 0), font=text_font)
    draw.text(((x0 + x1) / 2 - 50, y1 + 22), "train time (hours)", fill=(0, 0, 0), font=text_font)
    for t in log_ticks(10 ** axes.y[0], 10 ** axes.y[1]):
        py = axes(axes.x[0], t)[1]
        draw.line([(x0 - 4, py), (x1, py)], fill=(225, 225, 225))
        draw.text((x0 - 40, py - 7), f"{t:g}", fill=(0, 0, 0), font=text_font)


def draw_panel(draw, box, title, series, floor, text_font):
    """One panel: `series` [(colour, [(hours, swd), ...])], `floor` a dashed line or None."""
    points = [p for _, line in series for p in line]
    if not points:
        draw.text((box[0] + MARGIN[0], box[1] + PANEL[1] / 2), f"{title}: no points yet",
                  fill=(0, 0, 0), font=text_font)
        return
    axes = Axes(box, [x for x, _ in points], [y for _, y in points] + ([floor] if floor else []))
    draw_axes(draw, axes, title, text_font)
    if floor:
        x0, py, x1 = axes.area[0], axes(axes.x[0], floor)[1], axes.area[2]
        for x in range(int(x0), int(x1), 10):
            draw.line([(x, py), (min(x + 6, x1), py)], fill=(0, 0, 0), width=1)
    for colour, line in series:
        xy = [axes(x, y) for x, y in line]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for px, py in xy:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)


def plot(runs, floors, resolutions, path):
    """quality_vs_time.png: SWD avg and the finest level against train time, per resolution."""
    legend = 22 * math.ceil(len(runs) / 3) + 10
    image = Image.new("RGB", (PANEL[0] * len(resolutions), 2 * PANEL[1] + legend), "white")
    draw, text_font = ImageDraw.Draw(image), font()
    for i, run in enumerate(runs):
        x, y = 10 + (i % 3) * 360, 8 + 22 * (i // 3)
        draw.rectangle([x, y + 4, x + 18, y + 10], fill=PALETTE[i % len(PALETTE)])
        draw.text((x + 24, y), run["name"], fill=(0, 0, 0), font=text_font)
    for column, res in enumerate(resolutions):
        for row, level in enumerate(("avg", str(res))):
            series = [(PALETTE[i % len(PALETTE)],
                       [(r["train_seconds"] / 3600, r["swd"][level]) for r in scored(run, res)])
                      for i, run in enumerate(runs)]
            floor = floors.get(res, {}).get(level)
            name = "SWD avg" if level == "avg" else f"SWD {level} (finest)"
            draw_panel(draw, (column * PANEL[0], legend + row * PANEL[1]),
                       f"{res}x{res}: {name}; floor dashed" if floor else f"{res}x{res}: {name}",
                       series, floor, text_font)
    image.save(path)


# ---- the program ------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(prog="study_report.py", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", required=True, help="Folder of <system>_seed<N>/ run folders.")
    parser.add_argument("--out", required=True, help="Folder for report.md, report.json "
                        "and quality_vs_time.png (not inside --runs).")
    parser.add_argument("--real_floor", action="append", default=[], help="A real_floor.json "
                        "of research/source_study.py --real_floor (one per resolution; repeat).")
    parser.add_argument("--resolution", type=int, default=128, help="Time to quality here.")
    parser.add_argument("--res_step", type=int, default=1000, help="Iterations per phase.")
    parser.add_argument("--source", default="source", help="The system the others are "
                        "compared with.")
    parser.add_argument("--plot_resolutions", default="64,128,256", help="Plot columns.")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out, runs_dir = os.path.abspath(args.out), os.path.abspath(args.runs)
    try:
        if os.path.commonpath([out, runs_dir]) == runs_dir:
            raise ValueError(f"--out {args.out} is inside --runs {args.runs}, which is only read")
        runs, floors = read_runs(args.runs), read_floors(args.real_floor)
        resolutions = [int(r) for r in args.plot_resolutions.split(",")]
    except (OSError, ValueError, KeyError) as e:
        print(f"study_report.py: error: {e}", file=sys.stderr)
        return 1
    ends = phase_ends(runs, floors, args.res_step, args.source)
    versus = {system: versus_source(runs, system, args.source)
              for system in sorted({r["system"] for r in runs} - {args.source})}
    ttq = time_to_quality(runs, args.resolution, args.res_step, args.source)
    text = report_markdown(ends, versus, ttq, args.source)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump({"phase_ends": ends, "versus_source": versus, "time_to_quality": ttq,
                   "floors": floors}, f, indent=1)
    plot(runs, floors, resolutions, os.path.join(out, "quality_vs_time.png"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
