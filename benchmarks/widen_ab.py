"""mel_tf's training step with the channel floor widening the 256x256 block
(NetworkConfig.widen_to_floor, the default: 8 channels, not full width's 4) against
the narrow block (full width's 4 channels).

    python -m benchmarks.widen_ab --resolutions=256 --widths=0.5,1.0 --out=FILE.json

Widening adds arithmetic, but it also turns the block's mixed 8:4 and 4:8
convolutions into 8:8 ones, which XLA runs faster (benchmarks/conv_channels.py).
Each resolution runs in a fresh subprocess that builds both models (seed preset,
batch 8, random data, the fade at a = 0.5), warms them up and times them in
alternating rounds; the ratio is the median of the per-round ratios widened /
narrow (below 1: widening is faster).
"""

from __future__ import annotations

from absl import app

from benchmarks.steps import ab_main, define_ab_flags

define_ab_flags("256", ["0.5", "1.0"])
VERSIONS = {"narrow": {"widen_to_floor": False}, "widened": {"widen_to_floor": True}}
main = ab_main("benchmarks.widen_ab", VERSIONS)


if __name__ == "__main__":
    app.run(main)
