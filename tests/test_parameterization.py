"""The seed preset's parameterization (the source's) and PyTorch's Adam, against numpy."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from mel_tf.training import optimizers
from mel_tf.config import NetworkConfig, preset
from mel_tf.training.layers import EqualizedConv2D, runtime_scale
from mel_tf.training.networks import Discriminator, Generator, initialize, weight_layers
from test_layers import numpy_conv

RNG = np.random.default_rng(1)


def drawn(parameterization, cin=128, filters=64, k=3, seed=0):
    layer = EqualizedConv2D(filters, k, parameterization=parameterization)
    layer.build((None, 8, 8, cin))
    layer.reinitialize(np.random.default_rng(seed))
    return layer, layer.kernel.numpy(), layer.bias.numpy()


@pytest.mark.parametrize("parameterization", ["equalized", "he_input_scale", "plain"])
def test_initial_weight_statistics(parameterization):
    cin, k = 128, 3
    fan_in = cin * k * k
    bound = 1 / math.sqrt(fan_in)
    _, kernel, bias = drawn(parameterization, cin=cin, k=k)
    kernel_std = {"equalized": 1.0, "he_input_scale": math.sqrt(2 / fan_in),
                  "plain": bound / math.sqrt(3)}[parameterization]
    assert kernel.std() == pytest.approx(kernel_std, rel=0.02)
    assert abs(kernel.mean()) < 0.02 * kernel_std
    if parameterization == "plain":
        assert np.abs(kernel).max() <= bound
    if parameterization == "equalized":
        assert not bias.any()
    else:                      # PyTorch's default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        assert np.abs(bias).max() <= bound
        assert np.abs(bias).max() > 0.8 * bound


@pytest.mark.parametrize("parameterization", ["equalized", "he_input_scale", "plain"])
def test_keras_build_draws_the_same_distribution(parameterization):
    _, expected, _ = drawn(parameterization)
    layer = EqualizedConv2D(64, 3, parameterization=parameterization)
    layer.build((None, 8, 8, 128))
    assert layer.kernel.numpy().std() == pytest.approx(expected.std(), rel=0.03)


@pytest.mark.parametrize("parameterization,padding", [("he_input_scale", "reflect"),
                                                      ("he_input_scale", "valid"),
                                                      ("plain", "zero")])
def test_runtime_scale_is_the_sources_input_scale(parameterization, padding):
    # The source's Conv2d multiplies its input by sqrt(2 / C_in) before the conv;
    # its 1x1 convs are plain nn.Conv2d.
    cin, k = 5, 1 if parameterization == "plain" else (4 if padding == "valid" else 3)
    x = RNG.standard_normal((2, 4, 4, cin))
    layer, kernel, bias = drawn(parameterization, cin=cin, filters=7, k=k)
    layer.padding = padding
    scale = math.sqrt(2 / cin) if parameterization == "he_input_scale" else 1.0
    assert layer.scale == pytest.approx(scale)
    assert runtime_scale(parameterization, k, cin, math.sqrt(2)) == pytest.approx(scale)
    expected = numpy_conv(x * scale, kernel.astype(np.float64), bias, padding)
    np.testing.assert_allclose(layer(x.astype(np.float32)).numpy(), expected, rtol=1e-5,
                               atol=1e-5)


def numpy_adam(w, grads, lr=5e-4, b1=0.0, b2=0.99, eps=1e-8):
    """torch.optim.Adam's documented update, in float64, one gradient per step."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return w


def conv_weight_gradient(x, target, scale, k):
    """d/dW of sum(conv_valid(x * scale, W) * target), in numpy."""
    oh = x.shape[1] - k + 1
    return np.stack([np.stack([np.einsum("nhwc,nhwf->cf", scale * x[:, i:i + oh, j:j + oh],
                                         target) for j in range(k)]) for i in range(k)])


