"""Keras layers of the Progressive GAN (Karras et al. 2018).

Every layer is serialisable (`get_config`) and works inside functional and
subclassed models. Tensors are NHWC.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from mel_tf.config import UPSAMPLINGS, WEIGHT_PARAMETERIZATIONS


def equalized_scale(fan_in: int, gain: float) -> float:
    """Runtime weight scale of the equalized learning rate: gain / sqrt(fan_in)."""
    return gain / math.sqrt(fan_in)


# How a layer's weights are parameterized: what is stored and trained, and
# what multiplies it at run time. Under Adam every weight moves by about the
# learning rate per step whatever its size, and pixel norm makes a layer's
# output independent of its weights' scale, so this choice sets how fast each
# layer learns.
#   "equalized"       Karras et al.: weights N(0, 1), multiplied at run time by
#                     gain / sqrt(k * k * C_in); biases 0.
#   "he_input_scale"  the source's Conv2d (module/base_module.py of
#                     zassou65535/image_generator_2): the input is multiplied by
#                     gain / sqrt(C_in) (its EqualizeLearningRate, gain^2 = 2),
#                     and the weights are He-normal, std gain / sqrt(k * k * C_in)
#                     (kaiming_normal_); biases keep PyTorch's default
#                     U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
#   "plain"           a PyTorch nn.Conv2d as constructed: no scale, weights and
#                     biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform_
#                     with a = sqrt(5)).
# Scaling the input or the kernel by the same constant gives the same output and
# the same weight gradients; the kernel is the smaller tensor, so it is scaled.
PARAMETERIZATIONS = WEIGHT_PARAMETERIZATIONS


def runtime_scale(parameterization: str, kernel_size: int, in_channels: int,
                  gain: float) -> float:
    """The constant that multiplies the stored kernel at run time."""
    if parameterization == "equalized":
        return equalized_scale(kernel_size * kernel_size * in_channels, gain)
    if parameterization == "he_input_scale":
        return gain / math.sqrt(in_channels)
    if parameterization == "plain":
        return 1.0
    raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, "
                     f"got {parameterization!r}")


def weight_distributions(parameterization: str, fan_in: int, gain: float):
    """(kernel, bias) initial distributions, each ("normal", std), ("uniform", bound)
    or ("zeros", 0): the one statement of PARAMETERIZATIONS' initialisation."""
    pytorch_default = ("uniform", 1.0 / math.sqrt(fan_in))
    if parameterization == "equalized":
        return ("normal", 1.0), ("zeros", 0.0)
    if parameterization == "he_input_scale":
        return ("normal", gain / math.sqrt(fan_in)), pytorch_default
    if parameterization == "plain":
        return pytorch_default, pytorch_default
    raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, "
                     f"got {parameterization!r}")


def _draw(distribution, shape, rng: np.random.Generator) -> np.ndarray:
    kind, size = distribution
    if kind == "normal":
        values = rng.standard_normal(shape) * size
    elif kind == "uniform":
        values = rng.uniform(-size, size, shape)
    else:
        values = np.zeros(shape)
    return values.astype(np.float32)


def _keras_initializer(distribution):
    kind, size = distribution
    if kind == "normal":
        return keras.initializers.RandomNormal(0.0, size)
    if kind == "uniform":
        return keras.initializers.RandomUniform(-size, size)
    return keras.initializers.Zeros()


def initial_weights(parameterization: str, kernel_shape, fan_in: int, gain: float,
                    rng: np.random.Generator):
    """(kernel, bias) initial values, float32, drawn from `rng` (see PARAMETERIZATIONS)."""
    kernel, bias = weight_distributions(parameterization, fan_in, gain)
    return _draw(kernel, kernel_shape, rng), _draw(bias, kernel_shape[-1:], rng)


def keras_initializers(parameterization: str, fan_in: int, gain: float):
    """(kernel, bias) Keras initializers with the distributions of `initial_weights`."""
    return tuple(map(_keras_initializer, weight_distributions(parameterization, fan_in, gain)))


