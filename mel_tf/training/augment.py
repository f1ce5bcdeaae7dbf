"""Image augmentations for training on a few hundred icons.

Three pieces, all TensorFlow ops that trace once and compile under XLA:

* `adjust_contrast`: the source's augmentation of the *real* images only
  (torchvision ``ColorJitter(contrast=(low, high))``), with factors the data
  pipeline draws.
* `diff_augment`: differentiable augmentation (DiffAugment, Zhao et al. 2020),
  applied alike to real and fake images before D (and, being
  differentiable, on G's path and the gradient-penalty path), so that D
  cannot memorise a small training set: brightness, saturation, contrast
  (Zhao's "color"), translation and cutout.
* `AdaptiveAugment`: the ADA heuristic (Karras et al. 2020) that raises the
  augmentation probability while D overfits and lowers it otherwise.

Randomness.  Every random op takes an explicit ``seed``: an int32 or int64
tensor of shape [2], consumed by ``tf.random.stateless_*`` ops with the Philox
algorithm named outright (``auto_select`` may pick another generator on
another device).  There is no Python randomness and no global TensorFlow RNG
state, so a training step is a pure function of (weights, seed, step) and a
run resumed from a checkpoint draws the very same augmentations; with or
without XLA, the numbers are the same (see `_random_bits`).  Derive one
seed per call, e.g. ``tf.random.fold_in(base_seed, step)``, and give the real
batch, the fake batch and the gradient-penalty batch different seeds.

Ranges.  Images are NHWC in the preset's ``data_range`` (seed preset (0, 1),
paper preset (-1, 1)).  Every op is written so that it commutes with the
affine map between ranges: augmenting in (0, 1) and mapping to (-1, 1) gives
what augmenting the mapped image with ``data_range=(-1, 1)`` gives (fills
mapped too).  Translation, cutout and `adjust_contrast` keep values inside the
range (when their fill is inside it).  Brightness, saturation and contrast do
not clip, as in Zhao et al.'s code: clipping would stop the gradient in the
saturated regions, and D only has to see the same transformation on both
sides.

Not implemented, on purpose: flips, rotations and hue changes.  Icons have a
handedness (arrows, text, a face looking left) and a fixed palette, so a
flipped, turned or recoloured icon is not a sample of the data set; applied
with a probability near 1 (DiffAugment's default) such augmentations leak
into G, which learns to draw them (Karras et al. 2020, section 2).
"""

from __future__ import annotations

import numbers
from typing import Optional, Sequence, Tuple, Union

import tensorflow as tf

# Philox is available on every device, with and without XLA, and gives the
# same numbers on each; "auto_select" would be free to choose differently.
_RNG_ALG = "philox"

# ITU-R BT.601 luma weights, as used for the grayscale mean of ColorJitter.
_LUMA_WEIGHTS = (0.299, 0.587, 0.114)

# Zhao et al.'s "color" is three augmentations; each is gated on its own.
_POLICY_GROUPS = {
    "color": ("brightness", "saturation", "contrast"),
}
AUGMENTATIONS = ("brightness", "saturation", "contrast", "translation", "cutout")
_NO_AUGMENTATION = ("", "none")

Range = Tuple[float, float]
Probability = Union[float, tf.Tensor, tf.Variable]


# ---------------------------------------------------------------------------
# The composite entry points
# ---------------------------------------------------------------------------

