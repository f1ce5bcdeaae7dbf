"""The growing networks: parameter counts, fade-in maths, stage weight sharing."""

import numpy as np
import pytest
import tensorflow as tf

from mel_tf.config import NetworkConfig, preset, resolutions_up_to, source_networks
from mel_tf.training.networks import Generator, build_networks, network_to_uint8, uint8_to_network

RNG = np.random.default_rng(1)


def n_params(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


def test_seed_parameter_counts_match_the_source():
    g, d = build_networks(source_networks(256))
    assert n_params(g.trainable_variables) == 2_361_713
    assert n_params(d.trainable_variables) == 6_562_497
    assert n_params([v for v in g.trainable_variables if "to_rgb" in v.path]) == 1_545
    assert n_params([v for v in d.trainable_variables if "from_rgb" in v.path]) == 2_032


def test_paper_channel_table():
    cfg = preset("paper", 1024, 1.0)
    assert [cfg.features(r) for r in resolutions_up_to(1024)] == [512, 512, 512, 512, 256, 128, 64, 32, 16]
    assert cfg.latent_dim == 512
    assert cfg.g_block_channels(64) == (512, 256)
    assert cfg.d_block_channels(64) == (256, 256, 512)
    seed = source_networks(256)
    assert seed.latent_dim == 8192
    assert seed.g_block_channels(4) == (512, 256) and seed.g_block_channels(256) == (8, 4)
    assert seed.d_block_channels(256) == (4, 8, 8)


def test_width_multiplier_narrows_every_layer():
    cfg = preset("seed", 32, width=1 / 16)
    assert cfg.base_channels == 32 and cfg.latent_dim == 512
    g, d = build_networks(cfg)
    full_g, _ = build_networks(preset("seed", 32, 1.0))
    assert n_params(g.trainable_variables) < n_params(full_g.trainable_variables) / 100


@pytest.mark.parametrize("bad", [3, 0, 2, 6, 2048, 96])
def test_bad_resolution_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="power of two"):
        preset("seed", bad)


def test_unknown_preset_is_an_error():
    with pytest.raises(ValueError, match="preset"):
        preset("nope")


@pytest.mark.parametrize("name", ["seed", "paper"])
def test_shapes_and_ranges_at_every_stage(name):
    cfg = preset(name, 32, width=1 / 32)
    g, d = build_networks(cfg)
    z = RNG.standard_normal((4, cfg.latent_dim)).astype(np.float32)
    for r in cfg.resolutions:
        for fading in ([False, True] if r > 4 else [False]):
            g.set_stage(r, fading)
            d.set_stage(r, fading)
            g.set_alpha(0.5)
            d.set_alpha(0.5)
            x = g(z).numpy()
            assert x.shape == (4, r, r, 3) and x.dtype == np.float32
            if name == "seed":
                assert x.min() > 0.0 and x.max() < 1.0     # sigmoid
            else:
                assert x.min() < 0.0                      # linear output, [-1, 1] data
            s = d(x).numpy()
            assert s.shape == (4, 1) and np.all(np.isfinite(s))


def _upsample(x):
    return x.repeat(2, axis=1).repeat(2, axis=2)


def _pool(x):
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


@pytest.mark.parametrize("name", ["seed", "paper"])
def test_fade_at_zero_is_the_old_stage(name):
    cfg = preset(name, 16, width=1 / 32)
    g, d = build_networks(cfg)
    z = RNG.standard_normal((4, cfg.latent_dim)).astype(np.float32)
    img = RNG.uniform(size=(4, 16, 16, 3)).astype(np.float32)
    g.set_stage(8)
    d.set_stage(8)
    old_g = g(z).numpy()
    old_d = d(_pool(img)).numpy()
    g.set_stage(16, fading=True)
    d.set_stage(16, fading=True)
    g.set_alpha(0.0)
    d.set_alpha(0.0)
    np.testing.assert_allclose(g(z).numpy(), _upsample(old_g), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d(img).numpy(), old_d, rtol=1e-4, atol=1e-5)


def test_fade_at_one_ignores_the_old_path():
    cfg = preset("seed", 16, width=1 / 32)
    g, d = build_networks(cfg)
    z = RNG.standard_normal((4, cfg.latent_dim)).astype(np.float32)
    img = RNG.uniform(size=(4, 16, 16, 3)).astype(np.float32)
    g.set_stage(16, fading=True)
    d.set_stage(16, fading=True)
    g.set_alpha(1.0)
    d.set_alpha(1.0)
    before_g, before_d = g(z).numpy(), d(img).numpy()
    g.to_rgb[1].kernel.assign(g.to_rgb[1].kernel * 3 + 1)        # the old (8x8) toRGB
    d.from_rgb[1].conv.kernel.assign(d.from_rgb[1].conv.kernel * 3 + 1)
    np.testing.assert_array_equal(g(z).numpy(), before_g)
    np.testing.assert_array_equal(d(img).numpy(), before_d)
    # ...while at a = 0.5 the same change does matter.
    g.set_alpha(0.5)
    d.set_alpha(0.5)
    g2 = Generator(cfg)
    for a, b in zip(g2.weights, g.weights):
        a.assign(b)
    g2.set_stage(16, fading=True)
    g2.to_rgb[1].kernel.assign(g2.to_rgb[1].kernel * 0)
    assert np.abs(g2(z).numpy() - g(z).numpy()).max() > 1e-4


