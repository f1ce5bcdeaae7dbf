"""The growing generator and discriminator.

Each network owns the layers of every stage up to the target resolution, all
built when the network is made, so that a checkpoint and an optimizer see the
same variables at every stage and growing keeps everything learned. The stage
that runs is chosen with `set_stage(resolution, fading)`; the fade-in weight a
lives in a variable (`set_alpha`), so a stage is traced once.

Generator at stage R while fading:
    out = act((1 - a) * up(toRGB[R/2](h[R/2])) + a * toRGB[R](block[R](h[R/2])))
(toRGB is a 1x1 convolution and both upsamplings are linear with weights that sum
to one, so applying it before the upsampling is the same as after it, and cheaper.)
Discriminator at stage R while fading:
    x = (1 - a) * fromRGB[R/2](pool(img)) + a * block[R](fromRGB[R](img))
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mel_tf.config import MIN_RESOLUTION, NetworkConfig, check_resolution
from mel_tf.training.layers import (Downsample2x, EqualizedConv2D, EqualizedDense, FadeIn,
                           MiniBatchStd, PixelNorm, Upsample2x)


# ---- data range: the one place where images change representation -----------

def uint8_to_network(images, cfg: NetworkConfig):
    """uint8 [0, 255] images -> float32 in the preset's data range."""
    lo, hi = cfg.data_range
    return lo + tf.cast(images, tf.float32) * ((hi - lo) / 255.0)


def network_to_uint8(images, cfg: NetworkConfig):
    """Network output in the preset's data range -> uint8 [0, 255], rounded and clipped."""
    lo, hi = cfg.data_range
    x = (tf.cast(images, tf.float32) - lo) * (255.0 / (hi - lo))
    return tf.cast(tf.round(tf.clip_by_value(x, 0.0, 255.0)), tf.uint8)


# ---- building blocks ---------------------------------------------------------

def track_each(owner, attribute: str) -> None:
    """Makes each layer in the list `owner.<attribute>` a checkpoint dependency
    named "<attribute>_<index>", by assigning it to that attribute as well.

    Keras 3 wraps list attributes in its own TrackedList, which
    tf.train.Checkpoint does not follow (keras-team/keras#18398): without this
    the blocks' weights would be left out of every checkpoint.
    """
    for i, layer in enumerate(getattr(owner, attribute)):
        if layer is not None:
            setattr(owner, f"{attribute}_{i}", layer)


class Layout:
    """How a generator block runs its convolutions and pixel norms: each layer called
    as it is, the graph that trains. mel_tf.deploy.litert_layout overrides both to lay out
    the same maths, with the same weights, for the exported graph."""

    def conv(self, layer, x):
        return layer(x)

    def norm(self, layer, x):
        return layer(x)


AS_TRAINED = Layout()


class ConvActNorm(keras.layers.Layer):
    """conv -> [pixel norm] -> [lrelu], or conv -> [lrelu] -> [pixel norm] (paper order)."""

    def __init__(self, filters, kernel_size, cfg: NetworkConfig, pixel_norm: bool,
                 padding=None, upsample=False, activate=True, parameterization=None, **kwargs):
        """`parameterization`: of the convolution (default: cfg.conv_weights)."""
        super().__init__(**kwargs)
        self.conv = EqualizedConv2D(filters, kernel_size, gain=cfg.conv_gain,
                                    padding=padding or cfg.padding, upsample=upsample,
                                    parameterization=parameterization or cfg.conv_weights,
                                    dtype=self.dtype_policy, name="conv")
        self.norm = (PixelNorm(cfg.pixel_norm_eps, cfg.pixel_norm_style, dtype=self.dtype_policy)
                     if pixel_norm else None)
        self.norm_first = cfg.pixel_norm_before_activation
        self.slope = cfg.lrelu_slope if activate else None

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, x, layout: Layout = AS_TRAINED):
        x = layout.conv(self.conv, x)
        if self.norm is not None and self.norm_first:
            x = layout.norm(self.norm, x)
        if self.slope is not None:
            x = tf.nn.leaky_relu(x, self.slope)
        if self.norm is not None and not self.norm_first:
            x = layout.norm(self.norm, x)
        return x