def diff_augment(x: tf.Tensor, seed, policy: Union[str, Sequence[str]],
                 probability: Probability = 1.0,
                 data_range: Range = (0.0, 1.0), *,
                 translation_ratio: float = 0.125, cutout_ratio: float = 0.5,
                 translation_fill: Optional[float] = None,
                 cutout_fill: Optional[float] = None,
                 brightness_magnitude: float = 0.5) -> tf.Tensor:
    """Applies the augmentations of `policy` to the NHWC batch `x`, differentiably.

    Args:
      x: images in `data_range`, shape [B, H, W, C] with static H and W.
      seed: int32/int64 tensor of shape [2].
      policy: a comma string such as "color,translation,cutout" (see
        `parse_policy`) or a sequence of such names.
      probability: each augmentation is applied to each sample independently
        with this probability.  A float, or a scalar tensor / variable: pass
        `AdaptiveAugment.p` so that the trainer can change it without
        retracing.
      data_range: (lo, hi) of the images.
      translation_ratio, cutout_ratio: Zhao's defaults, 1/8 and 1/2 of the side.
      translation_fill: value shifted into the image; the background of the
        data set.  Defaults to `hi`, the white of the data range, because the
        icons lie on white; pass the background when it is another colour.
      cutout_fill: value of the erased square; defaults to the middle of the
        range (Zhao's 0 in (-1, 1) is mid-grey).
      brightness_magnitude: one offset per image, uniform in +-magnitude in
        (-1, 1) units (Zhao et al. add U[-0.5, 0.5] to images in (-1, 1));
        scaled by (hi - lo) / 2, so the same shift in every data range.

    Returns:
      A tensor of the shape and dtype of `x`.  Gradients flow to `x`.
    """
    names = parse_policy(policy if isinstance(policy, str) else ",".join(policy))
    if not names or isinstance(probability, numbers.Real) and probability <= 0.0:
        return x
    lo, hi = _check_range(data_range)
    if translation_fill is None:
        translation_fill = hi
    # Each augmentation as (random words it uses per sample, function of x and words).
    ops = {
        "brightness": (1, lambda y, w: _brightness(y, w, lo, hi, brightness_magnitude)),
        "saturation": (1, _saturation),
        "contrast": (1, _contrast),
        "translation": (2, lambda y, w: _translation(y, w, translation_ratio, translation_fill)),
        "cutout": (2, lambda y, w: _cutout(y, w, cutout_ratio, cutout_fill, lo, hi)),
    }
    # All the randomness of the call in one draw: XLA unrolls every Philox
    # draw into its own network, and each one costs compile time.  The gates
    # take the last columns; they are drawn even for p = 1 so that a policy
    # draws the same augmentations whatever p is.
    widths = [ops[name][0] for name in names]
    words = _random_bits([tf.shape(x)[0], sum(widths) + len(names)], seed)
    gates = _gates(probability, words[:, sum(widths):])
    column = 0
    for index, name in enumerate(names):
        augmented = ops[name][1](x, words[:, column:column + widths[index]])
        column += widths[index]
        x = augmented if gates is None else tf.where(
            gates[:, index, None, None, None], augmented, x)
    return x


def parse_policy(policy: str) -> Tuple[str, ...]:
    """Parses "color,translation,cutout" into the names of the augmentations, in order.

    "color" expands to ("brightness", "saturation", "contrast").  The empty
    string and "none" mean no augmentation.  Names are case-insensitive and
    may carry spaces.  Unknown or repeated names raise ValueError (repeating
    one would apply it twice, which is never what a config means).
    """
    if not isinstance(policy, str):
        raise ValueError(f"policy must be a string, got {policy!r}")
    text = policy.strip().lower()
    if text in _NO_AUGMENTATION:
        return ()
    names = []
    for token in (t.strip() for t in text.split(",")):
        if token in _POLICY_GROUPS:
            names.extend(_POLICY_GROUPS[token])
        elif token in AUGMENTATIONS:
            names.append(token)
        else:
            raise ValueError(
                f"unknown augmentation {token!r} in policy {policy!r}; valid names: "
                f"{', '.join(sorted(_POLICY_GROUPS) + list(AUGMENTATIONS))} "
                f"(or '' / 'none' for no augmentation)")
    if len(set(names)) != len(names):
        raise ValueError(f"policy {policy!r} repeats an augmentation: {tuple(names)}")
    return tuple(names)


