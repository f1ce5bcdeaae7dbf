"""The exported generator: the trained function and weights, with ops laid out for LiteRT.

`LiteRTGenerator(generator)` computes a trained float32 `Generator` at its
current stage, reading that generator's variables and each layer's runtime
`scale`, but lays out the block layers of LITERT_NARROW_CHANNELS channels or
fewer for LiteRT's XNNPACK delegate, as measured by research/litert_ops_bench.py
(one thread; figures in docs/performance.md):
- the pixel norm's channel mean as a 1x1 convolution with a constant [C, C]
  matrix of 1/C, so every channel receives the mean and the rest is
  element-wise without broadcasting: over 4 channels XNNPACK's MEAN is the
  slower, from 16 up the faster, and at 8 neither wins reliably;
- 3x3 convolutions and norms over pairs of neighbouring columns, which fill
  vector lanes that 4 channels leave empty (toRGB gains nothing, stays NHWC).
Training keeps the plain graph: under XLA a norm's forward and backward pass
is slower with the convolution. The fused upsample-convolution and the
slice-built padding belong to the training graph too (mel_tf/layers.py).
Export checks the laid-out graph against the trained one within 1/255.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mel_tf.training.layers import EqualizedConv2D, PixelNorm, pad1
from mel_tf.training.networks import Layout

LITERT_NARROW_CHANNELS = 4


def column_pairs_kernel(w):
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


def column_pairs_conv2d(x, w, bias=None, padding: str = "zero"):
    """conv2d(x, w) + bias, 'same' size with zero or reflect padding, over column pairs.

    x [N, H, W, C] (W even) is reshaped (no copy) to [N, H, W/2, 2C], convolved
    with `column_pairs_kernel(w)` and reshaped back. Reflection carries over as
    row reflection plus repeating the packed edge columns: packed column 0
    holds pixel column 1, which is what reflection puts left of column 0
    (likewise on the right). The bias is added before reshaping back, where the
    converter folds it into the convolution.
    """
    n, h, wd, c = x.shape
    if w.shape[0] not in (1, 3) or padding not in ("zero", "reflect") or wd % 2:
        raise ValueError(f"column pairs need a 1x1 or 3x3 kernel, zero or reflect padding "
                         f"and an even width; got {w.shape[0]}x{w.shape[0]}, {padding}, "
                         f"width {wd}")
    n = -1 if n is None else n
    x = tf.reshape(x, [n, h, wd // 2, 2 * c])
    mode = "SAME"
    if padding == "reflect" and w.shape[0] > 1:
        x = pad1(pad1(x, 1, edge=False), 2, edge=True)
        mode = "VALID"
    y = tf.nn.conv2d(x, column_pairs_kernel(w), strides=1, padding=mode)
    if bias is not None:
        y = y + tf.tile(bias, [2])
    return tf.reshape(y, [n, h, wd, w.shape[3]])


def mean_by_conv(x, column_pairs: bool = False):
    """mean over channels of x [N, H, W, C], broadcast to all C, as a 1x1 convolution
    with a [C, C] matrix of 1/C (over column pairs with `column_pairs`)."""
    c = x.shape[-1]
    mean = tf.fill([1, 1, c, c], 1.0 / c)
    if column_pairs:
        return column_pairs_conv2d(x, mean)
    return tf.nn.conv2d(x, mean, strides=1, padding="VALID")


class LiteRTLayout(Layout):
    """Layers of a generator block with LITERT_NARROW_CHANNELS channels or fewer run
    over column pairs, the pixel norm's mean by convolution; wider ones as trained.
    The fused upsample-convolution keeps its own layout (it doubles the width)."""

    def conv(self, layer: EqualizedConv2D, x):
        if layer.filters > LITERT_NARROW_CHANNELS or layer.upsample:
            return layer(x)
        return column_pairs_conv2d(x, layer.scaled_kernel(),
                                   layer.bias if layer.use_bias else None, layer.padding)

    def norm(self, layer: PixelNorm, x):
        if x.shape.rank != 4 or x.shape[-1] > LITERT_NARROW_CHANNELS:
            return layer(x)
        squares = tf.square(tf.cast(x, tf.float32))
        return layer.normalize(x, mean_by_conv(squares, column_pairs=True))


class LiteRTGenerator(keras.layers.Layer):
    """A float32 `Generator`'s function at its current stage, laid out by LiteRTLayout.

    It owns no weights: it reads the generator's, so it always computes what the
    generator does now. `cfg` is the generator's (export reads the latent size).
    """

    def __init__(self, generator, **kwargs):
        if generator.dtype_policy.name != "float32":
            raise ValueError(f"the LiteRT layout needs a float32 generator, not "
                             f"{generator.dtype_policy.name}")
        super().__init__(name=f"{generator.name}_litert", **kwargs)
        self.generator = generator
        self.cfg = generator.cfg
        self.layout = LiteRTLayout()
        self.built = True

    def call(self, z):
        return self.generator(z, layout=self.layout)