class GeneratorBlock(keras.layers.Layer):
    """[2x upsample] -> conv3x3 -> act -> conv3x3 -> act.

    Nearest upsampling is fused into the first convolution (EqualizedConv2D with
    upsample=True): the same values for 16/36 of its multiply-adds. Bilinear
    upsampling runs as its own layer before it.
    """
    def __init__(self, resolution, cfg: NetworkConfig, **kwargs):
        super().__init__(name=f"g_block_{resolution}", **kwargs)
        cin, cout = cfg.g_block_channels(resolution)
        self.cin = cin
        grows = resolution > MIN_RESOLUTION
        fused = grows and cfg.upsampling == "nearest"
        self.upsample = Upsample2x(cfg.upsampling) if grows and not fused else None
        n_convs = 2 if grows else cfg.g_first_block_convs
        self.convs = [ConvActNorm(cout, 3, cfg, pixel_norm=True, upsample=fused and i == 0,
                                  dtype=self.dtype_policy, name=f"conv{i}")
                      for i in range(n_convs)]
        track_each(self, "convs")

    def build(self, input_shape=None):
        channels = self.cin
        for conv in self.convs:
            conv.build((None, None, None, channels))
            channels = conv.conv.filters

    def call(self, x, layout: Layout = AS_TRAINED):
        if self.upsample is not None:
            x = self.upsample(x)
        for conv in self.convs:
            x = conv(x, layout=layout)
        return x


class DiscriminatorBlock(keras.layers.Layer):
    """conv3x3 -> act -> conv3x3 -> act -> 2x2 average pool."""

    def __init__(self, resolution, cfg: NetworkConfig, **kwargs):
        super().__init__(name=f"d_block_{resolution}", **kwargs)
        self.cin, cmid, cout = cfg.d_block_channels(resolution)
        dt = self.dtype_policy
        self.conv0 = ConvActNorm(cmid, 3, cfg, pixel_norm=cfg.pixel_norm_in_d, dtype=dt,
                                 name="conv0")
        self.conv1 = ConvActNorm(cout, 3, cfg, pixel_norm=cfg.pixel_norm_in_d, dtype=dt,
                                 name="conv1")
        self.pool = Downsample2x()

    def build(self, input_shape=None):
        self.conv0.build((None, None, None, self.cin))
        self.conv1.build((None, None, None, self.conv0.conv.filters))

    def call(self, x):
        return self.pool(self.conv1(self.conv0(x)))


class DiscriminatorHead(keras.layers.Layer):
    """MiniBatchStd -> conv3x3 -> act -> conv4x4 valid (to 1x1) -> act -> 1x1 to a score.

    Pixel norm (where the preset has it in D) follows both convolutions: the
    source's 4x4 convolution is its Conv2d module, which ends in pixel norm.
    """

    def __init__(self, cfg: NetworkConfig, **kwargs):
        super().__init__(name="d_head", **kwargs)
        self.cin, c1, c2 = cfg.d_head_channels
        dt = self.dtype_policy
        self.mbstd = MiniBatchStd(cfg.mbstd_group_size, cfg.mbstd_unbiased, cfg.mbstd_eps,
                                  dtype=dt)
        self.conv0 = ConvActNorm(c1, 3, cfg, pixel_norm=cfg.pixel_norm_in_d, dtype=dt,
                                 name="conv0")
        self.conv1 = ConvActNorm(c2, 4, cfg, pixel_norm=cfg.pixel_norm_in_d, padding="valid",
                                 dtype=dt, name="conv1")
        self.out = EqualizedConv2D(1, 1, gain=1.0, parameterization=cfg.rgb_weights, dtype=dt,
                                   name="score")

    def build(self, input_shape=None):
        self.conv0.build((None, 4, 4, self.cin + 1))
        self.conv1.build((None, 4, 4, self.conv0.conv.filters))
        self.out.build((None, 1, 1, self.conv1.conv.filters))

    def call(self, x, num_sets: int = 1):
        x = self.conv1(self.conv0(self.mbstd(x, num_sets=num_sets)))
        return tf.reshape(tf.cast(self.out(x), tf.float32), [-1, 1])