class _Parameterized:
    """Redraws a kernel (and bias) by the layer's parameterization."""

    def reinitialize(self, rng: np.random.Generator):
        """Redraws the weights from `rng`, so a run's initial weights follow from its
        seed (Keras draws them from an unseeded global generator)."""
        fan_in = int(np.prod(self.kernel.shape[:-1]))
        kernel, bias = initial_weights(self.parameterization, tuple(self.kernel.shape),
                                       fan_in, self.gain, rng)
        self.kernel.assign(kernel)
        if self.use_bias:
            self.bias.assign(bias)


def _safe_sqrt(x):
    """sqrt(x) whose gradient stays finite at x = 0.

    d sqrt(x)/dx is infinite at 0, and 0 * inf is NaN: a feature vector that is
    exactly zero (pixel norm) or identical over a batch (MiniBatchStd), on a
    path whose upstream gradient is 0 (a new block at a = 0, as at the start of
    every fade), would turn the whole network into NaN. The floor, 1e-20, moves
    no value by more than 1e-10.
    """
    return tf.sqrt(tf.maximum(x, 1e-20))


def _reflect_pad(x, pad: int):
    """Reflection padding (edge not repeated) built from slices and concats.

    Same values as tf.pad(mode="REFLECT"), which becomes LiteRT's MIRROR_PAD:
    an op outside the XNNPACK delegate that splits the on-device graph.
    """
    rows = [x[:, i:i + 1] for i in range(pad, 0, -1)] + [x]
    rows += [x[:, -i - 1:-i] for i in range(1, pad + 1)]
    x = tf.concat(rows, axis=1)
    cols = [x[:, :, i:i + 1] for i in range(pad, 0, -1)] + [x]
    cols += [x[:, :, -i - 1:-i] for i in range(1, pad + 1)]
    return tf.concat(cols, axis=2)


def pad1(x, axis: int, edge: bool):
    """One row (axis 1) or column (axis 2) on each side, by slices and a concat:
    the edge repeated (`edge`), or reflected (the edge not repeated)."""
    def part(start, stop):
        index = [slice(None)] * 4
        index[axis] = slice(start, stop)
        return x[tuple(index)]
    first, last = (part(0, 1), part(-1, None)) if edge else (part(1, 2), part(-2, -1))
    return tf.concat([first, x, last], axis=axis)


def _edge_pad1(x):
    """Pads H and W by one row/column that repeats the edge."""
    return pad1(pad1(x, 1, edge=True), 2, edge=True)


def _upsample_conv3x3_kernel(w):
    """3x3 kernel [3, 3, C, F] -> the 2x2 kernel [2, 2, C, 4F] of its four output phases.

    Nearest 2x upsampling followed by a 3x3 convolution gives output row
    2p + a - 1 from upsampled rows 2p + a - 2 .. 2p + a, that is from input
    rows (p - 1, p - 1, p) for a = 0 and (p - 1, p, p) for a = 1: two taps per
    axis on rows (p - 1, p), (w0 + w1, w2) for a = 0 and (w0, w1 + w2) for
    a = 1. So one 2x2 convolution over the input padded by one pixel gives, at
    position p, output rows 2p - 1 and 2p; depth_to_space then lays them out
    one row and column off, and a crop of one pixel per side is the output.
    The F-channel groups are ordered (a, b) = 00, 01, 10, 11 for depth_to_space.
    """
    def phases(w, axis):
        w0, w1, w2 = tf.unstack(w, axis=axis)
        return (tf.stack([w0 + w1, w2], axis=axis), tf.stack([w0, w1 + w2], axis=axis))
    return tf.concat([k for rows in phases(w, 0) for k in phases(rows, 1)], axis=-1)


