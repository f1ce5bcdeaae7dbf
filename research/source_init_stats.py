"""The seed preset's initial weights beside the source's, layer by layer.

    python -m research.source_init_stats --source=PATH/TO/image_generator_2 --out=FILE.json

Draws the source's networks (its code, torch's default initialisation plus its
He-normal convolutions) and mel_tf's seed preset at --resolution, and lists each
weight tensor's standard deviation and largest magnitude in both: the initial
distributions should agree to sampling error (the draws themselves differ).
"""

from __future__ import annotations

import json

from absl import app, flags


flags.DEFINE_string("source", None, "A clone of zassou65535/image_generator_2.", required=True)
flags.DEFINE_integer("resolution", 32, "Resolution of the networks compared.")
flags.DEFINE_integer("seed", 0, "Seed of both draws.")
flags.DEFINE_string("out", None, "JSON file for the rows.")
F = flags.FLAGS


def main(argv):
    del argv
    import math

    import torch
    from research.source_code import SourceRun, import_source, numpy_of, source_pairs

    from mel_tf.config import TrainConfig, source_networks
    from mel_tf.training.progan import ProGAN

    run = SourceRun(torch, import_source(F.source), torch.float32, F.seed)
    model = ProGAN(source_networks(F.resolution), TrainConfig(seed=F.seed))
    rows = []
    for net, param, var in source_pairs(run, model, int(math.log2(F.resolution)) - 1):
        if net == "EMA":
            continue
        theirs, ours = numpy_of(param), var.numpy()
        rows.append({"net": net, "weight": var.path, "size": int(ours.size),
                     "std_source": float(theirs.std()), "std_mel_tf": float(ours.std()),
                     "max_source": float(abs(theirs).max()),
                     "max_mel_tf": float(abs(ours).max())})
        print(f"{net} {var.path:40s} {ours.size:9d}  std {theirs.std():.4f} / "
              f"{ours.std():.4f}  max {abs(theirs).max():.4f} / {abs(ours).max():.4f}")
    if F.out:
        with open(F.out, "w") as f:
            json.dump({"resolution": F.resolution, "seed": F.seed, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