# ---- the networks --------------------------------------------------------------

class _Progressive(keras.Model):
    """Stage bookkeeping shared by both networks."""

    def __init__(self, cfg: NetworkConfig, dtype_policy: str = "float32", **kwargs):
        """`dtype_policy`: the Keras dtype policy of every layer ("float32", or
        "mixed_bfloat16" for float32 weights with bfloat16 compute)."""
        super().__init__(dtype=dtype_policy, **kwargs)
        self.cfg = cfg
        self.fade = FadeIn(dtype=self.dtype_policy, name="fade")
        self.fade.build()
        self.stage_resolution = cfg.resolution
        self.fading = False

    def set_stage(self, resolution: int, fading: bool = False):
        """Chooses the stage that `call` runs. Fading at 4x4 is meaningless and refused."""
        check_resolution(resolution)
        if resolution > self.cfg.resolution:
            raise ValueError(f"stage {resolution} is above the network's target "
                             f"resolution {self.cfg.resolution}")
        if fading and resolution == MIN_RESOLUTION:
            raise ValueError("the 4x4 stage has nothing to fade from")
        self.stage_resolution = resolution
        self.fading = bool(fading)

    @property
    def alpha(self):
        """The fade-in weight a (a variable)."""
        return self.fade.alpha

    def set_alpha(self, value: float):
        self.fade.alpha.assign(value)

    def _index(self, resolution: int) -> int:
        return self.cfg.resolutions.index(resolution)


class Generator(_Progressive):
    """Latent batch [N, latent_dim] -> images [N, R, R, 3] in the preset's data range."""
    def __init__(self, cfg: NetworkConfig, name: str = "generator", dtype_policy="float32"):
        super().__init__(cfg, dtype_policy=dtype_policy, name=name)
        dt = self.dtype_policy
        if cfg.latent_mode == "dense":
            self.latent_norm = PixelNorm(cfg.pixel_norm_eps, cfg.pixel_norm_style, dtype=dt,
                                         name="latent_norm")
            self.latent_dense = EqualizedDense(16 * cfg.base_channels, gain=cfg.latent_dense_gain,
                                               dtype=dt, name="latent_dense")
            self.latent_dense.build((None, cfg.latent_dim))
            self.latent_act_norm = PixelNorm(cfg.pixel_norm_eps, cfg.pixel_norm_style, dtype=dt,
                                             name="latent_act_norm")
        self.blocks = [GeneratorBlock(r, cfg, dtype=dt) for r in cfg.resolutions]
        self.to_rgb = [EqualizedConv2D(3, 1, gain=cfg.to_rgb_gain, dtype=dt,
                                       parameterization=cfg.rgb_weights, name=f"to_rgb_{r}")
                       for r in cfg.resolutions]
        track_each(self, "blocks")
        track_each(self, "to_rgb")
        for r, block, to_rgb in zip(cfg.resolutions, self.blocks, self.to_rgb):
            block.build()
            to_rgb.build((None, r, r, cfg.g_block_channels(r)[1]))
        self.upsample = Upsample2x(cfg.upsampling)
        self.built = True

    def _latent_to_map(self, z):
        cfg = self.cfg
        if cfg.latent_mode == "reshape":
            return tf.reshape(z, [-1, 4, 4, cfg.base_channels])
        x = self.latent_dense(self.latent_norm(z))
        x = tf.reshape(x, [-1, 4, 4, cfg.base_channels])
        return self.latent_act_norm(tf.nn.leaky_relu(x, cfg.lrelu_slope))

    def call(self, z, layout: Layout = AS_TRAINED):
        """`layout`: how the blocks run their layers (the exported graph's differs)."""
        rgb = self.pre_activation(z, layout)
        if self.cfg.output_activation == "sigmoid":
            rgb = tf.sigmoid(rgb)
        return rgb

    def pre_activation(self, z, layout: Layout = AS_TRAINED):
        """The output before the output activation (float32): the sigmoid's logits
        in the seed preset, the images themselves in the paper preset."""
        k = self._index(self.stage_resolution)
        h = self.blocks[0](self._latent_to_map(z), layout=layout)
        for block in self.blocks[1:k]:
            h = block(h, layout=layout)
        if k == 0:
            rgb = self.to_rgb[0](h)
        else:
            rgb = self.to_rgb[k](self.blocks[k](h, layout=layout))
            if self.fading:
                rgb = self.fade([self.upsample(self.to_rgb[k - 1](h)), rgb])
        return tf.cast(rgb, tf.float32)