@keras.saving.register_keras_serializable(package="mel_tf")
class EqualizedConv2D(_Parameterized, keras.layers.Layer):
    """2-D convolution with a runtime weight scale (the equalized learning rate).

    `parameterization` (PARAMETERIZATIONS): "equalized" (the paper's default:
    N(0, 1) weights multiplied at run time by gain / sqrt(k * k * C_in), so
    that Adam sees every layer at the same scale), "he_input_scale" (the
    source's convolutions) or "plain" (the source's 1x1 convolutions).
    `padding` is "reflect" (the source), "zero" (the paper, 'SAME') or
    "valid" (D's 4x4 -> 1x1 convolution).

    `upsample=True` (3x3, reflect or zero padding): the layer computes
    conv3x3(nearest_upsample_2x(x)) without making the upsampled image, as one
    2x2 convolution at the input's resolution with 4x the filters, one per
    output phase, then depth_to_space: 16 instead of 36 multiply-adds per
    input pixel and filter pair. The padding carries over exactly: reflecting
    an upsampled image by one pixel repeats its edge (reflect -> edge padding
    at the low resolution), and zeros stay zeros. Weights, scale and results
    are those of the unfused layer (tests/test_layers.py).

    The exported graph may lay out the same convolution otherwise
    (mel_tf/litert_layout.py); it reads `kernel`, `bias` and `scale`.
    """

    def __init__(self, filters: int, kernel_size: int, gain: float = math.sqrt(2.0),
                 padding: str = "zero", use_bias: bool = True, upsample: bool = False,
                 parameterization: str = "equalized", **kwargs):
        super().__init__(**kwargs)
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, "
                             f"got {parameterization!r}")
        if padding not in ("reflect", "zero", "valid"):
            raise ValueError(f"padding must be reflect, zero or valid, got {padding!r}")
        if upsample and (kernel_size != 3 or padding == "valid"):
            raise ValueError("upsample=True needs a 3x3 kernel with reflect or zero padding")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.gain = float(gain)
        self.padding = padding
        self.use_bias = use_bias
        self.upsample = bool(upsample)
        self.parameterization = parameterization

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        k = self.kernel_size
        self.scale = runtime_scale(self.parameterization, k, in_channels, self.gain)
        kernel_init, bias_init = keras_initializers(self.parameterization, k * k * in_channels,
                                                    self.gain)
        self.kernel = self.add_weight(name="kernel", shape=(k, k, in_channels, self.filters),
                                      initializer=kernel_init)
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer=bias_init)

    def call(self, x):
        y = self._upsample_conv(x) if self.upsample else self._conv(x)
        if self.use_bias:
            y = y + self.bias
        return y

    def scaled_kernel(self):
        """The kernel as it multiplies the input: the stored one times `scale`."""
        return self.kernel * tf.cast(self.scale, self.kernel.dtype)

    def _conv(self, x):
        """The convolution at the input's resolution (no bias)."""
        pad = self.kernel_size // 2
        mode = "VALID"
        if self.kernel_size > 1 and self.padding == "reflect":
            x = _reflect_pad(x, pad)
        elif self.padding == "zero":
            mode = "SAME"
        w = self.scaled_kernel()
        k = self.kernel_size
        if k == 1:
            # A 1x1 convolution is a matrix product; matmul is faster than conv2d here.
            return tf.einsum("bhwc,cf->bhwf", x, w[0, 0])
        if mode == "VALID" and x.shape[1] == k and x.shape[2] == k:
            # A 'valid' convolution as large as its input (D's 4x4 -> 1x1) is a
            # dense layer; as a matmul its gradients are several times faster.
            y = tf.matmul(tf.reshape(x, [-1, k * k * x.shape[3]]), tf.reshape(w, [-1, self.filters]))
            return tf.reshape(y, [-1, 1, 1, self.filters])
        return tf.nn.conv2d(x, w, strides=1, padding=mode)

    def _upsample_conv(self, x):
        """conv3x3(nearest_upsample_2x(x)) as one 2x2 convolution over four phases (no bias)."""
        if self.padding == "reflect":
            x = _edge_pad1(x)
        else:
            x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        y = tf.nn.conv2d(x, _upsample_conv3x3_kernel(self.scaled_kernel()), strides=1,
                         padding="VALID")                           # [N, H+1, W+1, 4F]
        # Rows and columns -1 .. 2H of the output; the first and last are outside.
        # (One crop after depth_to_space: cutting each phase out of y first took
        # LiteRT over twice as long at 256x256; research/litert_ops_bench.py.)
        return tf.nn.depth_to_space(y, 2)[:, 1:-1, 1:-1]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "gain": self.gain,
                "padding": self.padding, "use_bias": self.use_bias,
                "upsample": self.upsample, "parameterization": self.parameterization}