def test_growing_keeps_the_learned_weights():
    cfg = preset("seed", 16, width=1 / 32)
    g, d = build_networks(cfg)
    z = RNG.standard_normal((4, cfg.latent_dim)).astype(np.float32)
    g.set_stage(8)
    # "Train" stage 8: one gradient step that changes the stage's weights.
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(g(z) - 0.3))
    grads = tape.gradient(loss, g.trainable_variables)
    for v, gr in zip(g.trainable_variables, grads):
        if gr is not None:
            v.assign_sub(0.1 * gr)
    trained = g(z).numpy()
    # Grow to 16, run it, and come back: stage 8 is unchanged.
    g.set_stage(16, fading=True)
    g.set_alpha(0.3)
    g(z)
    g.set_stage(8)
    np.testing.assert_array_equal(g(z).numpy(), trained)
    # And a generator restored from those weights gives the same stage-8 output.
    g3 = Generator(cfg)
    for a, b in zip(g3.weights, g.weights):
        a.assign(b)
    g3.set_stage(8)
    np.testing.assert_allclose(g3(z).numpy(), trained, rtol=1e-6)


def test_stage_choices_are_validated():
    g = Generator(preset("seed", 16, width=1 / 32))
    with pytest.raises(ValueError, match="nothing to fade"):
        g.set_stage(4, fading=True)
    with pytest.raises(ValueError, match="above"):
        g.set_stage(32)


@pytest.mark.parametrize("name", ["seed", "paper"])
def test_data_range_round_trip(name):
    cfg = preset(name, 8)
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=-1)
    x = uint8_to_network(pixels, cfg).numpy()
    assert x.min() == pytest.approx(cfg.data_range[0]) and x.max() == pytest.approx(cfg.data_range[1])
    np.testing.assert_array_equal(network_to_uint8(x, cfg).numpy(), pixels)


def test_mixed_precision_policy_keeps_float32_weights_and_outputs():
    cfg = preset("seed", 8, width=1 / 32)
    g, d = build_networks(cfg, dtype_policy="mixed_bfloat16")
    assert all(v.dtype == "float32" for v in g.weights)
    z = RNG.standard_normal((2, cfg.latent_dim)).astype(np.float32)
    g.set_stage(8)
    d.set_stage(8)
    x = g(z)
    assert x.dtype == tf.float32 and d(x).dtype == tf.float32
    ref = Generator(cfg)
    for a, b in zip(ref.weights, g.weights):
        a.assign(b)
    ref.set_stage(8)
    np.testing.assert_allclose(x.numpy(), ref(z).numpy(), atol=0.05)


def test_config_round_trips_through_dict():
    cfg = preset("paper", 64, width=0.5)
    assert NetworkConfig.from_dict(cfg.to_dict()) == cfg


def test_checkpoint_round_trip_restores_every_weight(tmp_path):
    cfg = preset("seed", 16, width=1 / 32)
    g, d = build_networks(cfg)
    for v in g.weights + d.weights:
        v.assign(RNG.standard_normal(v.shape).astype(np.float32))
    path = tf.train.Checkpoint(generator=g, discriminator=d).save(str(tmp_path / "ckpt"))
    g2, d2 = build_networks(cfg)
    tf.train.Checkpoint(generator=g2, discriminator=d2).restore(path).assert_consumed()
    for a, b in zip(g.weights + d.weights, g2.weights + d2.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_bilinear_upsampling_changes_no_weight_and_only_the_grown_stages():
    """Both generators hold the same weights; at 4x4 (no upsampling) they agree,
    from 8x8 on the bilinear one differs, its first convolution unfused."""
    nearest, bilinear = (preset("seed", 16, width=1 / 16, upsampling=u)
                         for u in ("nearest", "bilinear"))
    g_near, g_bil = Generator(nearest), Generator(bilinear)
    assert [v.shape for v in g_near.weights] == [v.shape for v in g_bil.weights]
    for a, b in zip(g_near.weights, g_bil.weights):
        b.assign(a)
    assert not any(c.conv.upsample for block in g_bil.blocks for c in block.convs)
    assert g_bil.blocks[1].upsample.mode == "bilinear" and g_bil.upsample.mode == "bilinear"
    z = np.random.default_rng(3).standard_normal((4, nearest.latent_dim)).astype(np.float32)
    for stage, same in ((4, True), (8, False), (16, False)):
        g_near.set_stage(stage)
        g_bil.set_stage(stage)
        diff = np.abs(g_near(z).numpy() - g_bil(z).numpy()).max()
        assert (diff < 1e-6) if same else (diff > 1e-3), (stage, diff)
    with pytest.raises(ValueError, match="upsampling must be one of"):
        preset("seed", 16, upsampling="bicubic")
