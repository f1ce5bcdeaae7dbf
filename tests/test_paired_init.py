"""research/paired_init.py: the pairing of a widened run with its narrow twin."""

import numpy as np

from mel_tf import config
from mel_tf.training.progan import ProGAN


def test_paired_init_leaves_only_the_widened_layers_apart_from_the_narrow_twins_draw():
    from research import paired_init

    # At full width the 16x16 block has 64 channels: a floor of 128 widens it alone.
    narrow = config.preset("seed", 16, 1.0, min_channels=128, widen_to_floor=False)
    wide = narrow.replace(widen_to_floor=True)
    assert (narrow.g_block_channels(16), wide.g_block_channels(16)) == ((128, 64), (128, 128))
    train_cfg = config.TrainConfig(seed=3)
    model, twin = ProGAN(wide, train_cfg), ProGAN(narrow, train_cfg)
    callback = paired_init.paired_init_callback(narrow, train_cfg)
    callback.set_model(model)
    callback.on_train_begin()

    for mine, theirs in ((model.generator, twin.generator),
                         (model.discriminator, twin.discriminator),
                         (model.generator_ema, twin.generator_ema)):
        drawn = {v.path: v.numpy() for v in theirs.weights}
        apart = sorted(v.path for v in mine.weights
                       if not np.array_equal(drawn.get(v.path, np.nan), v.numpy()))
        widened = sorted(v.path for v in mine.weights
                         if v.path not in drawn or drawn[v.path].shape != tuple(v.shape))
        assert widened and apart == widened, mine.name
    # The generator and its EMA start equal, widened layers included.
    for g, ema in zip(model.generator.weights, model.generator_ema.weights):
        np.testing.assert_array_equal(g.numpy(), ema.numpy())
