"""mel_tf's training step in bfloat16 compute (float32 weights: `--mixed_precision`,
Execution.dtype_policy) against float32, each as one XLA executable and as a
TensorFlow graph (oneDNN's kernels, which use AVX-512 BF16 where the CPU has it).

    python -m benchmarks.precision_ab --resolutions=64,128,256 --widths=0.5,1.0 --out=FILE.json

bfloat16 halves the bytes each activation moves and, on a CPU with native bfloat16
dot products, doubles the arithmetic per instruction; it also rounds every
activation to 8 bits of mantissa, so it is an option, never the default (the
seed preset's parity with the source is in float32). Each resolution runs in a
fresh subprocess that builds the four versions of the same model (seed preset,
batch 8, random data, the fade at a = 0.5), warms them up and times them in
alternating rounds; each ratio is the median of the per-round ratios version /
float32 XLA (below 1: the version is faster).
"""

from __future__ import annotations

from absl import app

from benchmarks.steps import ab_main, define_ab_flags

define_ab_flags("64,128,256", ["0.5", "1.0"])
BF16 = "mixed_bfloat16"
VERSIONS = {"fp32_xla": {}, "bf16_xla": {"dtype_policy": BF16},
            "fp32_graph": {"jit_compile": False},
            "bf16_graph": {"jit_compile": False, "dtype_policy": BF16}}
main = ab_main("benchmarks.precision_ab", VERSIONS)


if __name__ == "__main__":
    app.run(main)
