"""The whole configuration of a mel_tf network, in one place.

A `NetworkConfig` states everything that shapes the generator and the
discriminator: the preset's architecture (the source's, "Mel Icon Generator v2",
zassou65535/image_generator_2; or Karras et al. 2018's), the target resolution, the
channel width and the data range. `TrainConfig`, `DataConfig` and `LoopOptions` state
the rest of a run; their field defaults are the programs' defaults.  Library code takes a
config object; only the entry scripts read flags.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Optional, Tuple

PRESETS = ("seed", "paper")
# How weights may be parameterized (mel_tf.layers.PARAMETERIZATIONS says what each
# means); stated here so that reading a config needs no Keras.
WEIGHT_PARAMETERIZATIONS = ("equalized", "he_input_scale", "plain")
MIN_RESOLUTION = 4
MAX_RESOLUTION = 1024


def check_resolution(resolution: int) -> int:
    """Returns `resolution` if it is a power of two in [4, 1024], else raises ValueError."""
    if (not isinstance(resolution, int) or resolution < MIN_RESOLUTION
            or resolution > MAX_RESOLUTION or resolution & (resolution - 1)):
        raise ValueError(
            f"resolution must be a power of two from {MIN_RESOLUTION} to "
            f"{MAX_RESOLUTION}, got {resolution!r}")
    return resolution


def resolutions_up_to(target: int) -> Tuple[int, ...]:
    """4, 8, ..., target."""
    check_resolution(target)
    return tuple(2 ** k for k in range(2, int(math.log2(target)) + 1))


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Architecture of both networks. Build one with `preset(name, ...)`."""

    preset: str = "seed"
    resolution: int = 256
    # Channel widths are multiplied by this (and rounded, at least 1) so that
    # tests and CPU demos can run narrow networks of the same shape.
    width: float = 1.0
    # Seed: the latent is reshaped to 4x4xC; paper: pixel-normalised and sent
    # through an equalized dense layer to 4x4xC.
    latent_mode: str = "reshape"          # "reshape" | "dense"
    # Convolutions in G's 4x4 block (seed 2, paper 1 after the dense layer).
    g_first_block_convs: int = 2
    padding: str = "reflect"              # "reflect" | "zero"
    pixel_norm_in_d: bool = True
    # "seed": x / (sqrt(mean_c x^2) + eps); "paper": x * rsqrt(mean_c x^2 + eps)
    pixel_norm_style: str = "seed"
    pixel_norm_eps: float = 1e-7
    # The source normalises before the activation, the paper after it.
    pixel_norm_before_activation: bool = True
    # 0 means the whole batch (the source); the paper uses 4.
    mbstd_group_size: int = 0
    mbstd_unbiased: bool = True
    mbstd_eps: float = 0.0
    output_activation: str = "sigmoid"    # "sigmoid" | "linear"
    data_range: Tuple[float, float] = (0.0, 1.0)
    conv_gain: float = math.sqrt(2.0)
    to_rgb_gain: float = 1.0
    # How weights are parameterized and initialised (layers.PARAMETERIZATIONS):
    # the 3x3 and 4x4 convolutions, and the 1x1 ones (toRGB, fromRGB, D's score).
    # Seed: the source's He-initialised weights behind an input scale, and
    # PyTorch's default 1x1 convolutions; paper: the equalized learning rate.
    conv_weights: str = "he_input_scale"
    rgb_weights: str = "plain"
    # lrelu after fromRGB: the paper has it, the source does not.
    from_rgb_activation: bool = False
    latent_dense_gain: float = math.sqrt(2.0) / 4.0
    lrelu_slope: float = 0.2
    # Keras dtype policy name for every layer: "float32" or "mixed_bfloat16" /
    # "mixed_float16" (float32 weights, low-precision compute).
    dtype_policy: str = "float32"

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {self.preset!r}")
        check_resolution(self.resolution)
        if not self.width > 0:
            raise ValueError(f"width must be positive, got {self.width}")
        if self.padding not in ("reflect", "zero"):
            raise ValueError(f"padding must be 'reflect' or 'zero', got {self.padding!r}")
        if self.mbstd_group_size < 0 or self.mbstd_group_size == 1 and self.mbstd_unbiased:
            raise ValueError(f"invalid mbstd_group_size {self.mbstd_group_size}")
        for name in ("conv_weights", "rgb_weights"):
            if getattr(self, name) not in WEIGHT_PARAMETERIZATIONS:
                raise ValueError(f"{name} must be one of {WEIGHT_PARAMETERIZATIONS}, "
                                 f"got {getattr(self, name)!r}")

    # ---- channel tables -------------------------------------------------
    def _scaled(self, channels: float) -> int:
        return max(1, int(round(channels * self.width)))

    def features(self, resolution: int) -> int:
        """Feature maps of the blocks at `resolution` (before width scaling).

        Seed: halves as the side doubles, 256 at 4x4 ... 4 at 256x256.
        Paper: min(8192 / 2^k, 512) for stage k (4x4 is k = 1).
        """
        if self.preset == "seed":
            return max(1, 1024 // resolution)
        return min(16384 // resolution, 512)

    @property
    def base_channels(self) -> int:
        """Channels of the 4x4 latent map and of D's 4x4 head (512 in both presets)."""
        return self._scaled(512)

    @property
    def latent_dim(self) -> int:
        if self.latent_mode == "reshape":
            return self.base_channels * 16
        return self._scaled(512)

    def g_block_channels(self, resolution: int) -> Tuple[int, int]:
        """(input channels, output channels) of G's block at `resolution`."""
        out = self._scaled(self.features(resolution))
        if resolution == MIN_RESOLUTION:
            return self.base_channels, out
        return self._scaled(self.features(resolution // 2)), out

    def d_block_channels(self, resolution: int) -> Tuple[int, int, int]:
        """(input, middle, output) channels of D's block at `resolution` > 4.

        Seed: the first conv changes the width (4 -> 8 -> 8 at 256);
        paper: the second does (f(r) -> f(r) -> f(r/2)).
        """
        cin = self._scaled(self.features(resolution))
        cout = self._scaled(self.features(resolution // 2))
        if self.preset == "seed":
            return cin, cout, cout
        return cin, cin, cout

    def d_from_rgb_channels(self, resolution: int) -> int:
        return self._scaled(self.features(resolution))

    @property
    def d_head_channels(self) -> Tuple[int, int, int]:
        """(input, after conv3x3, after conv4x4) channels of D's 4x4 head."""
        return (self._scaled(self.features(MIN_RESOLUTION)), self.base_channels,
                self.base_channels)

    @property
    def resolutions(self) -> Tuple[int, ...]:
        return resolutions_up_to(self.resolution)

    def replace(self, **changes) -> "NetworkConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["data_range"] = list(self.data_range)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "NetworkConfig":
        # A config.json without the parameterization keys describes a generator
        # that was equalized everywhere; it loads (and exports) as it was trained.
        d = {**_UNPARAMETERIZED, **d}
        d["data_range"] = tuple(d["data_range"])
        return cls(**d)


_UNPARAMETERIZED = {"conv_weights": "equalized", "rgb_weights": "equalized",
                    "from_rgb_activation": True}


def preset(name: str, resolution: int = 256, width: float = 1.0,
           dtype_policy: str = "float32", mbstd_group_size: Optional[int] = None) -> NetworkConfig:
    """The `seed` (the source's) or `paper` (Karras et al.) architecture."""
    if name == "seed":
        cfg = NetworkConfig(preset="seed", resolution=resolution, width=width,
                            dtype_policy=dtype_policy)
    elif name == "paper":
        cfg = NetworkConfig(
            preset="paper", resolution=resolution, width=width,
            latent_mode="dense", g_first_block_convs=1, padding="zero",
            pixel_norm_in_d=False, pixel_norm_style="paper", pixel_norm_eps=1e-8,
            pixel_norm_before_activation=False,
            mbstd_group_size=4, mbstd_unbiased=False, mbstd_eps=1e-8,
            output_activation="linear", data_range=(-1.0, 1.0),
            conv_weights="equalized", rgb_weights="equalized", from_rgb_activation=True,
            dtype_policy=dtype_policy)
    else:
        raise ValueError(f"preset must be one of {PRESETS}, got {name!r}")
    if mbstd_group_size is not None:
        cfg = cfg.replace(mbstd_group_size=mbstd_group_size)
    return cfg


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything about how a run trains (the networks are in NetworkConfig)."""

    seed: int = 0
    # Schedule, in images shown (7500 iterations of batch 8 = 60,000).
    fade_images: int = 60_000
    stable_images: int = 60_000
    stable_every_resolution: bool = False     # paper: True; the source: only at the target
    batch_size: int = 8
    batch_sizes: Tuple[Tuple[int, int], ...] = ()          # ((resolution, batch), ...)
    learning_rate: float = 5e-4
    learning_rates: Tuple[Tuple[int, float], ...] = ()     # ((resolution, lr), ...)
    final_learning_rate: Optional[float] = None            # for the last phase
    fade_real_images: bool = False            # the paper blends reals too; the source does not
    # Adam and the losses.
    adam_beta1: float = 0.0
    adam_beta2: float = 0.99
    adam_epsilon: float = 1e-8
    gp_weight: float = 10.0
    drift_weight: float = 0.001
    critic_steps: int = 1
    # Generator EMA: decay min(1 - 1/(t+1), ema_decay) with ramp-up (the source),
    # else the constant ema_decay (the paper: 0.999).
    ema_decay: float = 0.995
    ema_rampup: bool = True
    # Augmentation. Contrast on reals is the source's; DiffAugment is optional.
    contrast: bool = True
    contrast_range: Tuple[float, float] = (1.0, 2.0)
    mirror: bool = False
    augment: str = ""                         # DiffAugment policy, e.g. "color,translation"
    augment_probability: float = 1.0
    adaptive_augment: bool = False
    ada_target: float = 0.6
    # Execution.
    xla: bool = True

    def __post_init__(self):
        if self.batch_size < 1 or self.critic_steps < 1:
            raise ValueError("batch_size and critic_steps must be at least 1")
        lo, hi = self.contrast_range
        if not 0 < lo <= hi:
            raise ValueError(f"contrast_range must satisfy 0 < low <= high, got {self.contrast_range}")

    def to_dict(self) -> dict:
        return json_ready(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        for key in ("batch_sizes", "learning_rates"):
            d[key] = tuple(tuple(pair) for pair in d.get(key, ()))
        d["contrast_range"] = tuple(d.get("contrast_range", (1.0, 2.0)))
        return cls(**{k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}})

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def json_ready(value):
    """Tuples -> lists, recursively, so a config survives a JSON round trip unchanged."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


BUILTIN_DATASETS = ("twemoji_faces",)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the real images come from: a folder, else a built-in dataset.

    A run records this in its dataset.json (`to_record`), so that the run's own
    data can be reopened later (evaluation) and a resume on other data noticed.
    """

    data_dir: Optional[str] = None            # a folder of images, searched recursively
    dataset: str = "twemoji_faces"            # used when data_dir is None
    background: Tuple[int, int, int] = (255, 255, 255)   # RGB under transparent pixels

    def __post_init__(self):
        if self.data_dir is None and self.dataset not in BUILTIN_DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; built-in datasets: "
                             f"{', '.join(BUILTIN_DATASETS)}")
        bg = tuple(self.background)
        if len(bg) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in bg):
            raise ValueError(f"background must be three integers in [0, 255], got {bg!r}")

    @property
    def name(self) -> str:
        """The data folder's name, or the built-in dataset's."""
        if self.data_dir is None:
            return self.dataset
        return os.path.basename(os.path.normpath(os.path.abspath(self.data_dir)))

    def to_record(self) -> dict:
        """What reopens the same images: the folder's absolute path or the dataset's name."""
        folder = None if self.data_dir is None else os.path.abspath(self.data_dir)
        return {"data_dir": folder, "dataset": None if folder else self.dataset,
                "background": list(self.background)}

    @classmethod
    def from_record(cls, record: dict) -> "DataConfig":
        background = tuple(record.get("background") or cls.background)
        if record.get("data_dir"):
            return cls(data_dir=record["data_dir"], background=background)
        if record.get("dataset"):
            return cls(dataset=record["dataset"], background=background)
        raise ValueError("the record names neither a data folder nor a built-in dataset")


def parse_rgb(text: str) -> Tuple[int, int, int]:
    """'255,255,255' -> (255, 255, 255); anything else is a ValueError saying what is expected."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(p.isdigit() and int(p) <= 255 for p in parts):
        raise ValueError(f"--background must be three integers from 0 to 255 separated by "
                         f"commas (white is 255,255,255), got {text!r}")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class LoopOptions:
    """How often the training loop logs, samples and saves; none of it changes the maths."""

    checkpoint_every_images: int = 20_000
    sample_every_images: int = 10_000
    log_every_steps: int = 50
    metrics_every_images: int = 0        # 0: only at the end of each phase
    metrics_images: int = 256            # images per set for SWD/MS-SSIM during training (0: none)
    grid_size: int = 16
    max_to_keep: int = 3
    progress: bool = True
    stop_after_steps: Optional[int] = None   # stop as if interrupted (tests, time-boxed runs)