class Discriminator(_Progressive):
    """Images [N, R, R, 3] in the preset's data range -> scores [N, 1] (float32)."""
    def __init__(self, cfg: NetworkConfig, name: str = "discriminator",
                 dtype_policy="float32"):
        super().__init__(cfg, dtype_policy=dtype_policy, name=name)
        dt = self.dtype_policy
        self.from_rgb = [ConvActNorm(cfg.d_from_rgb_channels(r), 1, cfg, pixel_norm=False,
                                     activate=cfg.from_rgb_activation,
                                     parameterization=cfg.rgb_weights, dtype=dt,
                                     name=f"from_rgb_{r}")
                         for r in cfg.resolutions]
        # blocks[i] is the block at resolutions[i]; there is none at 4x4 (the head).
        self.blocks = [None] + [DiscriminatorBlock(r, cfg, dtype=dt)
                                for r in cfg.resolutions[1:]]
        self.head = DiscriminatorHead(cfg, dtype=dt)
        track_each(self, "from_rgb")
        track_each(self, "blocks")
        for from_rgb in self.from_rgb:
            from_rgb.build((None, None, None, 3))
        for block in self.blocks[1:]:
            block.build()
        self.head.build()
        self.pool = Downsample2x()
        self.built = True

    def call(self, images, num_sets: int = 1):
        """`num_sets`: the batch stacks that many equal sets scored as if apart
        (MiniBatchStd never mixes them); every other layer is per-sample."""
        k = self._index(self.stage_resolution)
        images = tf.cast(images, self.compute_dtype)
        x = self.from_rgb[k](images)
        if k > 0:
            x = self.blocks[k](x)
            if self.fading:
                x = self.fade([self.from_rgb[k - 1](self.pool(images)), x])
        for block in reversed(self.blocks[1:k]):
            x = block(x)
        return self.head(x, num_sets=num_sets)


def weight_layers(network) -> list:
    """The layers that hold the network's weights (EqualizedConv2D / EqualizedDense)."""
    if isinstance(network, Generator):
        layers = [getattr(network, "latent_dense", None)]
        layers += [c.conv for block in network.blocks for c in block.convs] + network.to_rgb
    else:
        layers = [f.conv for f in network.from_rgb]
        layers += [c.conv for block in network.blocks[1:] for c in (block.conv0, block.conv1)]
        head = network.head
        layers += [head.conv0.conv, head.conv1.conv, head.out]
    return [layer for layer in layers if layer is not None]


def initialize(network: keras.Model, seed: int):
    """Redraws every weight with a given seed, each layer by its parameterization
    (layers.PARAMETERIZATIONS), in the order of the network's variables.

    Keras draws initial weights from an unseeded global generator; a run needs
    its initial weights to follow from its seed alone.
    """
    rng = np.random.default_rng([seed, 0x6d656c])
    owner = {id(layer.kernel): layer for layer in weight_layers(network)}
    for var in network.trainable_variables:
        if id(var) in owner:
            owner[id(var)].reinitialize(rng)


def build_networks(cfg: NetworkConfig, dtype_policy: str = "float32"):
    """A (generator, discriminator) pair for `cfg`, all stages built."""
    return (Generator(cfg, dtype_policy=dtype_policy),
            Discriminator(cfg, dtype_policy=dtype_policy))
