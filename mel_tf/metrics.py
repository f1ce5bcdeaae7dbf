"""Image-quality metrics: multi-scale SWD, MS-SSIM diversity and FID/KID.

Every metric compares sets of uint8 RGB images [N, H, W, 3] (the trainer's and
the dataset's common representation) and returns plain Python floats, so that
the results can go straight to JSON or TensorBoard.

* `sliced_wasserstein_distance`: multi-scale sliced Wasserstein distance of
  Karras et al. (2018), following their official code: 7x7 neighbourhoods of a
  Laplacian pyramid, normalised per set, compared along random directions.
* `ms_ssim_diversity`: mean MS-SSIM of consecutive pairs of one set
  (Odena et al. 2017); lower means more diverse. Computed as
  tf.image.ssim_multiscale does, in numpy (TF's 11x11 depthwise convolution
  is too slow on CPU for thousands of pairs).
* `fid_kid`: Frechet and kernel Inception distances, only from a feature
  extractor file the caller supplies (there are no built-in weights, and a
  missing metric is never approximated).
* `copy_check`: does a generator copy its training icons? Each generated
  icon's nearest training icon and distance, against the same for real icons
  that were not trained on (or, without those, training icons against each
  other).

`evaluate_images` bundles the first two (and the third when given a path).
All randomness comes from an explicit seed or `np.random.Generator`.
"""

from __future__ import annotations

import math
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.linalg
import scipy.ndimage

SeedLike = Union[int, np.random.Generator]

# ---- constants of the published metrics ---------------------------------------

SWD_NHOOD_SIZE = 7            # side of a neighbourhood (descriptor = 7 * 7 * 3)
SWD_NHOODS_PER_IMAGE = 128
SWD_DIR_REPEATS = 4
SWD_DIRS_PER_REPEAT = 128
SWD_MIN_LEVEL_RESOLUTION = 16  # the pyramid stops at 16x16

# 1-D binomial taps; their outer product is the 5x5 kernel of cv2.pyrDown.
_BINOMIAL_1D = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_FILTER_SIZE = 11
MS_SSIM_FILTER_SIGMA = 1.5
MS_SSIM_K1 = 0.01
MS_SSIM_K2 = 0.03
MS_SSIM_MAX_VALUE = 255.0

# Copy check (see `copy_check`). Icons are compared at 64x64 (smaller ones at
# their own size): enough to tell two drawings apart, small enough for
# 1,000 x 1,000 comparisons in seconds.
COPY_CHECK_SIZE = 64
# A generated icon is a near-copy when its nearest training icon is at least as
# close as the nearest training icon of the closest 1% of the reference icons
# (the reference distances' 1st percentile).
NEAR_COPY_PERCENTILE = 1.0
# Whatever the reference: an RMS difference at or under 0.01 (2.55 of 255 levels per
# value) leaves at most a small detail different. Among the 969 Twemoji faces the
# two closest distinct drawings (one person pouting and frowning: only the mouth
# differs) are 0.0074 apart, and 4 faces (0.4%) have another face within 0.01.
NEAR_COPY_ABSOLUTE = 0.01
COPY_CHECK_PERCENTILES = (1, 5, 50)


# ---- the bundle ---------------------------------------------------------------

def evaluate_images(real_uint8: np.ndarray, fake_uint8: np.ndarray, seed: SeedLike,
                    inception_path: Optional[str] = None) -> dict:
    """All metrics of a fake set against a real set of the same size and shape.

    Returns a JSON-serialisable dict:
        {"swd": {"64": .., "32": .., "16": .., "avg": ..},   # x 1e3, finest first
         "ms_ssim_fake": .., "ms_ssim_real": ..,
         "num_images": N, "resolution": R}
    plus "fid" and "kid" when `inception_path` names a feature-extractor file
    (see `fid_kid`); without it those keys are absent.
    Images must be square, uint8 and at least 8x8 (a 7x7 SWD neighbourhood
    has to fit; see `swd_resolutions` for images under 16x16). MS-SSIM of
    images under 176 px is taken on nearest-neighbour enlargements (see
    `ms_ssim_diversity`). `seed` (an int or a Generator) fixes every random
    choice; the sets are used as given (no shuffling or subsampling).
    """
    real = check_images(real_uint8, "real")
    fake = check_images(fake_uint8, "fake")
    if real.shape != fake.shape:
        raise ValueError(f"real and fake sets must have the same shape, got "
                         f"{real.shape} and {fake.shape}")
    rng = np.random.default_rng(seed)
    result = {
        "swd": sliced_wasserstein_distance(real, fake, rng),
        "ms_ssim_fake": ms_ssim_diversity(fake),
        "ms_ssim_real": ms_ssim_diversity(real),
        "num_images": int(real.shape[0]),
        "resolution": int(real.shape[1]),
    }
    if inception_path is not None:
        result.update(fid_kid(real, fake, inception_path, rng))
    return result