def test_adam_step_of_a_conv_matches_pytorch_formula():
    """Two steps of one conv's kernel, plus a second conv that first gets a
    gradient at step 2: its first update uses step count 1, not 2."""
    cin, k = 3, 3
    x = RNG.standard_normal((2, 5, 5, cin)).astype(np.float32)
    targets = [RNG.standard_normal((2, 3, 3, 4)).astype(np.float32) for _ in range(2)]
    layers = []
    for seed in (0, 1):
        layer, _, _ = drawn("he_input_scale", cin=cin, filters=4, k=k, seed=seed)
        layer.padding = "valid"
        layers.append(layer)
    variables = [layers[0].kernel, layers[1].kernel]
    start = [v.numpy().astype(np.float64) for v in variables]
    opt = optimizers.Adam(5e-4, beta_1=0.0, beta_2=0.99, epsilon=1e-8)
    opt.build(variables)
    for step, target in enumerate(targets):
        trained = variables[:1] if step == 0 else variables
        with tf.GradientTape() as tape:
            loss = sum(tf.reduce_sum(layers[i](x) * target) for i in range(len(trained)))
        opt.apply_gradients(zip(tape.gradient(loss, trained), trained))
    scale = math.sqrt(2 / cin)
    g = [conv_weight_gradient(x.astype(np.float64), t, scale, k) for t in targets]
    expected = [numpy_adam(start[0], g), numpy_adam(start[1], g[1:])]
    for var, want, w0 in zip(variables, expected, start):
        # Updates of about lr = 5e-4; float32 weights hold them to ~1e-7.
        np.testing.assert_allclose(var.numpy() - w0, want - w0, rtol=0, atol=3e-7)
        assert np.abs(var.numpy() - w0).max() > 1e-4          # it moved
    # Keras's Adam counts the optimizer's steps: a variable that first gets a
    # gradient at step 1000 (a new stage's layer) moves about 10x further.
    keras_opt = keras.optimizers.Adam(5e-4, beta_1=0.0, beta_2=0.99, epsilon=1e-8)
    late = tf.Variable(start[1].astype(np.float32))
    keras_opt.build([tf.Variable(start[0].astype(np.float32)), late])
    keras_opt.iterations.assign(999)
    keras_opt.apply_gradients([(tf.constant(g[1], tf.float32), late)])
    keras_step = np.abs(late.numpy() - start[1]).mean()
    ours_step = np.abs(numpy_adam(start[1], g[1:]) - start[1]).mean()
    assert keras_step / ours_step == pytest.approx(
        math.sqrt(1 - 0.99 ** 1000) / math.sqrt(1 - 0.99), rel=0.01)


def test_seed_preset_layers_are_parameterized_like_the_source():
    cfg = preset("seed", 16, 1 / 16)
    g, d = Generator(cfg), Discriminator(cfg)
    assert [lay.parameterization for lay in g.to_rgb] == ["plain"] * 3
    assert {f.conv.parameterization for f in d.from_rgb} == {"plain"}
    assert d.head.out.parameterization == "plain"
    convs = [c.conv for block in g.blocks for c in block.convs]
    convs += [d.head.conv0.conv, d.head.conv1.conv]
    assert {c.parameterization for c in convs} == {"he_input_scale"}
    paper = preset("paper", 16, 1 / 16)
    assert {lay.parameterization for net in (Generator(paper), Discriminator(paper))
            for lay in weight_layers(net)} == {"equalized"}


def test_seed_from_rgb_has_no_activation_and_head_4x4_conv_is_pixel_normed():
    cfg = preset("seed", 8, 1 / 16)
    d = Discriminator(cfg)
    initialize(d, 0)
    img = RNG.random((3, 8, 8, 3)).astype(np.float32)
    from_rgb = d.from_rgb[1]
    kernel, bias = from_rgb.conv.kernel.numpy(), from_rgb.conv.bias.numpy()
    expected = numpy_conv(img.astype(np.float64), kernel.astype(np.float64), bias, "zero")
    assert (expected < 0).mean() > 0.2                       # lrelu would change these
    np.testing.assert_allclose(from_rgb(img).numpy(), expected, rtol=1e-5, atol=1e-6)
    h = RNG.standard_normal((3, 4, 4, d.head.conv1.conv.kernel.shape[2])).astype(np.float32)
    y = d.head.conv1(h).numpy()                              # lrelu(pixel_norm(conv(h)))
    u = np.where(y >= 0, y, y / cfg.lrelu_slope)
    np.testing.assert_allclose(np.sqrt((u ** 2).mean(axis=-1)), 1.0, rtol=1e-4)
    paper = Discriminator(preset("paper", 8, 1 / 16))
    initialize(paper, 0)
    out = paper.from_rgb[1](img).numpy()
    assert out.min() < 0 and (out < 0).mean() > 0.1          # lrelu: negatives scaled...
    assert np.abs(out[out < 0]).max() < np.abs(out[out > 0]).max()


def test_configs_without_parameterization_keys_load_as_equalized():
    d = preset("seed", 16, 1 / 16).to_dict()
    for key in ("conv_weights", "rgb_weights", "from_rgb_activation"):
        del d[key]
    cfg = NetworkConfig.from_dict(d)
    assert (cfg.conv_weights, cfg.rgb_weights, cfg.from_rgb_activation) == (
        "equalized", "equalized", True)
    g = Generator(cfg)
    assert g.to_rgb[0].scale == pytest.approx(1 / math.sqrt(g.to_rgb[0].kernel.shape[2]))
    with pytest.raises(ValueError, match="conv_weights"):
        preset("seed", 16).replace(conv_weights="kaiming")


def test_initialize_follows_the_seed_alone():
    cfg = preset("seed", 8, 1 / 16)
    a, b, c = Generator(cfg), Generator(cfg), Generator(cfg)
    initialize(a, 3)
    initialize(b, 3)
    initialize(c, 4)
    for va, vb, vc in zip(a.trainable_variables, b.trainable_variables, c.trainable_variables):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
        assert not np.array_equal(va.numpy(), vc.numpy())
