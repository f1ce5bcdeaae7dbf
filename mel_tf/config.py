"""The whole configuration of a run, in one place.

Each configuration class is one concern of a run; each field is one setting,
stated once with its default, its command-line flag, its help text and what a
resumed run may do with it (`setting`). The programs' flags, `--help`, a run's
flags.txt and the check of a resumed run's settings are all derived from these
fields (mel_tf.cli.flags, mel_tf.training.rundir): adding a setting is adding
a field.

    NetworkConfig   the architecture of both networks (a preset, the resolution,
                    the width); never changes within a run
    TrainConfig     the maths of training: schedule, optimiser, losses, EMA,
                    augmentation; changes on resume only when allowed
    DataConfig      the real images
    RunConfig       where the run lives and how a start treats an existing one
    LoopOptions     how often the loop logs, samples, scores and saves
    Execution       how the maths runs: XLA, precision, devices

The defaults are what the project's studies found best for a few hundred icons
(docs/source_study/): the source's networks (the seed preset) at half width,
its schedule and optimiser, no augmentation. configs/mel256.flags states only
what makes the source's own configuration of them.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from typing import Any, Callable, Optional, Tuple

PRESETS = ("seed", "paper")
UPSAMPLINGS = ("nearest", "bilinear")
# How weights may be parameterized (mel_tf.training.layers.PARAMETERIZATIONS says what each
# means); stated here so that reading a config needs no Keras.
WEIGHT_PARAMETERIZATIONS = ("equalized", "he_input_scale", "plain")
MIN_RESOLUTION = 4
MAX_RESOLUTION = 1024
WHITE = (255, 255, 255)

# What a resumed run may do with a setting.
ARCHITECTURE = "architecture"   # never changes: the checkpoints hold these weights
ALLOWED = "allowed"             # changes only with --allow_config_change (logged)
FREE = "free"                   # changes freely: not the maths of the run


@dataclasses.dataclass(frozen=True)
class Codec:
    """How a field that is not a plain bool, int, float or str reads and writes
    as one flag value."""
    parse: Callable[[str], Any]
    format: Callable[[Any], str]


def setting(default, help: str, *, flag: Optional[str] = None, resume: str = ALLOWED,
            codec: Optional[Codec] = None, choices: Optional[Tuple[str, ...]] = None,
            preset_default: bool = False):
    """A configuration field: `default`, the flag's `help`, its name (`flag`, default
    the field's), what a resume may do with it (`resume`), a `codec` for tuples,
    the `choices` of a string, and whether a preset chooses the value
    (`preset_default`: the flag applies only when given)."""
    return dataclasses.field(default=default, metadata={
        "help": help, "flag": flag, "resume": resume, "codec": codec, "choices": choices,
        "preset_default": preset_default})


def flag_name(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or field.name


# ---- codecs: tuples as one flag value -------------------------------------------------

def _parse_numbers(text: str, kind, count: int, what: str):
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(kind(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != count:
        raise ValueError(f"{what} must be {count} numbers separated by commas, got {text!r}")
    return values


def parse_rgb(text: str) -> Tuple[int, int, int]:
    """'255,255,255' -> (255, 255, 255); anything else is a ValueError saying what is expected."""
    try:
        return check_rgb(int(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"--background must be three integers from 0 to 255 separated by "
                         f"commas (white is 255,255,255), got {text!r}") from None


def check_rgb(value) -> Tuple[int, int, int]:
    """The background colour rule: three integers in [0, 255]; else ValueError."""
    rgb = tuple(value)
    if len(rgb) != 3 or not all(isinstance(c, numbers.Integral) and not isinstance(c, bool)
                                and 0 <= c <= 255 for c in rgb):
        raise ValueError(f"background must be three integers in [0, 255], got {value!r}")
    return tuple(int(c) for c in rgb)  # type: ignore[return-value]


def parse_resolution_map(text: str, value_type=float) -> Tuple[Tuple[int, Any], ...]:
    """'4:64,8:64,16:32' -> ((4, 64), (8, 64), (16, 32)); '' -> ()."""
    result = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        try:
            key, value = item.split(":")
            result.append((int(key), value_type(value)))
        except ValueError:
            raise ValueError(f"expected RESOLUTION:VALUE pairs like '4:64,8:32', got {item!r}")
    return tuple(result)


def _join(values) -> str:
    return ",".join(repr(v) if isinstance(v, float) else str(v) for v in values)


RGB = Codec(parse_rgb, _join)
RANGE = Codec(lambda t: _parse_numbers(t, float, 2, "a range"), _join)
BATCH_MAP = Codec(lambda t: parse_resolution_map(t, int),
                  lambda pairs: ",".join(f"{r}:{v}" for r, v in pairs))
RATE_MAP = Codec(lambda t: parse_resolution_map(t, float),
                 lambda pairs: ",".join(f"{r}:{v!r}" for r, v in pairs))


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


def _arch(default, help, **kw):
    """An architecture field whose value the preset chooses unless its flag is given."""
    return setting(default, help + " (default: the preset's)", resume=ARCHITECTURE,
                   preset_default=True, **kw)


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Architecture of both networks. Build one with `preset(name, ...)`; the field
    defaults are the seed preset's."""

    preset: str = setting("seed", "Architecture: the source's (seed) or Karras et al.'s "
                          "(paper); it sets the fields marked 'the preset's'.",
                          resume=ARCHITECTURE, choices=PRESETS)
    resolution: int = setting(256, "Target resolution, a power of two from 4 to 1024.",
                              resume=ARCHITECTURE)
    # Channel widths are multiplied by this (and rounded, at least 1). Half width
    # drew better icons than full width at equal images shown (docs/source_study/).
    width: float = setting(0.5, "Channel width multiplier (1.0 with --nowiden_to_floor: the "
                           "source's networks).", resume=ARCHITECTURE)
    # Pixel norm keeps only a feature vector's direction: at 2 or 4 channels the
    # last blocks can draw only a few hues (at half width, 128x128 has 4 channels
    # and 256x256 has 2; docs/source_study/256x256/). A narrowed layer keeps at
    # least this many, and never more than the full width's.
    min_channels: int = setting(8, "Fewest channels --width narrows a layer to (a layer "
                                "with fewer at full width keeps those, unless "
                                "--widen_to_floor).",
                                resume=ARCHITECTURE)
    # Full width itself has 4 channels at 256x256, where a half-width seed with the
    # floor collapsed to two hues; with 8 both seeds kept more of their colours, at no
    # measurable cost in time (docs/source_study/256x256/).
    widen_to_floor: bool = setting(True, "min_channels also widens layers that have fewer "
                                   "channels at full width (the 256x256 block's 4).",
                                   resume=ARCHITECTURE)
    # Bilinear upsampling (Karras et al. 2019, StyleGAN) smooths the enlarged map before
    # the convolution. In the 256x256 study it took the visible streaks away but also
    # fine detail, and scored worse at the finest level on both seeds, so the default
    # stays the source's nearest (docs/source_study/256x256/).
    upsampling: str = setting("nearest", "G's 2x upsampling: nearest (the source and the "
                              "paper) or bilinear.", resume=ARCHITECTURE,
                              choices=UPSAMPLINGS)
    latent_mode: str = _arch("reshape", "Latent: reshaped to 4x4xC (seed) or pixel-"
                             "normalised and sent through a dense layer (paper)",
                             choices=("reshape", "dense"))
    g_first_block_convs: int = _arch(2, "Convolutions in G's 4x4 block")
    padding: str = _arch("reflect", "Convolution padding", choices=("reflect", "zero"))
    pixel_norm_in_d: bool = _arch(True, "Pixel norm after D's convolutions too")
    pixel_norm_style: str = _arch("seed", "Pixel norm: x / (sqrt(mean x^2) + eps) (seed) or "
                                  "x * rsqrt(mean x^2 + eps) (paper)", choices=PRESETS)
    pixel_norm_eps: float = _arch(1e-7, "Pixel norm epsilon")
    pixel_norm_before_activation: bool = _arch(True, "Pixel norm before the activation "
                                               "(the source) rather than after (the paper)")
    mbstd_group_size: int = _arch(0, "MiniBatchStd group size, 0 = the whole batch")
    mbstd_unbiased: bool = _arch(True, "MiniBatchStd with the unbiased variance")
    mbstd_eps: float = _arch(0.0, "MiniBatchStd epsilon inside the square root")
    output_activation: str = _arch("sigmoid", "G's output activation",
                                   choices=("sigmoid", "linear"))
    data_range: Tuple[float, float] = _arch((0.0, 1.0), "Range of the images the networks "
                                            "see, LOW,HIGH", codec=RANGE)
    conv_gain: float = _arch(math.sqrt(2.0), "Gain of the convolutions' weight scale")
    to_rgb_gain: float = _arch(1.0, "Gain of toRGB's weight scale")
    conv_weights: str = _arch("he_input_scale", "Parameterization of the 3x3 and 4x4 "
                              "convolutions (see mel_tf.training.layers)",
                              choices=WEIGHT_PARAMETERIZATIONS)
    rgb_weights: str = _arch("plain", "Parameterization of toRGB, fromRGB and D's score",
                             choices=WEIGHT_PARAMETERIZATIONS)
    from_rgb_activation: bool = _arch(False, "lrelu after fromRGB (the paper; not the source)")
    latent_dense_gain: float = _arch(math.sqrt(2.0) / 4.0, "Gain of the latent dense layer")
    lrelu_slope: float = _arch(0.2, "Leaky ReLU slope")

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {self.preset!r}")
        check_resolution(self.resolution)
        if not self.width > 0:
            raise ValueError(f"width must be positive, got {self.width}")
        if self.upsampling not in UPSAMPLINGS:
            raise ValueError(f"upsampling must be one of {UPSAMPLINGS}, got {self.upsampling!r}")
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
        floor = self.min_channels if self.widen_to_floor else min(int(channels), self.min_channels)
        return max(1, floor, int(round(channels * self.width)))

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

    def channel_table(self) -> tuple:
        """Every layer's channels: two configurations with the same table (and the
        same other fields) build the same networks, whatever their CHANNEL_FLOOR_FIELDS."""
        return (self.latent_dim, self.d_head_channels,
                tuple(self.g_block_channels(r) for r in self.resolutions),
                tuple(self.d_block_channels(r) for r in self.resolutions[1:]),
                tuple(self.d_from_rgb_channels(r) for r in self.resolutions))

    def replace(self, **changes) -> "NetworkConfig":
        return dataclasses.replace(self, **changes)

    def channel_floor(self) -> dict:
        """The values of CHANNEL_FLOOR_FIELDS: with width, they say how a layer's
        channels were narrowed or widened."""
        return {k: getattr(self, k) for k in CHANNEL_FLOOR_FIELDS}

    def to_dict(self) -> dict:
        return json_ready(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "NetworkConfig":
        # A config.json without the parameterization keys describes a generator
        # that was equalized everywhere, one without min_channels narrowed layers
        # without a floor, and one without widen_to_floor never widened a layer; it
        # loads (and exports) as it was trained.
        return from_json(cls, {**_UNPARAMETERIZED, **d})


# The fields that only set channel counts: channel_table() says all they do.
CHANNEL_FLOOR_FIELDS = ("min_channels", "widen_to_floor")

_UNPARAMETERIZED = {"conv_weights": "equalized", "rgb_weights": "equalized",
                    "from_rgb_activation": True, "min_channels": 1, "widen_to_floor": False}

# What the paper preset changes in the seed preset's fields.
PAPER = dict(latent_mode="dense", g_first_block_convs=1, padding="zero",
             pixel_norm_in_d=False, pixel_norm_style="paper", pixel_norm_eps=1e-8,
             pixel_norm_before_activation=False, mbstd_group_size=4, mbstd_unbiased=False,
             mbstd_eps=1e-8, output_activation="linear", data_range=(-1.0, 1.0),
             conv_weights="equalized", rgb_weights="equalized", from_rgb_activation=True)


def preset(name: str, resolution: Optional[int] = None, width: Optional[float] = None,
           **overrides) -> NetworkConfig:
    """The `seed` (the source's) or `paper` (Karras et al.) architecture; a
    resolution, width or other field left out keeps the field's default."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {name!r}")
    given = {k: v for k, v in (("resolution", resolution), ("width", width)) if v is not None}
    return NetworkConfig(preset=name, **{**(PAPER if name == "paper" else {}), **given,
                                         **overrides})


def source_networks(resolution: Optional[int] = None) -> NetworkConfig:
    """The source's own networks: the seed preset at full width, no layer widened."""
    return preset("seed", resolution, 1.0, widen_to_floor=False)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything about how a run trains (the networks are in NetworkConfig)."""

    seed: int = setting(0, "Seed of every random draw of the run.")
    # Schedule, in images shown (7500 iterations of batch 8 = 60,000: the source's).
    fade_images: int = setting(60_000, "Images shown while a new resolution fades in.")
    stable_images: int = setting(60_000, "Images shown in a stable phase.")
    stable_every_resolution: bool = setting(False, "A stable phase after every fade (the "
                                            "paper), not only at 4x4 and the target.")
    phase_images: Tuple[Tuple[int, int], ...] = setting(
        (), "Per-resolution images per phase (its fade and any stable phase), e.g. "
        "128:120000,256:120000.", codec=BATCH_MAP)
    batch_size: int = setting(8, "Minibatch size (global, over all replicas).")
    batch_sizes: Tuple[Tuple[int, int], ...] = setting(
        (), "Per-resolution batch sizes, e.g. 4:64,8:64,16:32.", codec=BATCH_MAP)
    learning_rate: float = setting(5e-4, "Adam learning rate of both networks.")
    learning_rates: Tuple[Tuple[int, float], ...] = setting(
        (), "Per-resolution learning rates, e.g. 128:2e-4,256:1e-4.", codec=RATE_MAP)
    final_learning_rate: Optional[float] = setting(
        None, "Learning rate of the last phase (the source's article: 1e-4; default: that "
        "of its resolution).")
    fade_real_images: bool = setting(False, "Blend real images between resolutions during a "
                                     "fade (the paper; the source does not).")
    adam_beta1: float = setting(0.0, "Adam beta1.", flag="beta1")
    adam_beta2: float = setting(0.99, "Adam beta2.", flag="beta2")
    adam_epsilon: float = setting(1e-8, "Adam epsilon (added after the bias correction, as "
                                  "PyTorch does).")
    gp_weight: float = setting(10.0, "Gradient penalty weight (lambda).")
    drift_weight: float = setting(0.001, "Drift penalty weight on E[D(real)^2].")
    critic_steps: int = setting(1, "Discriminator steps per generator step.")
    ema_decay: float = setting(0.995, "Generator EMA decay (the cap, with --ema_rampup).")
    ema_rampup: bool = setting(True, "EMA decay min(1 - 1/(t+1), ema_decay) as in the source; "
                               "else the constant ema_decay (the paper: 0.999).")
    # The source's article describes random contrast; its published code has none,
    # and the studies ran without it.
    contrast: bool = setting(False, "Random contrast on real images, a factor drawn from "
                             "--contrast_range (the source's article).")
    contrast_range: Tuple[float, float] = setting((1.0, 2.0), "Range of the contrast factor, "
                                                  "LOW,HIGH.", codec=RANGE)
    mirror: bool = setting(False, "Random horizontal flips of real images (icons have a "
                           "handedness).")
    augment: str = setting("", "DiffAugment policy for D's inputs, e.g. "
                           "color,translation,cutout.")
    augment_probability: float = setting(1.0, "Per-sample probability of each augmentation.")
    adaptive_augment: bool = setting(False, "Adapt the probability to D's overfitting (ADA).")
    ada_target: float = setting(0.6, "ADA's target for the sign of D's real scores.")

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
        return from_json(cls, d)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def json_ready(value):
    """Tuples -> lists, recursively, so a config survives a JSON round trip unchanged."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def _tuples(value):
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def from_json(cls, d: dict):
    """A config from its JSON form: lists back to tuples; keys the class no longer
    has (settings of older versions that moved out of the maths) are left out."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: _tuples(v) for k, v in d.items() if k in names})


BUILTIN_DATASETS = ("twemoji_faces",)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the real images come from: a folder, else a built-in dataset.

    A run records this in its dataset.json (`to_record`), so that the run's own
    data can be reopened later (evaluation) and a resume on other data noticed.
    """

    data_dir: Optional[str] = setting(None, "Folder of training images (searched "
                                      "recursively); without it, the built-in --dataset.")
    dataset: str = setting("twemoji_faces", "Built-in dataset used without --data_dir.",
                           choices=BUILTIN_DATASETS)
    background: Tuple[int, int, int] = setting(WHITE, "R,G,B colour that transparent pixels "
                                               "are composited on.", codec=RGB)

    def __post_init__(self):
        if self.data_dir is None and self.dataset not in BUILTIN_DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; built-in datasets: "
                             f"{', '.join(BUILTIN_DATASETS)}")
        check_rgb(self.background)

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
        background = tuple(record.get("background") or WHITE)
        if record.get("data_dir"):
            return cls(data_dir=record["data_dir"], background=background)
        if record.get("dataset"):
            return cls(dataset=record["dataset"], background=background)
        raise ValueError("the record names neither a data folder nor a built-in dataset")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Where the run lives and how a start treats a run directory that holds one."""

    logdir: Optional[str] = setting(None, "Run directory: checkpoints, TensorBoard events, "
                                    "samples (default: runs/<name of the data folder or "
                                    "dataset>).", resume=FREE)
    allow_config_change: bool = setting(False, "Resume a run although its training or data "
                                        "settings differ; the differences are recorded in "
                                        "its changes.log.", resume=FREE)
    cache_dir: Optional[str] = setting(None, "Cache for rasterised built-in datasets "
                                       "(default: $MEL_TF_CACHE_DIR, else ~/.cache/mel_tf).",
                                       resume=FREE)


@dataclasses.dataclass(frozen=True)
class LoopOptions:
    """How often the training loop logs, samples and saves; none of it changes the maths."""

    checkpoint_every_images: int = setting(20_000, "Checkpoint every N images (and at phase "
                                           "ends and on signals).", flag="checkpoint_every",
                                           resume=FREE)
    sample_every_images: int = setting(10_000, "Sample grid every N images (and at phase "
                                       "ends).", flag="sample_every", resume=FREE)
    log_every_steps: int = setting(50, "TensorBoard scalars every N steps.", flag="log_every",
                                   resume=FREE)
    metrics_every_images: int = setting(0, "SWD/MS-SSIM every N images (0: at phase ends "
                                        "only).", flag="metrics_every", resume=FREE)
    metrics_images: int = setting(256, "Images per set for the metrics during training "
                                  "(0: none).", resume=FREE)
    grid_size: int = setting(16, "Icons in a sample grid.", resume=FREE)
    max_to_keep: int = setting(3, "Checkpoints kept.", resume=FREE)
    progress: bool = setting(True, "A progress line with the ETA on the terminal.",
                             resume=FREE)
    # Stops as if interrupted: tests and time-boxed runs.
    stop_after_steps: Optional[int] = setting(None, "Stop (with a checkpoint) after this many "
                                              "steps in total.", flag="max_steps", resume=FREE)


@dataclasses.dataclass(frozen=True)
class Execution:
    """How the maths runs, not what it computes: a run may change these on resume."""

    xla: bool = setting(True, "Compile the training step with XLA (on one replica only).",
                        resume=FREE)
    mixed_precision: bool = setting(False, "bfloat16 compute with float32 weights.",
                                    resume=FREE)
    strategy: str = setting("default", "tf.distribute strategy.", resume=FREE,
                            choices=("default", "mirrored", "multi_worker"))
    verbose: bool = setting(False, "Show TensorFlow's own start-up and INFO logging.",
                            resume=FREE)

    @property
    def dtype_policy(self) -> str:
        """The Keras dtype policy of every layer while training."""
        return "mixed_bfloat16" if self.mixed_precision else "float32"

    def jit_compile(self, replicas: int) -> bool:
        """XLA only on one replica: Keras leaves it off under a strategy, and the
        replicated step has not been checked with it."""
        return self.xla and replicas == 1


# Every configuration class, in the order --help lists them.
CONFIG_CLASSES = (DataConfig, RunConfig, NetworkConfig, TrainConfig, LoopOptions, Execution)
