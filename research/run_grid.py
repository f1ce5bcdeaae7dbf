"""A grid of icons from study runs, one row a run, for the A/B figures of the 256x256 study.

    python -m research.run_grid --out=GRID.png RUN_DIR [RUN_DIR ...]

Each row is 8 icons of the run's EMA generator at its newest checkpoint, at the stage
its own schedule has reached there (research.stages.stage_generator), from the
study's fixed latents (mel_tf.deploy.seeds.latents_for_seed(0, ...)); GRID.txt names
the rows. Icons are shown at their own size, not enlarged.
"""

from __future__ import annotations

import argparse
import sys

ICONS = 8


def row(logdir):
    """(8 icons side by side as one uint8 image, a label) of one run."""
    import numpy as np

    from mel_tf.deploy.seeds import latents_for_seed
    from mel_tf.training.evaluation import generate_uint8
    from mel_tf.training.rundir import load_ema_generator
    from research.stages import stage_generator

    generator, net, train_cfg, shown = load_ema_generator(logdir)
    resolution, alpha = stage_generator(generator, net, train_cfg, shown)
    icons = generate_uint8(generator, latents_for_seed(0, ICONS, net.latent_dim), net)
    label = f"{logdir.rstrip('/')}: {shown:,} images, {resolution}x{resolution}, a = {alpha:.2f}"
    return np.concatenate(list(icons), axis=1), label


def main(argv=None):
    parser = argparse.ArgumentParser(prog="run_grid.py", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="The grid's PNG (labels beside it, .txt).")
    parser.add_argument("runs", nargs="+", help="Run directories, one row each.")
    args = parser.parse_args(argv)
    import numpy as np
    from PIL import Image

    try:
        rows = [row(logdir) for logdir in args.runs]
    except (OSError, ValueError) as e:
        print(f"run_grid.py: error: {e}", file=sys.stderr)
        return 1
    widths = {image.shape[0] for image, _ in rows}
    if len(widths) > 1:
        print(f"run_grid.py: error: the runs are at different resolutions {sorted(widths)}",
              file=sys.stderr)
        return 1
    Image.fromarray(np.concatenate([image for image, _ in rows])).save(args.out)
    with open(args.out.rsplit(".", 1)[0] + ".txt", "w") as f:
        f.write("".join(label + "\n" for _, label in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
