"""The custom layers against numpy."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from mel_tf.training.layers import (Downsample2x, EqualizedConv2D, EqualizedDense, FadeIn,
                           MiniBatchStd, PixelNorm, Upsample2x, equalized_scale)

RNG = np.random.default_rng(0)


def numpy_conv(x, w, b, pad_mode):
    """Direct 'same'-size convolution (cross-correlation) in float64."""
    k = w.shape[0]
    p = k // 2
    if pad_mode == "reflect":
        x = np.pad(x, [(0, 0), (p, p), (p, p), (0, 0)], mode="reflect")
    elif pad_mode == "zero":
        x = np.pad(x, [(0, 0), (p, p), (p, p), (0, 0)])
    n, h, wd, _ = x.shape
    oh, ow = h - k + 1, wd - k + 1
    out = np.zeros((n, oh, ow, w.shape[-1]))
    for i in range(k):
        for j in range(k):
            out += np.einsum("nhwc,cf->nhwf", x[:, i:i + oh, j:j + ow], w[i, j])
    return out + b


@pytest.mark.parametrize("kernel,padding", [(3, "reflect"), (3, "zero"), (1, "zero"), (4, "valid")])
def test_equalized_conv_matches_numpy(kernel, padding):
    x = RNG.standard_normal((2, 6, 6, 5)).astype(np.float32)
    layer = EqualizedConv2D(7, kernel, gain=math.sqrt(2), padding=padding)
    y = layer(x).numpy()
    layer.bias.assign(RNG.standard_normal(7).astype(np.float32))
    y = layer(x).numpy()
    w = layer.kernel.numpy().astype(np.float64) * math.sqrt(2) / math.sqrt(kernel * kernel * 5)
    expected = numpy_conv(x.astype(np.float64), w, layer.bias.numpy(), padding)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding", ["reflect", "zero"])
@pytest.mark.parametrize("shape", [(2, 4, 4, 5), (1, 3, 6, 2)])
def test_fused_upsample_conv_equals_upsample_then_conv(padding, shape):
    # Against numpy on the upsampled image (np.pad 'reflect' at 2x resolution),
    # and against the unfused layer with the same weights, values and gradients.
    x = RNG.standard_normal(shape).astype(np.float32)
    fused = EqualizedConv2D(6, 3, padding=padding, upsample=True)
    plain = EqualizedConv2D(6, 3, padding=padding)
    fused.build(x.shape)
    plain.build(x.shape)
    plain.kernel.assign(fused.kernel)
    bias = RNG.standard_normal(6).astype(np.float32)
    fused.bias.assign(bias)
    plain.bias.assign(bias)
    up = x.repeat(2, axis=1).repeat(2, axis=2)
    w = fused.kernel.numpy().astype(np.float64) * fused.scale
    expected = numpy_conv(up.astype(np.float64), w, bias, padding)
    xt = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(xt)
        y_fused = fused(xt)
        y_plain = plain(Upsample2x()(xt))
        loss_fused = tf.reduce_sum(tf.sin(y_fused))
        loss_plain = tf.reduce_sum(tf.sin(y_plain))
    assert y_fused.shape == (shape[0], 2 * shape[1], 2 * shape[2], 6)
    np.testing.assert_allclose(y_fused.numpy(), expected, rtol=1e-4, atol=1e-4)
    for a, b in ((fused.kernel, plain.kernel), (xt, xt)):
        np.testing.assert_allclose(tape.gradient(loss_fused, a).numpy(),
                                   tape.gradient(loss_plain, b).numpy(), rtol=1e-4, atol=1e-4)


def test_fused_upsample_needs_a_padded_3x3_kernel():
    with pytest.raises(ValueError, match="3x3"):
        EqualizedConv2D(4, 1, upsample=True)
    with pytest.raises(ValueError, match="3x3"):
        EqualizedConv2D(4, 3, padding="valid", upsample=True)


@pytest.mark.parametrize("kernel,cin", [(1, 16), (3, 16), (3, 512)])
def test_equalized_scale_is_gain_over_sqrt_fan_in(kernel, cin):
    layer = EqualizedConv2D(64, kernel, gain=math.sqrt(2))   # >= 1024 weights: a stable std
    layer.build((None, 8, 8, cin))
    assert layer.scale == pytest.approx(math.sqrt(2) / math.sqrt(kernel * kernel * cin))
    # Weights are N(0, 1): the scale is applied at run time, not at initialisation.
    assert abs(float(np.std(layer.kernel.numpy())) - 1.0) < 0.2


def test_equalized_dense_scale_and_output():
    layer = EqualizedDense(9, gain=math.sqrt(2) / 4)
    x = RNG.standard_normal((3, 32)).astype(np.float32)
    y = layer(x).numpy()
    assert layer.scale == pytest.approx(math.sqrt(2) / 4 / math.sqrt(32))
    assert equalized_scale(32, 1.0) == pytest.approx(1 / math.sqrt(32))
    np.testing.assert_allclose(y, x @ (layer.kernel.numpy() * layer.scale), rtol=1e-5, atol=1e-5)


def numpy_pixel_norm(x, style, eps):
    ms = np.mean(x.astype(np.float64) ** 2, axis=-1, keepdims=True)
    return x / (np.sqrt(ms) + eps) if style == "seed" else x / np.sqrt(ms + eps)


@pytest.mark.parametrize("style,eps", [("seed", 1e-7), ("paper", 1e-8)])
def test_pixel_norm_matches_numpy(style, eps):
    x = RNG.standard_normal((2, 3, 4, 8)).astype(np.float32) * 5
    y = PixelNorm(eps, style)(x).numpy()
    np.testing.assert_allclose(y, numpy_pixel_norm(x, style, eps), rtol=1e-5)
    np.testing.assert_allclose(np.mean(y ** 2, axis=-1), 1.0, rtol=1e-4)


def numpy_mbstd(x, group, unbiased, eps):
    n = x.shape[0]
    group = n if group == 0 else min(group, n)
    stats = []
    for start in range(0, n, group):
        g = x[start:start + group].astype(np.float64)
        var = g.var(axis=0, ddof=1 if unbiased else 0)
        stats += [np.mean(np.sqrt(var + eps))] * group
    fmap = np.broadcast_to(np.array(stats)[:, None, None, None], x.shape[:3] + (1,))
    return np.concatenate([x, fmap], axis=-1)


@pytest.mark.parametrize("group,unbiased,eps", [(0, True, 0.0), (4, False, 1e-8), (2, False, 1e-8)])
def test_minibatch_std_matches_numpy(group, unbiased, eps):
    x = RNG.standard_normal((8, 4, 4, 6)).astype(np.float32)
    y = MiniBatchStd(group, unbiased, eps)(x).numpy()
    np.testing.assert_allclose(y, numpy_mbstd(x, group, unbiased, eps), rtol=1e-5, atol=1e-6)


def test_minibatch_std_refuses_indivisible_batch():
    x = np.zeros((6, 4, 4, 2), np.float32)
    with pytest.raises(ValueError, match="not divisible"):
        MiniBatchStd(4)(x)
    # A batch smaller than the group uses the whole batch, as the official code does.
    y = MiniBatchStd(4)(np.ones((2, 4, 4, 2), np.float32)).numpy()
    np.testing.assert_allclose(y[..., -1], math.sqrt(1e-8), rtol=1e-3)


def test_fade_in_endpoints_and_midpoint():
    old = RNG.standard_normal((2, 4, 4, 3)).astype(np.float32)
    new = RNG.standard_normal((2, 4, 4, 3)).astype(np.float32)
    fade = FadeIn(alpha=0.0)
    np.testing.assert_array_equal(fade([old, new]).numpy(), old)
    fade.alpha.assign(1.0)
    np.testing.assert_allclose(fade([old, new]).numpy(), new, atol=1e-7)
    fade.alpha.assign(0.25)
    np.testing.assert_allclose(fade([old, new]).numpy(), 0.75 * old + 0.25 * new, rtol=1e-6)
    assert not fade.alpha.trainable


def test_upsample_and_downsample_match_numpy():
    x = RNG.standard_normal((2, 3, 5, 4)).astype(np.float32)
    up = Upsample2x()(x).numpy()
    np.testing.assert_array_equal(up, x.repeat(2, axis=1).repeat(2, axis=2))
    down = Downsample2x()(up).numpy()
    np.testing.assert_allclose(down, x, rtol=1e-6)
    y = RNG.standard_normal((1, 4, 4, 1)).astype(np.float32)
    expected = y.reshape(1, 2, 2, 2, 2, 1).mean(axis=(2, 4))
    np.testing.assert_allclose(Downsample2x()(y).numpy(), expected, rtol=1e-6)


def test_bilinear_upsample_is_nearest_then_a_121_blur_with_the_edge_repeated():
    x = RNG.standard_normal((2, 3, 5, 4)).astype(np.float64)
    near = np.pad(x.repeat(2, axis=1).repeat(2, axis=2), [(0, 0), (1, 1), (1, 1), (0, 0)],
                  mode="edge")
    rows = (near[:, :-2] + 2 * near[:, 1:-1] + near[:, 2:]) / 4
    expected = (rows[:, :, :-2] + 2 * rows[:, :, 1:-1] + rows[:, :, 2:]) / 4
    up = Upsample2x("bilinear")(x.astype(np.float32)).numpy()
    np.testing.assert_allclose(up, expected, rtol=1e-5, atol=1e-6)
    # Each output pixel is 9/16, 3/16, 3/16, 1/16 of its four nearest inputs: an
    # input's 2x2 block differs within, where nearest copies one value into it.
    assert up[0, 2, 2, 0] == pytest.approx((9 * x[0, 1, 1, 0] + 3 * x[0, 0, 1, 0]
                                            + 3 * x[0, 1, 0, 0] + x[0, 0, 0, 0]) / 16, rel=1e-5)
    with pytest.raises(ValueError, match="nearest or bilinear"):
        Upsample2x("bicubic")


@pytest.mark.parametrize("layer", [
    EqualizedConv2D(5, 3, gain=2.0, padding="reflect"),
    EqualizedConv2D(5, 3, padding="zero", upsample=True), EqualizedConv2D(5, 1, padding="reflect"),
    EqualizedDense(4, gain=0.5), PixelNorm(1e-7, "seed"), MiniBatchStd(4, True, 0.0), FadeIn(0.3),
    Upsample2x(), Upsample2x("bilinear"), Downsample2x()])
def test_layers_round_trip_through_get_config(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is type(layer)


def test_layers_work_in_a_functional_model():
    inputs = keras.Input((4, 4, 3))
    x = EqualizedConv2D(8, 3, padding="reflect")(inputs)
    x = PixelNorm()(x)
    x = MiniBatchStd(2)(x)
    x = Upsample2x()(x)
    x = Downsample2x()(x)
    model = keras.Model(inputs, x)
    y = model(RNG.standard_normal((4, 4, 4, 3)).astype(np.float32))
    assert y.shape == (4, 4, 4, 9)


@pytest.mark.parametrize("jit", [False, True])
def test_zero_features_give_finite_gradients_at_zero_weight(jit):
    # A new block at a = 0: its output is multiplied by 0, and a pixel whose
    # features are all 0 (pixel norm) or equal over the batch (MiniBatchStd)
    # must still give a zero, not NaN, gradient (0 * inf is NaN).
    x = np.zeros((4, 4, 4, 8), np.float32)
    x[:, :2] = RNG.standard_normal((4, 2, 4, 8))
    norm, mbstd = PixelNorm(1e-7, "seed"), MiniBatchStd(0, unbiased=True, eps=0.0)

    @tf.function(jit_compile=jit)
    def grads(x):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = 0.0 * tf.reduce_sum(mbstd(norm(x)) ** 2)
            g = inner.gradient(y, x)
            penalty = tf.reduce_sum(tf.square(g))
        return g, outer.gradient(penalty, x)

    first, second = grads(tf.constant(x))
    assert np.all(first.numpy() == 0) and np.all(second.numpy() == 0)