def adjust_contrast(images: tf.Tensor, factors: tf.Tensor,
                    data_range: Range = (0.0, 1.0)) -> tf.Tensor:
    """The source's augmentation of real images, ColorJitter(contrast=...), with
    given per-image factors [N] (drawn by the data pipeline, so that the factors
    split over replicas with their images).

    Image n becomes ``clip(m + factors[n] * (x - m), lo, hi)``, where m is the
    mean of its grayscale image (BT.601 weights 0.299, 0.587, 0.114; torchvision
    uses 0.2989). The mean is taken on the image mapped to [0, 1], so the result
    does not depend on the data range. One-channel images are their own grayscale.
    """
    lo, hi = _check_range(data_range)
    x = tf.cast(images, tf.float32)
    unit = (x - lo) / (hi - lo)
    mean = tf.reduce_mean(_grayscale(unit), axis=[1, 2, 3], keepdims=True)
    factors = tf.reshape(tf.cast(factors, tf.float32), [-1, 1, 1, 1])
    unit = tf.clip_by_value(mean + factors * (unit - mean), 0.0, 1.0)
    return tf.cast(lo + unit * (hi - lo), images.dtype)


# ---------------------------------------------------------------------------
# The single augmentations (each applied to every sample)
# ---------------------------------------------------------------------------

def translate(x: tf.Tensor, offsets: tf.Tensor, fill: float) -> tf.Tensor:
    """Moves image b by offsets[b] = (dy, dx) pixels: out[b, i, j] = x[b, i - dy, j - dx].

    Pixels whose source lies outside the image take `fill`.  Built from two
    batched gathers and a select, so the gradient reaches every pixel of `x`
    that is still visible.
    """
    height, width = _static_hw(x)
    offsets = tf.cast(offsets, tf.int32)
    rows = tf.range(height)[None, :] - offsets[:, 0:1]          # [B, H] source row
    cols = tf.range(width)[None, :] - offsets[:, 1:2]           # [B, W] source column
    moved = tf.gather(x, tf.clip_by_value(rows, 0, height - 1), axis=1, batch_dims=1)
    moved = tf.gather(moved, tf.clip_by_value(cols, 0, width - 1), axis=2, batch_dims=1)
    row_ok = (rows >= 0) & (rows < height)
    col_ok = (cols >= 0) & (cols < width)
    visible = row_ok[:, :, None, None] & col_ok[:, None, :, None]
    return tf.where(visible, moved, tf.cast(fill, x.dtype))


def erase(x: tf.Tensor, corners: tf.Tensor, size: Tuple[int, int], fill: float) -> tf.Tensor:
    """Sets rows [top, top + size[0]) x columns [left, left + size[1]) of image b to `fill`.

    corners[b] = (top, left) may lie outside the image; only the part of the
    rectangle inside it is erased.  A select, so the gradient reaches every
    pixel that is not erased.
    """
    height, width = _static_hw(x)
    corners = tf.cast(corners, tf.int32)
    rows = tf.range(height)[None, :] - corners[:, 0:1]
    cols = tf.range(width)[None, :] - corners[:, 1:2]
    in_rows = (rows >= 0) & (rows < size[0])
    in_cols = (cols >= 0) & (cols < size[1])
    erased = in_rows[:, :, None, None] & in_cols[:, None, :, None]
    return tf.where(erased, tf.cast(fill, x.dtype), x)


# ---------------------------------------------------------------------------
# The augmentations as functions of uniform random uint32 words, [B, k]
# ---------------------------------------------------------------------------

def _brightness(x, words, lo, hi, magnitude):
    u = _unit(words[:, 0])[:, None, None, None]
    offset = (u - 0.5) * (2.0 * magnitude) * ((hi - lo) / 2.0)
    return x + tf.cast(offset, x.dtype)


def _saturation(x, words):
    factor = tf.cast(_unit(words[:, 0]) * 2.0, x.dtype)[:, None, None, None]
    mean = tf.reduce_mean(x, axis=3, keepdims=True)
    return (x - mean) * factor + mean


def _contrast(x, words):
    factor = tf.cast(_unit(words[:, 0]) + 0.5, x.dtype)[:, None, None, None]
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * factor + mean


def _translation(x, words, ratio, fill):
    height, width = _static_hw(x)
    shift_h, shift_w = _scaled_size(height, ratio), _scaled_size(width, ratio)
    offsets = _below(words, [2 * shift_h + 1, 2 * shift_w + 1]) - [shift_h, shift_w]
    return translate(x, offsets, fill)


