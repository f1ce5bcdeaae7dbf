"""mel_tf's training step compiled by XLA against the same step as a TensorFlow graph.

    python -m benchmarks.xla_ab --resolutions=64,128,256 --widths=1.0,0.5 --out=FILE.json

XLA fuses the step into one executable; without it TensorFlow runs each op,
the convolutions in oneDNN's kernels, which spread over the cores differently.
Which is faster depends on the resolution and width, so each resolution runs in a
fresh subprocess that builds both versions of the same model (seed preset, batch
8, random data, the fade at a = 0.5), warms them up and times them in alternating
rounds; the ratio is the median of the per-round ratios graph / XLA (above 1: XLA
is faster).
"""

from __future__ import annotations

from absl import app

from benchmarks.steps import ab_main, define_ab_flags

define_ab_flags("4,8,16,32,64,128,256", ["1.0", "0.5"])
VERSIONS = {"xla": {"jit_compile": True}, "graph": {"jit_compile": False}}
main = ab_main("benchmarks.xla_ab", VERSIONS)


if __name__ == "__main__":
    app.run(main)