def check_images(images: np.ndarray, name: str = "images") -> np.ndarray:
    """Returns `images` as an array if it is a uint8 batch [N, H, W, 3], else raises.

    Float images are refused rather than guessed at: their range ([0, 1],
    [-1, 1] or [0, 255]) cannot be told from the values.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8 in [0, 255], got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{name} must be [N, H, W, 3], got shape {images.shape}")
    if images.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 images, got {images.shape[0]}")
    return images


# ---- sliced Wasserstein distance ------------------------------------------------

def sliced_wasserstein_distance(real_uint8: np.ndarray, fake_uint8: np.ndarray,
                                rng: SeedLike,
                                nhoods_per_image: int = SWD_NHOODS_PER_IMAGE,
                                nhood_size: int = SWD_NHOOD_SIZE,
                                dir_repeats: int = SWD_DIR_REPEATS,
                                dirs_per_repeat: int = SWD_DIRS_PER_REPEAT) -> Dict[str, float]:
    """Multi-scale SWD x 1e3 per pyramid level, finest first, and their mean.

    Returns {"<resolution>": swd, ..., "avg": mean}. Both sets must be uint8
    [N, R, R, 3] of the same shape. The levels are `swd_resolutions(R)`.
    Each level is processed for both sets together and then dropped, so memory
    holds one level's descriptors (N * 128 * 147 float32 per set) at a time.
    `rng` is a seed or a Generator; for a fixed seed the result is fixed.
    Descriptors are flattened in HWC order where the official code uses CHW;
    the random directions are isotropic, so the order changes nothing but
    which directions a given seed draws.
    """
    real = check_images(real_uint8, "real")
    fake = check_images(fake_uint8, "fake")
    if real.shape != fake.shape:
        raise ValueError(f"real and fake sets must have the same shape, got "
                         f"{real.shape} and {fake.shape}")
    if real.shape[1] != real.shape[2]:
        raise ValueError(f"SWD needs square images, got {real.shape[1]}x{real.shape[2]}")
    rng = np.random.default_rng(rng)
    resolutions = swd_resolutions(real.shape[1], nhood_size)

    result = {}
    levels = zip(_laplacian_levels(real.astype(np.float32), len(resolutions)),
                 _laplacian_levels(fake.astype(np.float32), len(resolutions)))
    for res, (real_level, fake_level) in zip(resolutions, levels):
        desc_real = normalize_descriptors(
            extract_descriptors(real_level, nhoods_per_image, nhood_size, rng))
        desc_fake = normalize_descriptors(
            extract_descriptors(fake_level, nhoods_per_image, nhood_size, rng))
        result[str(res)] = 1e3 * sliced_wasserstein(desc_real, desc_fake, rng,
                                                    dir_repeats, dirs_per_repeat)
    result["avg"] = float(np.mean(list(result.values())))
    return result


def swd_resolutions(resolution: int, nhood_size: int = SWD_NHOOD_SIZE) -> List[int]:
    """Pyramid levels of the SWD for square images of side `resolution`.

    R, R/2, ... down to 16, as in the official code (log2(R) - 3 levels for a
    power of two). Images under 16x16 (the 8x8 stage, say) get a single level
    at their own resolution: the distance of the raw 7x7 patches, which is what
    the finest level would be without the pyramid. Sides under `nhood_size`
    (4x4) cannot hold a neighbourhood and raise ValueError.
    """
    if resolution < nhood_size:
        raise ValueError(f"SWD needs images of at least {nhood_size}x{nhood_size} "
                         f"(one {nhood_size}x{nhood_size} neighbourhood), got "
                         f"{resolution}x{resolution}")
    if resolution < SWD_MIN_LEVEL_RESOLUTION:
        return [resolution]
    levels = []
    res = resolution
    while res >= SWD_MIN_LEVEL_RESOLUTION:
        levels.append(res)
        res //= 2
    return levels


def pyr_down(images: np.ndarray) -> np.ndarray:
    """Blur [N, H, W, C] float images with the 5x5 binomial kernel, keep every 2nd pixel.

    Matches cv2.pyrDown and the official code: the kernel is
    outer([1, 4, 6, 4, 1]) / 256 with 'mirror' edges (reflect without repeating
    the edge pixel). The kernel is separable and each axis is extended
    independently, so filtering rows, subsampling them, then doing the same
    to columns gives the same result with less work.
    """
    x = scipy.ndimage.correlate1d(images, _BINOMIAL_1D, axis=1, mode="mirror")[:, ::2]
    return scipy.ndimage.correlate1d(x, _BINOMIAL_1D, axis=2, mode="mirror")[:, :, ::2]


def pyr_up(images: np.ndarray) -> np.ndarray:
    """Insert zeros between [N, H, W, C] pixels and blur with 4x the binomial kernel.

    Matches cv2.pyrUp: the output is [N, 2H, 2W, C]. Separable as in `pyr_down`
    (each axis gets 2x the 1-D taps, so the product is 4x the 2-D kernel).
    """
    n, h, w, c = images.shape
    x = np.zeros((n, 2 * h, w, c), images.dtype)
    x[:, ::2] = images
    x = scipy.ndimage.correlate1d(x, 2.0 * _BINOMIAL_1D, axis=1, mode="mirror")
    y = np.zeros((n, 2 * h, 2 * w, c), images.dtype)
    y[:, :, ::2] = x
    return scipy.ndimage.correlate1d(y, 2.0 * _BINOMIAL_1D, axis=2, mode="mirror")


def laplacian_pyramid(images: np.ndarray, num_levels: int) -> List[np.ndarray]:
    """Laplacian pyramid of [N, H, W, C] images as float32, finest level first.

    Level i is G_i - pyr_up(G_{i+1}) for the Gaussian levels G_0 = images,
    G_{i+1} = pyr_down(G_i); the last level is the coarsest G itself.
    """
    return list(_laplacian_levels(np.asarray(images, np.float32), num_levels))


def _laplacian_levels(images: np.ndarray, num_levels: int):
    """Yields the levels of `laplacian_pyramid` one by one.

    A generator, so that the SWD holds only the current Gaussian level instead
    of the whole pyramid of a few thousand images.
    """
    if num_levels < 1:
        raise ValueError(f"num_levels must be at least 1, got {num_levels}")
    factor = 2 ** (num_levels - 1)
    if images.shape[1] % factor or images.shape[2] % factor:
        raise ValueError(f"a {num_levels}-level pyramid needs sides divisible by "
                         f"{factor}, got {images.shape[1]}x{images.shape[2]}")
    gaussian = images
    for _ in range(num_levels - 1):
        coarser = pyr_down(gaussian)
        yield gaussian - pyr_up(coarser)
        gaussian = coarser
    yield gaussian


def extract_descriptors(level: np.ndarray, nhoods_per_image: int, nhood_size: int,
                        rng: np.random.Generator) -> np.ndarray:
    """Random square neighbourhoods of every image: [N * nhoods_per_image, k, k, C].

    Centres are uniform in [k//2, side - k//2) on each axis, as in the
    official code, so every neighbourhood lies inside the image. Rows
    nhoods_per_image * i ... belong to image i.
    """
    n, h, w, _ = level.shape
    half = nhood_size // 2
    if h < nhood_size or w < nhood_size:
        raise ValueError(f"{nhood_size}x{nhood_size} neighbourhoods do not fit in "
                         f"{h}x{w} images")
    count = n * nhoods_per_image
    offsets = np.arange(-half, half + 1)
    image = np.repeat(np.arange(n), nhoods_per_image)[:, None, None]
    y = rng.integers(half, h - half, size=count)[:, None, None] + offsets[None, :, None]
    x = rng.integers(half, w - half, size=count)[:, None, None] + offsets[None, None, :]
    return level[image, y, x]


def normalize_descriptors(desc: np.ndarray) -> np.ndarray:
    """[M, k, k, C] descriptors -> [M, k*k*C] with zero mean, unit std per channel.

    The statistics are over all descriptors and pixels of one set, so each set
    is normalised by its own statistics (as in the official code). A channel
    with zero spread (a flat set) is left at zero instead of dividing by zero.
    """
    channels = desc.shape[-1]
    taps = desc.shape[1] * desc.shape[2]
    flat = desc.reshape(desc.shape[0], -1).astype(np.float32, copy=True)
    # Reduce over descriptors first with the k*k*C columns side by side (a
    # wide inner loop, several times faster than reducing [M*k*k, C]), then
    # over the positions; every position has M samples, so the mean of the
    # column statistics is the statistic over all pixels. float64 sums keep
    # the std of ~10^7 float32 values exact to float32 precision.
    mean = flat.mean(axis=0, dtype=np.float64).reshape(taps, channels).mean(axis=0)
    flat -= np.tile(mean, taps).astype(np.float32)
    var = np.mean(np.square(flat), axis=0, dtype=np.float64).reshape(taps, channels).mean(axis=0)
    std = np.sqrt(var)
    flat /= np.tile(np.where(std > 0, std, 1.0), taps).astype(np.float32)
    return flat


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, rng: SeedLike,
                       dir_repeats: int = SWD_DIR_REPEATS,
                       dirs_per_repeat: int = SWD_DIRS_PER_REPEAT) -> float:
    """Sliced Wasserstein-1 distance of two equally large point sets [M, D].

    For each of `dir_repeats` repeats, draws `dirs_per_repeat` directions from
    N(0, I) normalised to unit length, projects both sets, sorts each
    projection and averages |a - b| over points and directions (the 1-D
    Wasserstein-1 distance of equally many samples is the mean gap of the
    sorted samples); returns the mean over repeats.
    """
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"need two [M, D] arrays of one shape, got {a.shape} and {b.shape}")
    rng = np.random.default_rng(rng)
    results = []
    for _ in range(dir_repeats):
        dirs = rng.standard_normal((a.shape[1], dirs_per_repeat))
        dirs /= np.sqrt(np.sum(np.square(dirs), axis=0, keepdims=True))
        dirs = dirs.astype(np.float32)
        # [direction, point]: each direction's projections are one contiguous
        # row, which numpy sorts several times faster than a strided column.
        proj_a = dirs.T @ a.T
        proj_b = dirs.T @ b.T
        proj_a.sort(axis=1)
        proj_b.sort(axis=1)
        results.append(np.mean(np.abs(proj_a - proj_b), dtype=np.float64))
    return float(np.mean(results))


# ---- MS-SSIM diversity ------------------------------------------------------------

def ms_ssim_diversity(images_uint8: np.ndarray, batch_size: int = 32) -> float:
    """Mean MS-SSIM of the pairs (0, 1), (2, 3), ... of one uint8 set [N, H, W, 3].

    Lower means a more diverse set; compare a generated set with a real one of
    the same size. An odd last image is left out. The MS-SSIM is that of
    tf.image.ssim_multiscale (see `ms_ssim`): 5 scales with MS_SSIM_WEIGHTS,
    an 11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03, max value 255.

    Small images: the 5 scales halve the image 4 times and the coarsest must
    still hold the 11x11 window, so images need a side of 11 * 16 = 176.
    Smaller images are first enlarged by nearest-neighbour repetition by the
    smallest integer factor f with f * side >= 176 (`ms_ssim_upsample_factor`:
    64 -> x3 = 192 px, scales 192/96/48/24/12; 32 -> x6 = 192; 16 -> x11 = 176,
    scales 176/88/44/22/11; 8 -> x22 = 176). Nearest repetition invents no
    pixel values; the window then spans about 11 / f original pixels at the
    finest scale. All 5 scales and the published weights are kept at every
    resolution.
    """
    images = check_images(images_uint8)
    num_pairs = images.shape[0] // 2
    factor = ms_ssim_upsample_factor(min(images.shape[1], images.shape[2]))
    total = 0.0
    for start in range(0, num_pairs, batch_size):
        stop = min(start + batch_size, num_pairs)
        first = _repeat_pixels(images[2 * start:2 * stop:2], factor)
        second = _repeat_pixels(images[2 * start + 1:2 * stop:2], factor)
        total += float(np.sum(ms_ssim(first, second)))
    return total / num_pairs


def ms_ssim_upsample_factor(side: int) -> int:
    """Integer nearest-neighbour factor that lets 5-scale MS-SSIM run on `side` pixels."""
    minimum = MS_SSIM_FILTER_SIZE * 2 ** (len(MS_SSIM_WEIGHTS) - 1)
    return max(1, math.ceil(minimum / side))


def _repeat_pixels(images: np.ndarray, factor: int) -> np.ndarray:
    """[N, H, W, C] -> float32 [N, fH, fW, C], each pixel a f x f block."""
    x = images.astype(np.float32)
    if factor > 1:
        x = np.repeat(np.repeat(x, factor, axis=1), factor, axis=2)
    return x


def ms_ssim(img1: np.ndarray, img2: np.ndarray,
            weights: Sequence[float] = MS_SSIM_WEIGHTS,
            max_val: float = MS_SSIM_MAX_VALUE,
            filter_size: int = MS_SSIM_FILTER_SIZE,
            filter_sigma: float = MS_SSIM_FILTER_SIGMA,
            k1: float = MS_SSIM_K1, k2: float = MS_SSIM_K2) -> np.ndarray:
    """MS-SSIM [N] of two image batches [N, H, W, C] in [0, max_val], as tf.image.ssim_multiscale.

    The same algorithm step for step (a test checks the two agree): per
    scale, SSIM terms from 'valid' Gaussian-window means, cs averaged over
    the image, 2x2 average pooling between scales (an odd side first padded
    by repeating its last row/column); then prod(relu(cs_i)^w_i for the finer
    scales) * relu(ssim_last)^w_last per channel, averaged over channels.
    It is numpy with the window applied as two 1-D passes because TF's CPU
    11x11 depthwise convolution is an order of magnitude slower (see
    docs/evaluation.md). Like TF it computes in float32, but
    on values shifted by -max_val/2: covariances ignore the shift, and the
    smaller squares cancel with ~4x less rounding in E[xy] - E[x]E[y].
    The side must be at least filter_size * 2^(scales - 1).
    """
    offset = np.float32(max_val / 2.0)
    x = np.asarray(img1, np.float32) - offset
    y = np.asarray(img2, np.float32) - offset
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"need two [N, H, W, C] batches of one shape, got "
                         f"{x.shape} and {y.shape}")
    minimum = filter_size * 2 ** (len(weights) - 1)
    if min(x.shape[1], x.shape[2]) < minimum:
        raise ValueError(f"{len(weights)}-scale MS-SSIM needs sides of at least "
                         f"{minimum}, got {x.shape[1]}x{x.shape[2]}")
    window = _gaussian_window(filter_size, filter_sigma)
    c1 = np.float32((k1 * max_val) ** 2)
    c2 = np.float32((k2 * max_val) ** 2)
    factors = []
    for scale in range(len(weights)):
        if scale > 0:
            x, y = _halve(x), _halve(y)
        mean_x = _valid_filter(x, window)
        mean_y = _valid_filter(y, window)
        covariance2 = 2.0 * (_valid_filter(x * y, window) - mean_x * mean_y)
        variances = _valid_filter(np.square(x) + np.square(y), window) - (
            np.square(mean_x) + np.square(mean_y))
        cs_map = (covariance2 + c2) / (variances + c2)
        if scale < len(weights) - 1:
            factor = cs_map
        else:
            mean_x += offset
            mean_y += offset
            luminance = (2.0 * mean_x * mean_y + c1) / (np.square(mean_x) + np.square(mean_y) + c1)
            factor = luminance * cs_map
        factors.append(np.maximum(factor.mean(axis=(1, 2), dtype=np.float64), 0.0))
    per_channel = np.prod([f ** w for f, w in zip(factors, weights)], axis=0)
    return per_channel.mean(axis=-1)


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    """1-D taps whose outer product is TF's (MATLAB fspecial's) normalised 2-D Gaussian."""
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-0.5 * np.square(coords) / sigma ** 2)
    return g / g.sum()


def _valid_filter(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of [N, H, W, C] with symmetric odd taps along H and W.

    Filters the whole image (zero padding) and keeps the outputs whose window
    lies inside it.
    """
    half = len(taps) // 2
    x = scipy.ndimage.correlate1d(x, taps, axis=1, mode="constant")[:, half:x.shape[1] - half]
    return scipy.ndimage.correlate1d(x, taps, axis=2, mode="constant")[:, :, half:x.shape[2] - half]


