"""How long a run takes: the FLOPs of its steps, and the time on a 2-core CPU.

The CPU time comes from measured seconds per iteration (step_seconds.json, written
by `python -m benchmarks.source_ab --table_out=...` from a run on a 2-core CPU; the
machine and the benchmark's JSON are named inside it) at each resolution and width;
a width not measured is scaled from the nearest measured one by FLOPs. Each step
adds the time a whole run spends outside its steps (compiling each phase, fit's
per-step work, checkpoints, samples, scores), measured once on a whole demo run
(overhead_s_per_step, with its source, in the same file). The GPU
figure is an estimate from the schedule's FLOPs and a GPU's published float32
throughput, never a measurement.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from mel_tf.config import NetworkConfig, TrainConfig
from mel_tf.training.schedule import schedule_for

STEP_SECONDS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "step_seconds.json")
# A GPU the estimate names: NVIDIA T4, 8.1 TFLOP/s float32 (NVIDIA's data sheet). Small
# batches of small convolutions reach a fraction of it; the estimate assumes a quarter.
GPU_NAME, GPU_TFLOPS, GPU_EFFICIENCY = "an NVIDIA T4", 8.1, 0.25


def conv_flops(h, w, cin, cout, k):
    return 2 * h * w * cin * cout * k * k


def forward_flops(cfg, resolution, fading):
    """(generator, discriminator) forward FLOPs per image at a stage, from the config's tables."""
    g = 0
    if cfg.latent_mode == "dense":
        g += 2 * cfg.latent_dim * 16 * cfg.base_channels
    for r in cfg.resolutions:
        if r > resolution:
            break
        cin, cout = cfg.g_block_channels(r)
        convs = cfg.g_first_block_convs if r == 4 else 2
        g += conv_flops(r, r, cin, cout, 3) + (convs - 1) * conv_flops(r, r, cout, cout, 3)
    g += conv_flops(resolution, resolution, cfg.g_block_channels(resolution)[1], 3, 1)
    if fading:
        half = resolution // 2
        g += conv_flops(half, half, cfg.g_block_channels(half)[1], 3, 1)
    d = conv_flops(resolution, resolution, 3, cfg.d_from_rgb_channels(resolution), 1)
    if fading:
        half = resolution // 2
        d += conv_flops(half, half, 3, cfg.d_from_rgb_channels(half), 1)
    for r in cfg.resolutions[1:]:
        if r > resolution:
            break
        cin, cmid, cout = cfg.d_block_channels(r)
        d += conv_flops(r, r, cin, cmid, 3) + conv_flops(r, r, cmid, cout, 3)
    c0, c1, c2 = cfg.d_head_channels
    d += conv_flops(4, 4, c0 + 1, c1, 3)
    d += conv_flops(1, 1, c1, c2, 4)       # the 4x4 'valid' conv: one output pixel
    d += conv_flops(1, 1, c2, 1, 1)        # the score
    return g, d


def iteration_gflops(cfg, resolution: int, fading: bool, batch: int) -> float:
    """GFLOP of one training iteration: roughly 4 generator forwards and 14
    discriminator forwards per image (the G step, the D step on reals and fakes,
    the penalty's double backward); a multiply-add is 2 FLOPs."""
    g, d = forward_flops(cfg, resolution, fading)
    return batch * (4 * g + 14 * d) / 1e9


def step_table() -> Optional[dict]:
    """The measured table: {"machine": ..., "source": ..., "seconds": {width: {res: s}},
    "channel_floor": {width: the CHANNEL_FLOOR_FIELDS of the networks timed}}."""
    if not os.path.isfile(STEP_SECONDS_FILE):
        return None
    with open(STEP_SECONDS_FILE) as f:
        return json.load(f)


def cpu_seconds(net_cfg: NetworkConfig, train_cfg: TrainConfig) -> Optional[float]:
    """Expected seconds of the whole schedule on the measured 2-core CPU (seed preset;
    None for the paper preset or without a table)."""
    table = step_table()
    if table is None or net_cfg.preset != "seed":
        return None
    widths = {float(w): (w, v) for w, v in table["seconds"].items()}
    nearest = min(widths, key=lambda w: abs(w - net_cfg.width))
    key, seconds = widths[nearest]
    # The networks timed: the nearest width, with the channel floor it was timed with.
    measured = net_cfg.replace(width=nearest, **table["channel_floor"][key])
    phases = schedule_for(net_cfg, train_cfg).phases
    steps = sum(p.images / p.batch_size for p in phases)
    total = table.get("overhead_s_per_step", 0.0) * steps
    for phase in phases:
        r, fading = phase.resolution, phase.fading
        per_step = seconds[str(r)] * phase.batch_size / 8
        per_step *= (iteration_gflops(net_cfg, r, fading, 8)
                     / iteration_gflops(measured, r, fading, 8))
        total += per_step * phase.images / phase.batch_size
    return total


def schedule_gflops(net_cfg: NetworkConfig, train_cfg: TrainConfig) -> float:
    return sum(iteration_gflops(net_cfg, p.resolution, p.fading, p.batch_size)
               * p.images / p.batch_size for p in schedule_for(net_cfg, train_cfg).phases)


def gpu_seconds(net_cfg: NetworkConfig, train_cfg: TrainConfig) -> float:
    """An estimate, not a measurement: the schedule's FLOPs at GPU_EFFICIENCY of a
    GPU_NAME's published float32 throughput."""
    return schedule_gflops(net_cfg, train_cfg) / (GPU_TFLOPS * 1e3 * GPU_EFFICIENCY)


def duration(seconds: float) -> str:
    """45 -> '45 s', 1234 -> '21 min', 20000 -> '5.6 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def expected_time(net_cfg: NetworkConfig, train_cfg: TrainConfig) -> str:
    """One phrase for the opening line, --help and the README."""
    gpu = (f"{GPU_NAME}: {duration(gpu_seconds(net_cfg, train_cfg))} or more (an estimate "
           "from the arithmetic alone)")
    cpu = cpu_seconds(net_cfg, train_cfg)
    if cpu is None:
        return f"on {gpu}"
    table = step_table()
    return (f"about {duration(cpu)} on a 2-core CPU ({table['machine']}, measured), "
            f"on {gpu}")