@keras.saving.register_keras_serializable(package="mel_tf")
class EqualizedDense(_Parameterized, keras.layers.Layer):
    """Dense layer with the equalized learning rate (scale gain / sqrt(fan_in))."""

    def __init__(self, units: int, gain: float = math.sqrt(2.0), use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.gain = float(gain)
        self.use_bias = use_bias
        self.parameterization = "equalized"

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.scale = equalized_scale(fan_in, self.gain)
        kernel_init, bias_init = keras_initializers(self.parameterization, fan_in, self.gain)
        self.kernel = self.add_weight(name="kernel", shape=(fan_in, self.units),
                                      initializer=kernel_init)
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer=bias_init)

    def call(self, x):
        y = tf.matmul(x, self.kernel * tf.cast(self.scale, self.kernel.dtype))
        if self.use_bias:
            y = y + self.bias
        return y

    def get_config(self):
        return {**super().get_config(), "units": self.units, "gain": self.gain,
                "use_bias": self.use_bias}


@keras.saving.register_keras_serializable(package="mel_tf")
class PixelNorm(keras.layers.Layer):
    """Normalises each pixel's feature vector to unit RMS over channels.

    style "seed": x / (sqrt(mean_c(x^2)) + eps)  (the source, eps 1e-7)
    style "paper": x * rsqrt(mean_c(x^2) + eps)  (Karras et al., eps 1e-8)

    The exported graph may take the channel mean otherwise
    (mel_tf/litert_layout.py) and hands it to `normalize`.
    """

    def __init__(self, eps: float = 1e-8, style: str = "paper", **kwargs):
        super().__init__(**kwargs)
        if style not in ("seed", "paper"):
            raise ValueError(f"style must be 'seed' or 'paper', got {style!r}")
        self.eps = float(eps)
        self.style = style

    def call(self, x):
        # The mean of squares is taken in float32 even under bfloat16 compute:
        # it sums many small numbers.
        squares = tf.square(tf.cast(x, tf.float32))
        return self.normalize(x, tf.reduce_mean(squares, axis=-1, keepdims=True))

    def normalize(self, x, mean_square):
        """x scaled to unit RMS, given the float32 mean over channels of its squares."""
        if self.style == "seed":
            inv = 1.0 / (_safe_sqrt(mean_square) + self.eps)
        else:
            inv = tf.math.rsqrt(mean_square + self.eps)
        return x * tf.cast(inv, x.dtype)

    def get_config(self):
        return {**super().get_config(), "eps": self.eps, "style": self.style}