def _halve(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling; an odd side first gets its last pixel repeated (TF's SYMMETRIC pad)."""
    pad_h, pad_w = x.shape[1] % 2, x.shape[2] % 2
    if pad_h or pad_w:
        x = np.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
    n, h, w, c = x.shape
    x = x.reshape(n, h // 2, 2, w // 2, 2, c)
    return (x[:, :, 0, :, 0] + x[:, :, 0, :, 1] + x[:, :, 1, :, 0] + x[:, :, 1, :, 1]) * 0.25


# ---- FID and KID ----------------------------------------------------------------

def fid_kid(real_uint8: np.ndarray, fake_uint8: np.ndarray, inception_path: str,
            rng: SeedLike = 0, batch_size: int = 50,
            pixel_range: Tuple[float, float] = (-1.0, 1.0),
            kid_subsets: int = 100, kid_subset_size: int = 1000) -> Dict[str, float]:
    """FID and KID of two uint8 sets, with the feature extractor in `inception_path`.

    `inception_path` is a Keras model file (.keras / .h5) or a TensorFlow
    SavedModel directory (its serving_default signature) mapping float images
    to pool features [N, D] (e.g. InceptionV3 with include_top=False,
    pooling="avg": 2048 features). Images are resized bilinearly to the
    model's input size when it declares one and scaled to `pixel_range`
    ((-1, 1) is the keras.applications InceptionV3 convention). There are no
    built-in weights: without a file there is no FID or KID.
    Returns {"fid": .., "kid": ..}; KID uses `rng` for its subsets.
    """
    extractor, input_size = load_feature_extractor(inception_path)
    real = extract_features(check_images(real_uint8, "real"), extractor, input_size,
                            batch_size, pixel_range)
    fake = extract_features(check_images(fake_uint8, "fake"), extractor, input_size,
                            batch_size, pixel_range)
    return {
        "fid": fid_from_features(real, fake),
        "kid": kid_from_features(real, fake, rng, kid_subsets, kid_subset_size),
    }


def load_feature_extractor(path: str) -> Tuple[Callable, Optional[Tuple[int, int]]]:
    """Loads a feature extractor; returns (images -> features function, (H, W) or None).

    A directory is read as a SavedModel and called through its
    serving_default signature (one input, one output); a file as a Keras model.
    The size is the model's declared input height and width, if static.
    """
    import tensorflow as tf

    if not os.path.exists(path):
        raise FileNotFoundError(f"no feature extractor at {path!r}")
    if os.path.isdir(path):
        loaded = tf.saved_model.load(path)
        signature = loaded.signatures["serving_default"]
        _, inputs = signature.structured_input_signature
        if len(inputs) != 1 or len(signature.structured_outputs) != 1:
            raise ValueError(f"the serving_default signature of {path!r} must have one "
                             f"input and one output")
        (name, spec), = inputs.items()
        (output,) = signature.structured_outputs

        def extractor(x):
            return signature(**{name: tf.cast(x, spec.dtype)})[output]

        shape = spec.shape
    else:
        import keras

        model = keras.saving.load_model(path, compile=False)
        extractor = model
        shape = tf.TensorShape(model.input_shape)
    size = None
    if shape.rank == 4 and shape[1] is not None and shape[2] is not None:
        size = (int(shape[1]), int(shape[2]))
    return extractor, size


def extract_features(images_uint8: np.ndarray, extractor: Callable,
                     input_size: Optional[Tuple[int, int]], batch_size: int,
                     pixel_range: Tuple[float, float]) -> np.ndarray:
    """Features [N, D] (float64) of uint8 images, in batches."""
    import tensorflow as tf

    lo, hi = pixel_range
    features = []
    for start in range(0, images_uint8.shape[0], batch_size):
        x = tf.convert_to_tensor(images_uint8[start:start + batch_size], tf.float32)
        if input_size is not None and tuple(x.shape[1:3]) != input_size:
            x = tf.image.resize(x, input_size, method="bilinear")
        x = lo + x * ((hi - lo) / 255.0)
        f = np.asarray(extractor(x), np.float64)
        features.append(f.reshape(f.shape[0], -1))
    return np.concatenate(features, axis=0)


def feature_statistics(features: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (unbiased, rows are samples) of features [N, D]."""
    features = np.asarray(features, np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance of N(mu1, sigma1) and N(mu2, sigma2).

    ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2)). When the
    product is singular enough for sqrtm to fail, eps is added to both
    diagonals (as in the reference FID code); the tiny imaginary part that
    rounding leaves in the square root is dropped.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1 = np.atleast_2d(sigma1).astype(np.float64)
    sigma2 = np.atleast_2d(sigma2).astype(np.float64)
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.all(np.isfinite(covmean)):
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FID of two feature sets [N, D]: the Frechet distance of their Gaussian fits."""
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


def kid_from_features(real: np.ndarray, fake: np.ndarray, rng: SeedLike,
                      num_subsets: int = 100, max_subset_size: int = 1000) -> float:
    """Kernel Inception Distance of two feature sets [N, D] (Binkowski et al. 2018).

    The unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / D + 1)^3,
    averaged over `num_subsets` random subsets of m = min(N_real, N_fake,
    max_subset_size) features from each set (drawn without replacement), as in
    the StyleGAN2-ADA code. Near 0 (and possibly slightly negative) for sets
    from one distribution.
    """
    rng = np.random.default_rng(rng)
    real = np.asarray(real, np.float64)
    fake = np.asarray(fake, np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"need [N, D] feature sets of one D, got {real.shape} and {fake.shape}")
    dim = real.shape[1]
    m = min(real.shape[0], fake.shape[0], max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 features per set")
    total = 0.0
    for _ in range(num_subsets):
        x = fake[rng.choice(fake.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        within = (x @ x.T / dim + 1) ** 3 + (y @ y.T / dim + 1) ** 3
        between = (x @ y.T / dim + 1) ** 3
        total += (within.sum() - np.trace(within)) / (m - 1) - between.sum() * 2 / m
    return float(total / num_subsets / m)


# ---- copy check -------------------------------------------------------------------

def copy_check(generated_uint8: np.ndarray, training_uint8: np.ndarray,
               held_out_uint8: Optional[np.ndarray] = None, closest: int = 16,
               size: int = COPY_CHECK_SIZE) -> dict:
    """Does the generator copy its training icons? Plain JSON values.

    The distance (`copy_check_vectors`, `nearest_neighbours`) is the RMS
    difference of the pixel values in [0, 1] at `size` x `size` (smaller icons
    at their own size): 0 for a copy, 1 at most. Icons are flat drawings on a
    plain background, aligned and centred, so a copy is a copy pixel for pixel
    and the pixels say it without a feature network (there are no built-in
    weights); area averaging to 64x64 keeps the drawing, drops the pixel-level
    noise of a generator and makes runs of any resolution comparable. Among
    the 969 Twemoji faces at 64x64 each face's nearest other face is 0.0074 to
    0.32 away (1st percentile 0.019, median 0.084). It does not see a copy that
    is shifted, scaled or mirrored.

    For each generated icon: its nearest training icon and distance. The
    reference is what an icon the generator did not copy looks like: each
    held-out real icon's distance to its nearest training icon, or without
    held-out icons (a run trained on all of them) each training icon's
    distance to its nearest other training icon (leave-one-out).
    Returns {"generated": {...}, "reference": {..., "kind": "held_out" or
    "leave_one_out"}, each with "count", "min", "p1", "p5", "p50" and the shares
    "near_copies" (at or under "near_copy_threshold", the reference's
    NEAR_COPY_PERCENTILE-th percentile) and "under_absolute" (at or under
    NEAR_COPY_ABSOLUTE); "closest": the `closest` generated icons nearest to a
    training icon, nearest first, as {"generated": i, "training": j,
    "distance": d} (indices into the given sets)}. Images are uint8 [N, R, R, 3]
    of one R.
    """
    sets = {"generated": generated_uint8, "training": training_uint8}
    if held_out_uint8 is not None:
        sets["held_out"] = held_out_uint8
    vectors = {name: copy_check_vectors(images, size, name) for name, images in sets.items()}
    shapes = {name: tuple(np.shape(images)[1:]) for name, images in sets.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"the copy check needs icons of one size, got {shapes}")
    train = vectors["training"]
    gen_index, gen_dist = nearest_neighbours(vectors["generated"], train)
    if held_out_uint8 is None:
        kind, (_, ref_dist) = "leave_one_out", nearest_neighbours(train, train, exclude_self=True)
    else:
        kind, (_, ref_dist) = "held_out", nearest_neighbours(vectors["held_out"], train)
    threshold = float(np.percentile(ref_dist, NEAR_COPY_PERCENTILE))
    order = np.argsort(gen_dist, kind="stable")[:closest]
    side = min(size, shapes["training"][0])
    return {
        "distance": f"RMS difference of pixel values in [0, 1] at {side}x{side}",
        "near_copy_threshold": threshold,
        "near_copy_rule": f"at or under percentile {NEAR_COPY_PERCENTILE:g} of the "
                          "reference distances",
        "absolute_threshold": NEAR_COPY_ABSOLUTE,
        "generated": distance_summary(gen_dist, threshold),
        "reference": {"kind": kind, **distance_summary(ref_dist, threshold)},
        "closest": [{"generated": int(i), "training": int(gen_index[i]),
                     "distance": float(gen_dist[i])} for i in order],
    }


def distance_summary(distances: np.ndarray, threshold: float) -> Dict[str, float]:
    """Count, min, COPY_CHECK_PERCENTILES and the shares at or under `threshold` and
    NEAR_COPY_ABSOLUTE of nearest-neighbour distances [N]."""
    d = np.asarray(distances, np.float64)
    summary = {"count": int(d.size), "min": float(d.min())}
    summary.update({f"p{p:g}": float(np.percentile(d, p)) for p in COPY_CHECK_PERCENTILES})
    summary["near_copies"] = float(np.mean(d <= threshold))
    summary["under_absolute"] = float(np.mean(d <= NEAR_COPY_ABSOLUTE))
    return summary


def copy_check_vectors(images_uint8: np.ndarray, size: int = COPY_CHECK_SIZE,
                       name: str = "images", chunk: int = 256) -> np.ndarray:
    """uint8 [N, R, R, 3] -> float32 [N, s * s * 3] in [0, 1], s = min(size, R).

    Each value is the mean of an (R/s) x (R/s) block (area averaging, exact for
    the power-of-two sides icons have); R must be a multiple of s. In chunks,
    so that 1,000 icons of 256x256 never exist as float32 all at once.
    """
    images = check_images(images_uint8, name)
    n, h, w, _ = images.shape
    if h != w:
        raise ValueError(f"{name} must be square, got {h}x{w}")
    side = min(size, h)
    if h % side:
        raise ValueError(f"{name}: {h}x{h} icons cannot be averaged down to {side}x{side} "
                         f"({h} is not a multiple of {side})")
    factor = h // side
    out = np.empty((n, side * side * 3), np.float32)
    for start in range(0, n, chunk):
        block = images[start:start + chunk].reshape(-1, side, factor, side, factor, 3)
        out[start:start + chunk] = (block.mean(axis=(2, 4), dtype=np.float32)
                                    / 255.0).reshape(-1, side * side * 3)
    return out


def nearest_neighbours(queries: np.ndarray, keys: np.ndarray, exclude_self: bool = False,
                       chunk: int = 256) -> Tuple[np.ndarray, np.ndarray]:
    """For each row of `queries` [N, D], the index of the nearest row of `keys`
    [M, D] and the RMS difference to it: (int64 [N], float64 [N]).

    exclude_self: `queries` is `keys`, and row i may not be its own neighbour
    (leave-one-out). The search is matrix products in chunks of `chunk` rows,
    |k|^2 - 2 q.k in float32 on values centred on the keys' mean (which keeps
    the rounding of the subtraction small); the distance to the neighbour found
    is then recomputed directly in float64, so that a copy gives exactly 0.
    """
    queries, keys = np.asarray(queries, np.float32), np.asarray(keys, np.float32)
    if queries.ndim != 2 or keys.ndim != 2 or queries.shape[1] != keys.shape[1]:
        raise ValueError(f"need [N, D] and [M, D], got {queries.shape} and {keys.shape}")
    if exclude_self and (queries.shape[0] != keys.shape[0] or keys.shape[0] < 2):
        raise ValueError(f"leave-one-out needs one set of at least 2 rows, got "
                         f"{queries.shape[0]} and {keys.shape[0]}")
    mean = keys.mean(axis=0)
    centred = keys - mean
    key_sq = np.einsum("md,md->m", centred, centred)
    index = np.empty(queries.shape[0], np.int64)
    distance = np.empty(queries.shape[0], np.float64)
    for start in range(0, queries.shape[0], chunk):
        q = queries[start:start + chunk]
        scores = key_sq[None, :] - 2.0 * ((q - mean) @ centred.T)
        if exclude_self:
            rows = np.arange(q.shape[0])
            scores[rows, start + rows] = np.inf
        index[start:start + q.shape[0]] = np.argmin(scores, axis=1)
        diff = q.astype(np.float64) - keys[index[start:start + q.shape[0]]]
        distance[start:start + q.shape[0]] = np.sqrt(np.mean(np.square(diff), axis=1))
    return index, distance


# ---- during training ------------------------------------------------------------
