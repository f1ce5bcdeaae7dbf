"""Keras layers of the Progressive GAN (Karras et al. 2018).

Every layer is serialisable (`get_config`) and works inside functional and
subclassed models. Tensors are NHWC.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf


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
PARAMETERIZATIONS = ("equalized", "he_input_scale", "plain")


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


def initial_weights(parameterization: str, kernel_shape, fan_in: int, gain: float,
                    rng: np.random.Generator):
    """(kernel, bias) initial values, float32, drawn from `rng` (see PARAMETERIZATIONS)."""
    bias_shape = kernel_shape[-1:]
    bound = 1.0 / math.sqrt(fan_in)
    if parameterization == "equalized":
        kernel = rng.standard_normal(kernel_shape)
        bias = np.zeros(bias_shape)
    elif parameterization == "he_input_scale":
        kernel = rng.standard_normal(kernel_shape) * (gain / math.sqrt(fan_in))
        bias = rng.uniform(-bound, bound, bias_shape)
    elif parameterization == "plain":
        kernel = rng.uniform(-bound, bound, kernel_shape)
        bias = rng.uniform(-bound, bound, bias_shape)
    else:
        raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, "
                         f"got {parameterization!r}")
    return kernel.astype(np.float32), bias.astype(np.float32)


def keras_initializers(parameterization: str, fan_in: int, gain: float):
    """(kernel, bias) Keras initializers with the distributions of `initial_weights`."""
    uniform = keras.initializers.RandomUniform(-1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in))
    if parameterization == "equalized":
        return keras.initializers.RandomNormal(0.0, 1.0), keras.initializers.Zeros()
    if parameterization == "he_input_scale":
        return keras.initializers.RandomNormal(0.0, gain / math.sqrt(fan_in)), uniform
    return uniform, uniform


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
    path whose upstream gradient is 0 (a new block at a = 0), turned the whole
    network into NaN in the first step of the demo's 16x16 fade under XLA.
    The floor, 1e-20, moves no value by more than 1e-10.
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


def _pad1(x, axis: int, edge: bool):
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
    return _pad1(_pad1(x, 1, edge=True), 2, edge=True)


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


def _column_pairs_kernel(w):
    """Kernel [k, k, C, F] (k = 1 or 3) -> its kernel over column pairs [k, k, 2C, 2F].

    In the column-pair layout [N, H, W/2, 2C] (a free reshape of NHWC) pixel
    column 2J + t sits in packed column J, channels tC .. tC + C - 1. Output
    column 2J + s reads input column 2J + s + kx - k // 2 = 2(J + dJ) + t, so
    tap (dJ, t, s) of the packed kernel is tap kx = 2 dJ + t - s + k // 2 of
    the original, or zero where that is outside the kernel.
    """
    k = w.shape[0]
    taps = np.zeros((k, 2, 2, k), np.float32)          # [packed tap, t, s, original tap]
    for j in range(k):
        for t in (0, 1):
            for s_ in (0, 1):
                kx = 2 * (j - k // 2) + t - s_ + k // 2
                if 0 <= kx < k:
                    taps[j, t, s_, kx] = 1.0
    packed = tf.einsum("jtsx,yxcf->yjtcsf", tf.constant(taps, w.dtype), w)
    return tf.reshape(packed, [k, k, 2 * w.shape[2], 2 * w.shape[3]])


def _column_pairs_conv2d(x, w, bias=None, reflect: bool = False):
    """conv2d(x, w) + bias ('SAME', or reflection padding) computed over column pairs.

    x [N, H, W, C] is reshaped (no copy) to [N, H, W/2, 2C], convolved with
    `_column_pairs_kernel(w)` and reshaped back. Reflection carries over as row
    reflection plus repeating the packed edge columns: packed column 0 holds
    pixel column 1, which is what reflection puts left of column 0 (likewise on
    the right). The bias is added before reshaping back, where the converter
    folds it into the convolution.
    """
    n, h, wd, c = x.shape
    n = -1 if n is None else n
    x = tf.reshape(x, [n, h, wd // 2, 2 * c])
    mode = "SAME"
    if reflect and w.shape[0] > 1:
        x = _pad1(_pad1(x, 1, edge=False), 2, edge=True)
        mode = "VALID"
    y = tf.nn.conv2d(x, _column_pairs_kernel(w), strides=1, padding=mode)
    if bias is not None:
        y = y + tf.tile(bias, [2])
    return tf.reshape(y, [n, h, wd, w.shape[3]])


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

    `column_pairs=True` (1x1, or 3x3 with reflect or zero padding; for the
    exported graph): the layer computes the same convolution over the input
    reshaped to [N, H, W/2, 2C], pairs of neighbouring columns side by side
    in the channels, with a kernel [k, k, 2C, 2F] built from its own, and
    reshapes back (`_column_pairs_conv2d`). Twice the multiply-adds, but with
    4 channels LiteRT's XNNPACK leaves most of its vector lanes empty, and the
    pairs fill them.
    """

    def __init__(self, filters: int, kernel_size: int, gain: float = math.sqrt(2.0),
                 padding: str = "zero", use_bias: bool = True, upsample: bool = False,
                 column_pairs: bool = False, parameterization: str = "equalized", **kwargs):
        super().__init__(**kwargs)
        runtime_scale(parameterization, 1, 1, 1.0)      # refuses an unknown name
        if padding not in ("reflect", "zero", "valid"):
            raise ValueError(f"padding must be reflect, zero or valid, got {padding!r}")
        if upsample and (kernel_size != 3 or padding == "valid"):
            raise ValueError("upsample=True needs a 3x3 kernel with reflect or zero padding")
        if column_pairs and (upsample or kernel_size not in (1, 3)
                             or kernel_size == 3 and padding == "valid"):
            raise ValueError("column_pairs=True needs a 1x1 kernel, or a 3x3 kernel with "
                             "reflect or zero padding, and no upsampling")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.gain = float(gain)
        self.padding = padding
        self.use_bias = use_bias
        self.upsample = bool(upsample)
        self.column_pairs = bool(column_pairs)
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
        if self.column_pairs:
            return _column_pairs_conv2d(x, self._scaled_kernel(),
                                        self.bias if self.use_bias else None,
                                        reflect=self.padding == "reflect")
        y = self._upsample_conv(x) if self.upsample else self._conv(x)
        if self.use_bias:
            y = y + self.bias
        return y

    def _scaled_kernel(self):
        return self.kernel * tf.cast(self.scale, self.kernel.dtype)

    def _conv(self, x):
        """The convolution at the input's resolution (no bias)."""
        pad = self.kernel_size // 2
        mode = "VALID"
        if self.kernel_size > 1 and self.padding == "reflect":
            x = _reflect_pad(x, pad)
        elif self.padding == "zero":
            mode = "SAME"
        w = self._scaled_kernel()
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
        y = tf.nn.conv2d(x, _upsample_conv3x3_kernel(self._scaled_kernel()), strides=1,
                         padding="VALID")                           # [N, H+1, W+1, 4F]
        # Rows and columns -1 .. 2H of the output; the first and last are outside.
        # (One crop after depth_to_space: cutting each phase out of y first took
        # LiteRT over twice as long at 256x256; research/litert_ops_bench.py.)
        return tf.nn.depth_to_space(y, 2)[:, 1:-1, 1:-1]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "gain": self.gain,
                "padding": self.padding, "use_bias": self.use_bias,
                "upsample": self.upsample, "column_pairs": self.column_pairs,
                "parameterization": self.parameterization}


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

    `mean_by_conv=True` (NHWC inputs): the channel mean is a 1x1 convolution
    with a constant [C, C] matrix of 1/C, so every channel receives the mean
    and the rest is element-wise without broadcasting (with `column_pairs`,
    over EqualizedConv2D's column-pair layout). Same values up to the order
    of summation. It is for the exported graph: over 4 channels at
    256x256 LiteRT's XNNPACK took 1.7-2.5x as long with MEAN, while XLA's
    training step prefers MEAN (research/litert_ops_bench.py).
    """

    def __init__(self, eps: float = 1e-8, style: str = "paper", mean_by_conv: bool = False,
                 column_pairs: bool = False, **kwargs):
        super().__init__(**kwargs)
        if style not in ("seed", "paper"):
            raise ValueError(f"style must be 'seed' or 'paper', got {style!r}")
        if column_pairs and not mean_by_conv:
            raise ValueError("column_pairs=True needs mean_by_conv=True")
        self.eps = float(eps)
        self.style = style
        self.mean_by_conv = bool(mean_by_conv)
        self.column_pairs = bool(column_pairs)

    def call(self, x):
        # The mean of squares is taken in float32 even under bfloat16 compute:
        # it sums many small numbers.
        squares = tf.square(tf.cast(x, tf.float32))
        if self.mean_by_conv and x.shape.rank == 4:
            c = x.shape[-1]
            mean = tf.fill([1, 1, c, c], 1.0 / c)
            ms = (_column_pairs_conv2d(squares, mean) if self.column_pairs
                  else tf.nn.conv2d(squares, mean, strides=1, padding="VALID"))
        else:
            ms = tf.reduce_mean(squares, axis=-1, keepdims=True)
        if self.style == "seed":
            inv = 1.0 / (_safe_sqrt(ms) + self.eps)
        else:
            inv = tf.math.rsqrt(ms + self.eps)
        return x * tf.cast(inv, x.dtype)

    def get_config(self):
        return {**super().get_config(), "eps": self.eps, "style": self.style,
                "mean_by_conv": self.mean_by_conv, "column_pairs": self.column_pairs}


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
    """Nearest-neighbour 2x upsampling (each pixel becomes a 2x2 block)."""

    def call(self, x):
        # depth_to_space of four copies: one op that LiteRT's XNNPACK delegate
        # runs (a reshape/broadcast_to version splits the .tflite graph).
        return tf.nn.depth_to_space(tf.concat([x, x, x, x], axis=-1), 2)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, 2 * h, 2 * w, c)


@keras.saving.register_keras_serializable(package="mel_tf")
class Downsample2x(keras.layers.Layer):
    """2x2 average pooling."""

    def call(self, x):
        return tf.nn.avg_pool2d(x, ksize=2, strides=2, padding="VALID")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, h // 2, w // 2, c)