@keras.saving.register_keras_serializable(package="mel_tf")
class MiniBatchStd(keras.layers.Layer):
    """Appends one feature map: the standard deviation of features across a group.

    The batch is split into groups of `group_size` consecutive samples (0: the
    whole batch, as in the source). Per group, the std of every feature over
    the group's samples is averaged over channels and pixels into one scalar,
    which is appended as a constant map to each sample of that group.
    `unbiased` divides by n - 1 (the source) instead of n (the paper).

    A batch that the group size does not divide is an error (ValueError when
    the batch size is known while tracing, a runtime error otherwise) rather
    than a silently different statistic.
    """

    def __init__(self, group_size: int = 4, unbiased: bool = False, eps: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.group_size = int(group_size)
        self.unbiased = bool(unbiased)
        self.eps = float(eps)

    def _group(self, batch):
        """The group size for a batch: static int when possible, else a tensor."""
        if self.group_size == 0:
            return batch
        if isinstance(batch, int):
            group = min(self.group_size, batch)
            if batch % group:
                raise ValueError(
                    f"MiniBatchStd: batch size {batch} is not divisible by the group "
                    f"size {group}; use a batch size that is a multiple of it")
            return group
        return tf.minimum(self.group_size, batch)

    def call(self, x, num_sets: int = 1):
        """`num_sets` > 1: the batch is that many equal sets stacked (say real and
        fake images), and no group spans two sets, so one call over the stack
        gives what a call per set would."""
        static_batch = x.shape[0]
        batch = static_batch if static_batch is not None else tf.shape(x)[0]
        group = self._group(batch // num_sets)
        if isinstance(group, int) and self.unbiased and group < 2:
            raise ValueError("MiniBatchStd (unbiased) needs at least 2 samples per group")
        if not isinstance(group, int):
            tf.debugging.assert_equal(batch % group, 0, message=(
                "MiniBatchStd: batch size is not divisible by the group size"))
        h, w, c = x.shape[1], x.shape[2], x.shape[3]
        xf = tf.cast(x, tf.float32)
        # Groups are runs of consecutive samples, so that a replica holding a
        # contiguous slice of the batch forms the same groups as one device.
        y = tf.reshape(xf, [-1, group, h, w, c])         # [M, G, H, W, C]
        y = y - tf.reduce_mean(y, axis=1, keepdims=True)
        denom = tf.cast(group, tf.float32) - (1.0 if self.unbiased else 0.0)
        var = tf.reduce_sum(tf.square(y), axis=1) / denom  # [M, H, W, C]
        std = _safe_sqrt(var + self.eps)
        stat = tf.repeat(tf.reduce_mean(std, axis=[1, 2, 3]), group)  # [N]
        fmap = tf.ones_like(xf[..., :1]) * stat[:, None, None, None]
        return tf.concat([x, tf.cast(fmap, x.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size,
                "unbiased": self.unbiased, "eps": self.eps}


@keras.saving.register_keras_serializable(package="mel_tf")
class FadeIn(keras.layers.Layer):
    """out = (1 - a) * old + a * new, with a in a non-trainable variable.

    Keeping a in a variable lets the training step be traced once per stage
    while a moves from 0 to 1.
    """

    def __init__(self, alpha: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_alpha = float(alpha)

    def build(self, input_shape=None):
        self.alpha = self.add_weight(
            name="alpha", shape=(), trainable=False,
            initializer=keras.initializers.Constant(self.initial_alpha))

    def call(self, inputs):
        old, new = inputs
        a = tf.cast(self.alpha, old.dtype)
        # This form (not old + a * (new - old)) is exact at both ends: at a = 1
        # the old path has no influence at all, not even through rounding.
        return (1.0 - a) * old + a * new

    def get_config(self):
        return {**super().get_config(), "alpha": self.initial_alpha}


@keras.saving.register_keras_serializable(package="mel_tf")
class Upsample2x(keras.layers.Layer):
    """2x upsampling: nearest-neighbour (each pixel becomes a 2x2 block) or bilinear
    (half-pixel centres, the edge repeated: nearest followed by a [1, 2, 1] / 4 blur
    along each axis)."""

    def __init__(self, mode: str = "nearest", **kwargs):
        super().__init__(**kwargs)
        if mode not in UPSAMPLINGS:
            raise ValueError(f"mode must be nearest or bilinear, got {mode!r}")
        self.mode = mode

    def call(self, x):
        if self.mode == "bilinear":
            # The static size where known: the exported graph's layout needs the width.
            h, w = x.shape[1], x.shape[2]
            size = (2 * h, 2 * w) if h is not None and w is not None else 2 * tf.shape(x)[1:3]
            return tf.image.resize(x, size, method="bilinear")
        # depth_to_space of four copies: one op that LiteRT's XNNPACK delegate
        # runs (a reshape/broadcast_to version splits the .tflite graph).
        return tf.nn.depth_to_space(tf.concat([x, x, x, x], axis=-1), 2)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, 2 * h, 2 * w, c)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="mel_tf")
class Downsample2x(keras.layers.Layer):
    """2x2 average pooling."""

    def call(self, x):
        return tf.nn.avg_pool2d(x, ksize=2, strides=2, padding="VALID")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, h // 2, w // 2, c)