def _cutout(x, words, ratio, fill, lo, hi):
    height, width = _static_hw(x)
    if fill is None:
        fill = (lo + hi) / 2.0
    size_h, size_w = _scaled_size(height, ratio), _scaled_size(width, ratio)
    if size_h == 0 or size_w == 0:
        return x
    # Zhao's centre range: [0, side] for an even square, [0, side - 1] for an
    # odd one, which keeps the overhang symmetric at both borders.
    centres = _below(words, [height + 1 - size_h % 2, width + 1 - size_w % 2])
    corners = centres - [size_h // 2, size_w // 2]
    return erase(x, corners, (size_h, size_w), fill)


# ---------------------------------------------------------------------------
# Adaptive probability
# ---------------------------------------------------------------------------

class AdaptiveAugment(tf.Module):
    """ADA's controller of the augmentation probability (Karras et al. 2020).

    The overfitting heuristic r_t = E[sign(D(real))] is averaged over
    `interval` training steps; then p moves by
    ``sign(r_t - target) * images / (ada_kimg * 1000)`` and is clipped to
    [0, 1], where `images` is the number of real scores seen in the interval
    (batch * interval for a constant batch).  So p can cross from 0 to 1 in
    `ada_kimg` thousand images.

    p, the accumulators and the step counter are non-trainable variables:
    passing ``controller.p`` to `diff_augment` inside a `tf.function` reads it
    at run time, so changing p never retraces, and a `tf.train.Checkpoint`
    holding the controller resumes it exactly.

    Call `step(d_real_scores)` once per training step: it accumulates, and
    updates p every `interval` steps.
    """

    def __init__(self, initial_p: float = 0.0, target: float = 0.6, interval: int = 4,
                 ada_kimg: float = 500.0, name: Optional[str] = None):
        super().__init__(name=name)
        if not 0.0 <= initial_p <= 1.0:
            raise ValueError(f"initial_p must be in [0, 1], got {initial_p}")
        if interval < 1:
            raise ValueError(f"interval must be at least 1, got {interval}")
        if not ada_kimg > 0:
            raise ValueError(f"ada_kimg must be positive, got {ada_kimg}")
        self.target = float(target)
        self.interval = int(interval)
        self.ada_kimg = float(ada_kimg)
        self.p = _replicated_variable(float(initial_p), "p")
        # The last r_t, for logging.
        self.rt = _replicated_variable(0.0, "rt")
        self._sign_sum = _replicated_variable(0.0, "sign_sum")
        self._count = _replicated_variable(0.0, "count")
        self._steps = _replicated_variable(0, "steps", tf.int64)

    def accumulate(self, d_real_scores: tf.Tensor) -> None:
        """Adds one batch of D's scores (logits) of real images, any shape.

        Under a tf.distribute strategy each replica passes its own share; the
        sums are taken over all replicas, so r_t and the step size are those
        of the global batch and every replica holds the same state.
        """
        signs = tf.sign(tf.cast(tf.reshape(d_real_scores, [-1]), tf.float32))
        local = tf.stack([tf.reduce_sum(signs), tf.cast(tf.size(signs), tf.float32)])
        total = _sum_over_replicas(local)
        self._sign_sum.assign_add(total[0])
        self._count.assign_add(total[1])

    def step(self, d_real_scores: tf.Tensor) -> tf.Tensor:
        """`accumulate`, then move p by the accumulated heuristic and clear the
        accumulators if this is the `interval`-th step; returns p."""
        self.accumulate(d_real_scores)
        steps = self._steps.assign_add(1)
        return self._update_where(steps >= self.interval)

    def _update_where(self, due: tf.Tensor) -> tf.Tensor:
        # Branch-free (selects instead of tf.cond) so it is the same graph
        # eagerly, in tf.function and under XLA.
        has_data = self._count > 0.0
        rt = self._sign_sum / tf.maximum(self._count, 1.0)
        adjust = tf.sign(rt - self.target) * self._count / (self.ada_kimg * 1000.0)
        apply = due & has_data
        self.p.assign(tf.where(apply, tf.clip_by_value(self.p + adjust, 0.0, 1.0), self.p))
        self.rt.assign(tf.where(apply, rt, self.rt))
        self._sign_sum.assign(tf.where(due, 0.0, self._sign_sum))
        self._count.assign(tf.where(due, 0.0, self._count))
        self._steps.assign(tf.where(due, tf.constant(0, tf.int64), self._steps))
        return self.p.read_value()


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def _replicated_variable(initial_value, name: str, dtype=tf.float32) -> tf.Variable:
    """A non-trainable variable that every replica updates to the same value.

    ONLY_FIRST_REPLICA lets a replica assign a MirroredVariable (the default,
    NONE, refuses), and is exact here because the updates are computed from
    values already summed over replicas.
    """
    return tf.Variable(initial_value, trainable=False, name=name, dtype=dtype,
                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


def _sum_over_replicas(x: tf.Tensor) -> tf.Tensor:
    context = tf.distribute.get_replica_context()
    if context is None:
        # Cross-replica context: the caller holds the whole batch.
        return x
    return context.all_reduce(tf.distribute.ReduceOp.SUM, x)


def _gates(probability: Probability, words: tf.Tensor) -> Optional[tf.Tensor]:
    """Booleans, one per word, each true with `probability`; None when all are true.

    A Python number is decided at trace time (p >= 1 needs no compare); a
    tensor or variable is read at run time, so changing it never retraces.
    """
    if isinstance(probability, numbers.Real) and probability >= 1.0:
        return None
    # u in [0, 1): p = 0 never applies, p = 1 always does.
    return _unit(words) < tf.cast(probability, tf.float32)


def _random_bits(shape, seed) -> tf.Tensor:
    """Uniform uint32 words from Philox.

    Floats are not drawn with tf.random.stateless_uniform because under XLA
    its float path gives other numbers than eagerly (TF 2.21, same seed and
    algorithm), while its integer words agree; floats and bounded integers
    are made from words here (`_unit`, `_below`), so eager, graph and XLA
    runs augment alike.
    """
    return tf.random.stateless_uniform(shape, seed, minval=None, maxval=None,
                                       dtype=tf.uint32, alg=_RNG_ALG)


def _unit(words: tf.Tensor) -> tf.Tensor:
    """U[0, 1) float32 from the top 24 bits of each word (exact in float32)."""
    top = tf.bitwise.right_shift(words, tf.constant(8, tf.uint32))
    return tf.cast(top, tf.float32) * (1.0 / (1 << 24))


def _below(words: tf.Tensor, bounds) -> tf.Tensor:
    """Integers in [0, bound) from uint32 words: floor(word * bound / 2^32).

    Multiply-and-shift rather than a modulo; the bias, bound / 2^32, is nil
    for image sides.  `bounds` broadcasts against the last axis of `words`.
    """
    wide = tf.cast(words, tf.int64) * tf.constant(bounds, tf.int64)
    return tf.cast(tf.bitwise.right_shift(wide, tf.constant(32, tf.int64)), tf.int32)


def _grayscale(x: tf.Tensor) -> tf.Tensor:
    channels = x.shape[-1]
    if channels == 1:
        return x
    if channels != 3:
        raise ValueError(f"expected 1 or 3 channels, got {channels}")
    return tf.reduce_sum(x * tf.constant(_LUMA_WEIGHTS, x.dtype), axis=-1, keepdims=True)


def _scaled_size(side: int, ratio: float) -> int:
    """round(side * ratio), rounding halves up as Zhao et al. do."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be in [0, 1], got {ratio}")
    return int(side * ratio + 0.5)


def _static_hw(x: tf.Tensor) -> Tuple[int, int]:
    if x.shape.rank != 4 or x.shape[1] is None or x.shape[2] is None:
        raise ValueError(f"expected NHWC images with static height and width, got {x.shape}")
    return int(x.shape[1]), int(x.shape[2])


def _check_range(data_range: Range) -> Tuple[float, float]:
    lo, hi = (float(v) for v in data_range)
    if not hi > lo:
        raise ValueError(f"data_range must be (lo, hi) with hi > lo, got {data_range!r}")
    return lo, hi
