"""Step-for-step parity of the seed preset with the source's own code.

The source is the public PyTorch code of the "Mel Icon Generator v2",
zassou65535/image_generator_2. Give a clone of it with --source. This script
imports its networks (module/generator.py, module/discriminator.py) and its
gradient penalty (PGGAN_train.py), copies the source's initial weights into
mel_tf's seed preset, and trains both on the same batches, latents and mixing
weights for the source's schedule with `--res_step` iterations per phase
(4x4, fades to 8, 16, 32, then 32 stable by default). The training step on the
source's side follows the loop body of PGGAN_train.py line for line (G step,
EMA, D step with the penalty and drift); nothing of the source is copied here.

What "agreement to float32 round-off" means is measured, not assumed: the
source also runs in float64 from the same weights and data, and the table
reports, per phase, how far each float32 run (the source's own and mel_tf's)
drifts from that float64 run. A difference left in mel_tf shows as a drift
well above the source's own float32 drift.

    pip install torch==2.13.0
    python -m research.source_parity --source=PATH/TO/image_generator_2 \
        --out=docs/source_parity/parity.json

By default every step of both float32 runs starts from the float64 run's state
(weights, EMA weights, Adam moments and step counts), so each step is compared
on its own; a GAN amplifies round-off so quickly that free-running float32
runs part within tens of steps (--noresync shows it).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

from absl import app, flags

flags.DEFINE_string("source", None, "A clone of zassou65535/image_generator_2.")
flags.DEFINE_integer("res_step", 50, "Iterations per phase (the source: 7500).")
flags.DEFINE_integer("resolution", 32, "Last resolution; it gets a stable phase too.")
flags.DEFINE_integer("batch_size", 8, "Batch size (the source: 8).")
flags.DEFINE_integer("seed", 0, "Seed of the initial weights, data order and noise.")
flags.DEFINE_bool("resync", True, "Start every step of the float32 runs from the float64 "
                  "source's state (weights, EMA, Adam state), so that each step is compared "
                  "alone; without it the runs drift apart as float32 runs do.")
flags.DEFINE_bool("xla", True, "Compile mel_tf's step with XLA (as training does).")
flags.DEFINE_integer("threads", 2, "Threads for each framework.")
flags.DEFINE_string("out", None, "JSON file for the results.")
flags.DEFINE_string("table", None, "Only print the markdown table of this results JSON.")
F = flags.FLAGS

from research.source_code import (SourceRun, import_source, numpy_of, source_pairs,
                         stage_of)

# ---- weights and optimizer state between the two -------------------------------

def sync(ref, run, model, pairs):
    """Makes `run` (the float32 source) and mel_tf start the next step where `ref` is:
    weights, EMA weights and Adam state (moments and per-parameter step counts)."""
    for name in ("netG", "netD", "netG_mavg", "optG", "optD"):
        getattr(run, name).load_state_dict(getattr(ref, name).state_dict())
    optimizers = {"G": (ref.optG, model.g_optimizer), "D": (ref.optD, model.d_optimizer)}
    for net, param, var in pairs:
        var.assign(numpy_of(param).astype("float32"))
        if net == "EMA":
            continue
        torch_opt, mel_opt = optimizers[net]
        state = torch_opt.state.get(param, {})
        m, v, t = mel_opt.slots(var)
        for slot, key in ((m, "exp_avg"), (v, "exp_avg_sq")):
            slot.assign(numpy_of(state[key]).astype("float32") if key in state
                        else slot.numpy() * 0)
        t.assign(float(state["step"]) if "step" in state else 0.0)


def updates(before, pairs, mel=False):
    """Each weight's change over the step: the torch parameters', or mel_tf's variables'."""
    return [(net, (var.numpy().astype("float64") if mel else numpy_of(param)) - w0)
            for w0, (net, param, var) in zip(before, pairs)]


def update_errors(run, reference):
    """Per network, ||update - reference update|| / ||reference update|| over its weights."""
    num, den = {}, {}
    for (net, d_run), (_, d_ref) in zip(run, reference):
        num[net] = num.get(net, 0.0) + float(((d_run - d_ref) ** 2).sum())
        den[net] = den.get(net, 0.0) + float((d_ref ** 2).sum())
    return {net: (num[net] / den[net]) ** 0.5 if den[net] else 0.0 for net in num}


# ---- the run ----------------------------------------------------------------------

def table(phases) -> str:
    """Markdown: per phase, mel_tf against the float32 source, and for scale the float32
    source against the float64 source (largest relative loss difference; median and
    largest relative update error over the phase's steps, G and D)."""
    def cell(run, key):
        return f"{run.get(key, float('nan')):.1e}"
    lines = ["| phase | iterations | compared | G loss | D loss | G update (median, max) "
             "| D update (median, max) |", "|---|---|---|---|---|---|---|"]
    for name, phase in phases.items():
        first, last = phase["iterations"]
        for label, run in (("mel_tf vs source float32", phase["mel_tf_vs_source_float32"]),
                           ("source float32 vs float64", phase["source_float32"])):
            lines.append(
                f"| {name} | {first}-{last} | {label} | {cell(run, 'g_loss_max_rel_diff')} "
                f"| {cell(run, 'd_loss_max_rel_diff')} "
                f"| {cell(run, 'G_update_error_median')}, {cell(run, 'G_update_error_max')} "
                f"| {cell(run, 'D_update_error_median')}, {cell(run, 'D_update_error_max')} |")
    return "\n".join(lines)


def main(argv):
    del argv
    if F.table:
        with open(F.table) as f:
            saved = json.load(f)
        stages = int(math.log2(saved["resolution"])) - 1
        print(table(summarize(saved["losses"], saved["res_step"], stages)))
        return
    if not F.source:
        raise app.UsageError("--source (a clone of zassou65535/image_generator_2) is needed")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    import torch

    from mel_tf.training import data as data_lib
    from mel_tf.config import TrainConfig, source_networks
    from mel_tf.training.progan import ProGAN

    from benchmarks.machine import machine_info

    torch.set_num_threads(F.threads)
    tf.config.threading.set_intra_op_parallelism_threads(F.threads)
    stages = int(math.log2(F.resolution)) - 1
    total = F.res_step * (stages + 1)             # 4x4, fades, then a stable phase
    modules = import_source(F.source)

    net_cfg = source_networks(F.resolution)
    train_cfg = TrainConfig(seed=F.seed, batch_size=F.batch_size, contrast=False)
    model = ProGAN(net_cfg, train_cfg)
    runs = {"source_float32": SourceRun(torch, modules, torch.float32, F.seed),
            "source_float64": SourceRun(torch, modules, torch.float64, F.seed)}
    ref, run32 = runs["source_float64"], runs["source_float32"]
    pairs_ref = source_pairs(ref, model, stages)
    pairs_32 = source_pairs(run32, model, stages)
    sync(ref, run32, model, pairs_ref)

    images = data_lib.load_twemoji_faces(F.resolution)
    rng = np.random.default_rng([F.seed, 0x5041])
    latent = net_cfg.latent_dim
    records, step_fns = [], {}
    timings = {name: 0.0 for name in list(runs) + ["mel_tf"]}
    for it in range(total):
        res = min(it / F.res_step, float(stages))
        layer, alpha = stage_of(res)
        resolution = 4 * 2 ** layer
        idx = data_lib.batch_indices(len(images), F.batch_size, F.seed, it)
        real_u8 = images.images(resolution)[idx]
        real = real_u8.astype(np.float32) * np.float32(1 / 255)   # as uint8_to_network
        z_g = rng.standard_normal((F.batch_size, latent)).astype(np.float32)
        z_d = rng.standard_normal((F.batch_size, latent)).astype(np.float32)
        eps = rng.random((F.batch_size, 1, 1, 1)).astype(np.float32)
        if F.resync and it:
            sync(ref, run32, model, pairs_ref)
        before = [numpy_of(p) for _, p, _ in pairs_ref]
        row = {"iteration": it, "resolution": resolution, "alpha": alpha}
        for name, run in runs.items():
            def t(a):
                return torch.from_numpy(a).to(run.dtype)
            start = time.perf_counter()
            row[name] = run.step(it, res, t(real.transpose(0, 3, 1, 2)), t(z_g), t(z_d), t(eps))
            timings[name] += time.perf_counter() - start

        # mel_tf: the latent is reshaped NHWC, the source's NCHW: the same z, permuted.
        def nhwc(z):
            return z.reshape(-1, latent // 16, 4, 4).transpose(0, 2, 3, 1).reshape(-1, latent)
        model.set_stage(resolution, fading=layer > 0)
        if layer > 0:
            model.set_alpha(alpha)
        key = (resolution, layer > 0)
        if key not in step_fns:
            step_fns[key] = tf.function(model.train_step, jit_compile=F.xla, autograph=False)
        batch = {"images": real_u8, "z_g": nhwc(z_g), "z_d": nhwc(z_d), "eps": eps,
                 "contrast": np.ones(F.batch_size, np.float32),
                 "steps": np.full(F.batch_size, it, np.int64)}
        start = time.perf_counter()
        out = step_fns[key](batch)
        timings["mel_tf"] += time.perf_counter() - start
        row["mel_tf"] = (float(out["g_loss"]), float(out["d_loss"]))
        if F.resync:
            d64, d32 = updates(before, pairs_ref), updates(before, pairs_32)
            d_mel = updates(before, pairs_ref, mel=True)
            row["update_error"] = {"source_float32": update_errors(d32, d64),
                                   "mel_tf": update_errors(d_mel, d64),
                                   "mel_tf_vs_source_float32": update_errors(d_mel, d32)}
        records.append(row)
        if it % 10 == 0 or it == total - 1:
            print(f"{it:4d} {resolution:3d}x a={alpha:.3f} " + "  ".join(
                f"{n} G {row[n][0]:+.6f} D {row[n][1]:+.6f}" for n in (
                    "source_float64", "source_float32", "mel_tf"))
                , flush=True)

    result = {"phases": summarize(records, F.res_step, stages), "losses": records}
    result.update({"machine": machine_info(), "date": time.strftime("%Y-%m-%d"),
                   "command": " ".join(sys.argv), "res_step": F.res_step, "resync": F.resync,
                   "resolution": F.resolution, "batch_size": F.batch_size, "seed": F.seed,
                   "xla": F.xla, "seconds": {k: round(v, 1) for k, v in timings.items()}})
    text = json.dumps(result, indent=1)
    print(table(result["phases"]))
    if F.out:
        os.makedirs(os.path.dirname(os.path.abspath(F.out)), exist_ok=True)
        with open(F.out, "w") as f:
            f.write(text + "\n")


def summarize(records, res_step, stages):
    """Per phase and float32 run: the largest loss difference from the float64 source
    (absolute, and relative to the loss's size), mel_tf's from the float32 source too,
    and, with --resync, the largest and the median update error per network."""
    phases = {}
    for row in records:
        stable = row["resolution"] == 4 or row["iteration"] / res_step > stages
        name = f"{row['resolution']}x{row['resolution']} " + ("stable" if stable else "fade")
        phase = phases.setdefault(name, {"iterations": [row["iteration"], row["iteration"]],
                                         "source_float32": {}, "mel_tf": {}, "_updates": {}})
        phase["iterations"][1] = row["iteration"]
        for run, ref_run in (("source_float32", "source_float64"),
                             ("mel_tf", "source_float64"), ("mel_tf_vs_source_float32",
                                                            "source_float32")):
            out = phase.setdefault(run, {})
            for i, loss in enumerate(("g_loss", "d_loss")):
                ref, value = row[ref_run][i], row[run.split("_vs_")[0]][i]
                out[f"{loss}_max_abs_diff"] = max(out.get(f"{loss}_max_abs_diff", 0.0),
                                                  abs(value - ref))
                out[f"{loss}_max_rel_diff"] = max(out.get(f"{loss}_max_rel_diff", 0.0),
                                                  abs(value - ref) / max(abs(ref), 1e-3))
            for net, err in row.get("update_error", {}).get(run, {}).items():
                phase["_updates"].setdefault((run, net), []).append(err)
    for phase in phases.values():
        for (run, net), errors in phase.pop("_updates").items():
            errors = sorted(errors)
            phase[run][f"{net}_update_error_max"] = errors[-1]
            phase[run][f"{net}_update_error_median"] = errors[len(errors) // 2]
    return phases


if __name__ == "__main__":
    app.run(main)
