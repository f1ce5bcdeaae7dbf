"""The exported graph's layout: column pairs and the mean by convolution against numpy,
and the LiteRT generator against the trained one, from the same weights."""

import numpy as np
import pytest
import tensorflow as tf

from mel_tf.config import preset
from mel_tf.training.layers import PARAMETERIZATIONS, EqualizedConv2D, PixelNorm
from mel_tf.deploy.litert_layout import (LITERT_NARROW_CHANNELS, LiteRTGenerator, LiteRTLayout,
                                  column_pairs_conv2d, mean_by_conv)
from mel_tf.training.networks import Generator
from test_layers import numpy_conv, numpy_pixel_norm

RNG = np.random.default_rng(2)


@pytest.mark.parametrize("kernel,padding", [(3, "reflect"), (3, "zero"), (1, "zero")])
def test_column_pairs_conv_matches_numpy(kernel, padding):
    # Width 8 and height 5: reflection at both packed edges, rows unpaired.
    x = RNG.standard_normal((2, 5, 8, 4)).astype(np.float32)
    layer = EqualizedConv2D(3, kernel, padding=padding)
    layer.build(x.shape)
    layer.bias.assign(RNG.standard_normal(3).astype(np.float32))
    w = layer.kernel.numpy().astype(np.float64) * layer.scale
    expected = numpy_conv(x.astype(np.float64), w, layer.bias.numpy(), padding)
    y = column_pairs_conv2d(x, layer.scaled_kernel(), layer.bias, padding)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_column_pairs_need_a_1x1_or_padded_3x3_kernel_and_an_even_width():
    x = np.zeros((1, 4, 6, 2), np.float32)
    for w, padding in ((np.zeros((4, 4, 2, 2), np.float32), "zero"),
                       (np.zeros((3, 3, 2, 2), np.float32), "valid")):
        with pytest.raises(ValueError, match="column pairs"):
            column_pairs_conv2d(x, w, padding=padding)
    with pytest.raises(ValueError, match="width 5"):
        column_pairs_conv2d(x[:, :, :5], np.zeros((3, 3, 2, 2), np.float32))


@pytest.mark.parametrize("style,eps", [("seed", 1e-7), ("paper", 1e-8)])
@pytest.mark.parametrize("column_pairs", [False, True])
def test_pixel_norm_with_the_mean_by_conv_matches_numpy(style, eps, column_pairs):
    x = RNG.standard_normal((2, 3, 4, 8)).astype(np.float32) * 5
    norm = PixelNorm(eps, style)
    y = norm.normalize(x, mean_by_conv(tf.square(x), column_pairs)).numpy()
    np.testing.assert_allclose(y, numpy_pixel_norm(x, style, eps), rtol=1e-5)
    np.testing.assert_allclose(np.mean(y ** 2, axis=-1), 1.0, rtol=1e-4)


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_layout_uses_each_layers_runtime_scale(parameterization):
    x = RNG.standard_normal((2, 6, 6, 8)).astype(np.float32)
    layer = EqualizedConv2D(LITERT_NARROW_CHANNELS, 3, padding="reflect",
                            parameterization=parameterization)
    layer.build(x.shape)
    layer.bias.assign(RNG.standard_normal(LITERT_NARROW_CHANNELS).astype(np.float32))
    layout = LiteRTLayout()
    np.testing.assert_allclose(layout.conv(layer, x).numpy(), layer(x).numpy(),
                               rtol=1e-4, atol=1e-5)
    # The scale is the layer's own, read at call time, never recomputed:
    # tripling it triples the convolution (the bias aside).
    bias = layer.bias.numpy()
    before = layout.conv(layer, x).numpy() - bias
    layer.scale = 3.0 * layer.scale
    np.testing.assert_allclose(layout.conv(layer, x).numpy() - bias, 3.0 * before,
                               rtol=1e-4, atol=1e-5)


def _op_counts(fn, latent_dim):
    graph = tf.function(fn).get_concrete_function(
        tf.TensorSpec([None, latent_dim], tf.float32)).graph
    types = [op.type for op in graph.get_operations()]
    return types.count("Mean"), types.count("Conv2D")


@pytest.mark.parametrize("name,resolution,width,upsampling", [
    ("seed", 32, 1 / 8, "nearest"), ("paper", 128, 1 / 32, "nearest"),
    ("seed", 32, 1 / 8, "bilinear")])
def test_litert_generator_computes_the_trained_function(name, resolution, width, upsampling):
    # These widths, without the channel floor, give 4 or fewer channels in the top
    # blocks (the LiteRT layout there) and more below (the plain one): both are exercised.
    cfg = preset(name, resolution, width=width, min_channels=1, upsampling=upsampling)
    g = Generator(cfg)
    litert = LiteRTGenerator(g)
    assert {id(v) for v in litert.weights} == {id(v) for v in g.weights}
    narrow = [conv.conv.filters <= LITERT_NARROW_CHANNELS for b in g.blocks for conv in b.convs]
    assert any(narrow) and not all(narrow)
    z = RNG.standard_normal((3, cfg.latent_dim)).astype(np.float32)
    for stage in (resolution // 2, resolution):
        g.set_stage(stage)
        k = cfg.resolutions.index(stage)
        narrow_norms = sum(conv.conv.filters <= LITERT_NARROW_CHANNELS
                           for block in g.blocks[:k + 1] for conv in block.convs)
        # Each narrow norm takes its mean by a convolution instead of MEAN.
        means, convs = _op_counts(g, cfg.latent_dim)
        assert _op_counts(litert, cfg.latent_dim) == (means - narrow_norms, convs + narrow_norms)
        # Float rounding differs (another summation order) through up to 12 layers.
        np.testing.assert_allclose(litert(z).numpy(), g(z).numpy(), rtol=1e-4, atol=2e-5)
    g.set_stage(resolution, fading=True)
    g.set_alpha(0.5)
    np.testing.assert_allclose(litert(z).numpy(), g(z).numpy(), rtol=1e-4, atol=2e-5)


def test_litert_generator_needs_a_float32_generator():
    with pytest.raises(ValueError, match="float32"):
        LiteRTGenerator(Generator(preset("seed", 8, width=1 / 32),
                                  dtype_policy="mixed_bfloat16"))
