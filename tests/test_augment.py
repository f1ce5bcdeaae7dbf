"""Tests of mel_tf.training.augment: DiffAugment ops, the source's contrast jitter, ADA's controller."""

import numpy as np
import pytest
import tensorflow as tf

from mel_tf.training import augment

RANGES = [(0.0, 1.0), (-1.0, 1.0)]
SEED = tf.constant([3, 7], tf.int32)
OTHER_SEED = tf.constant([3, 8], tf.int32)


def images(data_range, batch=4, size=8, channels=3, seed=0):
    """Uniform random images in `data_range`."""
    lo, hi = data_range
    rng = np.random.default_rng(seed)
    return tf.constant(lo + (hi - lo) * rng.random((batch, size, size, channels)), tf.float32)


def to_range(x, data_range):
    """Maps an image in (0, 1) to `data_range`."""
    lo, hi = data_range
    return lo + (hi - lo) * x


def single(name, **kwargs):
    """One DiffAugment op alone, applied to every sample, as f(x, seed, data_range)."""
    return lambda x, s, r: augment.diff_augment(x, s, name, data_range=r, **kwargs)


def random_contrast(x, seed, data_range=(0.0, 1.0), low=1.0, high=2.0):
    """The source's contrast jitter with factors U[low, high] drawn from `seed`."""
    factors = tf.random.stateless_uniform([x.shape[0]], seed, low, high, alg="philox")
    return augment.adjust_contrast(x, factors, data_range)


# Every augmentation as f(x, seed, data_range), with in-range fills.
OPS = {
    "brightness": single("brightness"),
    "saturation": single("saturation"),
    "contrast": single("contrast"),
    "translation": lambda x, s, r: augment.diff_augment(x, s, "translation", data_range=r,
                                                        translation_fill=r[1]),
    "cutout": single("cutout"),
    "random_contrast": random_contrast,
    "diff_augment": single("color,translation,cutout"),
}
# Those that keep values inside the data range; brightness, saturation and
# contrast are not clipped, as in Zhao et al.
IN_RANGE = ["translation", "cutout", "random_contrast"]


@pytest.mark.parametrize("data_range", RANGES)
@pytest.mark.parametrize("name", list(OPS))
def test_shape_dtype_and_determinism(name, data_range):
    x = images(data_range, batch=8)
    out = OPS[name](x, SEED, data_range)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out, OPS[name](x, SEED, data_range))
    assert not np.array_equal(out, OPS[name](x, OTHER_SEED, data_range))
    assert not np.array_equal(out, x)


@pytest.mark.parametrize("data_range", RANGES)
@pytest.mark.parametrize("name", IN_RANGE + ["diff_augment_geometric"])
def test_stays_in_range(name, data_range):
    lo, hi = data_range
    x = images(data_range, batch=16)
    if name == "diff_augment_geometric":
        out = augment.diff_augment(x, SEED, "translation,cutout", data_range=data_range)
    else:
        out = OPS[name](x, SEED, data_range)
    assert np.min(out) >= lo and np.max(out) <= hi


def test_color_ops_are_not_clipped():
    # A white image brightened (offset > 0 for some sample) leaves (0, 1):
    # the documented behaviour, the same as Zhao et al.'s code.
    x = tf.ones([16, 4, 4, 3])
    out = OPS["brightness"](x, SEED, (0.0, 1.0)).numpy()
    assert out.max() > 1.0 and out.min() < 1.0
    # Offsets are within +-0.5 in (-1, 1) units: +-0.25 of the width of (0, 1).
    assert np.all(np.abs(out - 1.0) <= 0.25)
    x = images((0.0, 1.0), batch=16)
    for name in ("contrast", "saturation"):
        out = OPS[name](x, SEED, (0.0, 1.0))
        assert np.max(out) > 1.0 or np.min(out) < 0.0, name


@pytest.mark.parametrize("name", list(OPS))
def test_result_does_not_depend_on_the_data_range(name):
    """Augmenting in (0, 1) then mapping to (-1, 1) equals augmenting in (-1, 1)."""
    x01 = images((0.0, 1.0), batch=8)
    a = to_range(OPS[name](x01, SEED, (0.0, 1.0)), (-1.0, 1.0))
    b = OPS[name](to_range(x01, (-1.0, 1.0)), SEED, (-1.0, 1.0))
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("data_range", RANGES)
@pytest.mark.parametrize("name", list(OPS))
def test_gradient_reaches_the_generator(name, data_range):
    rng = np.random.default_rng(1)
    z = tf.constant(rng.normal(size=(4, 8, 8, 4)), tf.float32)
    kernel = tf.Variable(rng.normal(size=(3, 3, 4, 3)) * 0.3, dtype=tf.float32)
    weights = tf.constant(rng.normal(size=(4, 8, 8, 3)), tf.float32)
    squash = tf.sigmoid if data_range == (0.0, 1.0) else tf.tanh
    with tf.GradientTape() as tape:
        fake = squash(tf.nn.conv2d(z, kernel, 1, "SAME"))
        # A weighted sum: a plain sum of contrast(x) would not see the contrast.
        loss = tf.reduce_sum(OPS[name](fake, SEED, data_range) * weights)
    grad = tape.gradient(loss, kernel)
    assert grad is not None
    assert np.all(np.isfinite(grad)) and np.any(np.abs(grad) > 0)


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float16])
def test_low_precision_images_keep_their_dtype(dtype):
    x = tf.cast(images((-1.0, 1.0)), dtype)
    for name, op in OPS.items():
        out = op(x, SEED, (-1.0, 1.0))
        assert out.dtype == dtype and out.shape == x.shape, name


def test_second_order_gradient_for_the_gradient_penalty():
    """The GP path differentiates ||d D(aug(x)) / dx|| with respect to D's weights."""
    rng = np.random.default_rng(3)
    x = tf.constant(images((-1.0, 1.0)))
    d_kernel = tf.Variable(rng.normal(size=(3, 3, 3, 1)) * 0.3, dtype=tf.float32)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = augment.diff_augment(x, SEED, "color,translation,cutout", 0.8, (-1.0, 1.0))
            score = tf.reduce_sum(tf.nn.softplus(tf.nn.conv2d(y, d_kernel, 1, "SAME")))
        grad_x = inner.gradient(score, x)
        penalty = tf.reduce_sum(tf.square(grad_x))
    grad = outer.gradient(penalty, d_kernel)
    assert np.all(np.isfinite(grad)) and np.any(np.abs(grad) > 0)


def test_gradient_through_adaptive_probability():
    x = tf.Variable(images((0.0, 1.0)))
    p = tf.Variable(0.5, trainable=False)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(augment.diff_augment(x, SEED, "color,translation,cutout", p) ** 2)
    grad = tape.gradient(loss, x)
    assert np.all(np.isfinite(grad)) and np.any(np.abs(grad) > 0)


@pytest.mark.parametrize("data_range", RANGES)
def test_zero_ratios_and_probability_are_the_identity(data_range):
    x = images(data_range)
    np.testing.assert_array_equal(augment.diff_augment(
        x, SEED, "translation", data_range=data_range, translation_ratio=0.0), x)
    np.testing.assert_array_equal(augment.diff_augment(
        x, SEED, "cutout", data_range=data_range, cutout_ratio=0.0), x)
    policy = "color,translation,cutout"
    for p in (0.0, tf.constant(0.0), tf.Variable(0.0)):
        np.testing.assert_array_equal(
            augment.diff_augment(x, SEED, policy, p, data_range), x)
    for policy in ("", "none", " None ", ()):
        np.testing.assert_array_equal(augment.diff_augment(x, SEED, policy), x)


def test_random_contrast_identity_and_numpy_reference():
    for data_range in RANGES:
        x = images(data_range)
        np.testing.assert_allclose(
            random_contrast(x, SEED, data_range, low=1.0, high=1.0), x, atol=1e-6)
    rng = np.random.default_rng(2)
    unit = rng.random((2, 3, 3, 3))
    gray_mean = (unit @ np.array([0.299, 0.587, 0.114])).mean(axis=(1, 2))[:, None, None, None]
    expected01 = np.clip(gray_mean + 2.0 * (unit - gray_mean), 0.0, 1.0)
    assert 0 < np.mean(expected01 == 1.0) < 1  # the clip matters in this example
    for data_range in RANGES:
        out = random_contrast(tf.constant(to_range(unit, data_range), tf.float32),
                              SEED, data_range, low=2.0, high=2.0)
        np.testing.assert_allclose(out, to_range(expected01, data_range), atol=1e-5)


def test_contrast_applies_each_image_its_own_factor():
    x = tf.tile(images((0.0, 1.0), batch=1), [8, 1, 1, 1])
    out = random_contrast(x, SEED, low=1.0, high=2.0).numpy()
    spread = out.std(axis=(1, 2, 3))
    assert len(np.unique(np.round(spread, 5))) == 8


@pytest.mark.parametrize("fill", [1.0, -1.0])
def test_translation_moves_content_by_an_integer_within_bounds(fill):
    size, batch, shift = 16, 32, 2    # shift = round(16 * 0.125)
    dot = np.full((batch, size, size, 3), fill, np.float32)
    dot[:, 8, 8, :] = 0.5
    out = augment.diff_augment(tf.constant(dot), SEED, "translation", translation_ratio=0.125,
                               translation_fill=fill).numpy()
    offsets = []
    for b in range(batch):
        where = np.argwhere(out[b, :, :, 0] != fill)
        assert len(where) == 1, "the dot must move whole, and nothing else appear"
        dy, dx = where[0] - 8
        assert abs(dy) <= shift and abs(dx) <= shift
        np.testing.assert_array_equal(out[b, 8 + dy, 8 + dx], [0.5] * 3)
        offsets.append((dy, dx))
    offsets = np.array(offsets)
    assert len(set(offsets[:, 0])) > 1 and len(set(offsets[:, 1])) > 1
    # The same seed moves any image by the same offsets, filling the border.
    x = images((-1.0, 1.0), batch=batch, size=size)
    expected = augment.translate(x, tf.constant(offsets, tf.int32), fill)
    np.testing.assert_array_equal(augment.diff_augment(
        x, SEED, "translation", data_range=(-1.0, 1.0), translation_ratio=0.125,
        translation_fill=fill),
        expected)


def test_translate_exact():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    out = augment.translate(tf.constant(x), tf.constant([[1, -2]]), fill=-1.0).numpy()[0, :, :, 0]
    expected = np.full((4, 4), -1.0, np.float32)
    expected[1:, :2] = x[0, :3, 2:, 0]
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("size,ratio", [(16, 0.5), (10, 0.3)])
def test_cutout_erases_exactly_a_square(size, ratio):
    side = int(size * ratio + 0.5)
    batch, fill = 32, 0.9
    x = tf.fill([batch, size, size, 3], 0.25)
    out = augment.diff_augment(x, SEED, "cutout", cutout_ratio=ratio, cutout_fill=fill).numpy()
    full_squares = 0
    for b in range(batch):
        erased = out[b] == fill
        assert np.all(erased == erased[:, :, :1]), "all channels are erased together"
        assert np.all(out[b][~erased] == 0.25)
        rows, cols = np.nonzero(erased[:, :, 0])
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        assert erased[top:bottom, left:right].all(), "the erased pixels form a rectangle"
        # The square may hang over a border (Zhao), never more than half of it.
        for start, stop in ((top, bottom), (left, right)):
            assert side - side // 2 <= stop - start <= side
            if 0 < start and stop < size:
                assert stop - start == side
        full_squares += (bottom - top, right - left) == (side, side)
    assert full_squares > 0


def test_erase_exact():
    x = tf.zeros([2, 6, 6, 1])
    out = augment.erase(x, tf.constant([[1, 2], [-1, 4]]), (3, 3), fill=1.0).numpy()[..., 0]
    expected = np.zeros((2, 6, 6), np.float32)
    expected[0, 1:4, 2:5] = 1.0
    expected[1, 0:2, 4:6] = 1.0
    np.testing.assert_array_equal(out, expected)


def test_fills_and_defaults():
    x = tf.fill([16, 8, 8, 3], 0.25)
    # cutout defaults to mid-range, diff_augment's translation to white (hi).
    assert 0.0 in augment.diff_augment(x, SEED, "cutout", data_range=(-1.0, 1.0)).numpy()
    assert 0.5 in augment.diff_augment(x, SEED, "cutout").numpy()
    out = augment.diff_augment(x, SEED, "translation", data_range=(0.0, 1.0)).numpy()
    assert set(np.unique(out)) == {0.25, 1.0}
    out = augment.diff_augment(x, SEED, "translation,cutout", translation_fill=0.0,
                               cutout_fill=0.75).numpy()
    assert set(np.unique(out)) == {0.0, 0.25, 0.75}


def test_probability_gates_each_sample():
    x = images((0.0, 1.0), batch=64)
    always = augment.diff_augment(x, SEED, "translation", 1.0).numpy()
    half = augment.diff_augment(x, SEED, "translation", tf.constant(0.5)).numpy()
    kept = [np.array_equal(half[b], x[b]) for b in range(64)]
    moved = [np.array_equal(half[b], always[b]) for b in range(64)]
    assert all(k or m for k, m in zip(kept, moved))
    assert 16 < sum(kept) < 48


def test_parse_policy():
    assert augment.parse_policy("color,translation,cutout") == (
        "brightness", "saturation", "contrast", "translation", "cutout")
    assert augment.parse_policy(" Translation , brightness") == ("translation", "brightness")
    assert augment.parse_policy("") == () and augment.parse_policy("none") == ()
    with pytest.raises(ValueError, match="valid names:.*color.*cutout"):
        augment.parse_policy("color,flip")
    with pytest.raises(ValueError, match="repeats"):
        augment.parse_policy("color,contrast")
    with pytest.raises(ValueError):
        augment.diff_augment(images((0.0, 1.0)), SEED, "hue")


def test_diff_augment_and_adaptive_augment_compile_with_xla():
    """One compiled train-step stand-in: augment with ADA's p, then update p.

    XLA gives the numbers of eager mode, and p changes without a retrace.
    """
    policy, data_range, batch = "color,translation,cutout", (-1.0, 1.0), 8
    # 8 images per swing: one step with all-negative scores takes p to 0.
    ada = augment.AdaptiveAugment(initial_p=0.7, interval=1, ada_kimg=batch / 1000)
    x = images(data_range, batch=batch)
    seed = tf.constant([5, 6], tf.int64)

    @tf.function(jit_compile=True)
    def train_step(x, seed, d_real_scores):
        out = augment.diff_augment(x, seed, policy, ada.p, data_range)
        ada.step(d_real_scores)
        return out

    out = train_step(x, seed, -tf.ones([batch, 1]))
    np.testing.assert_allclose(out, augment.diff_augment(x, seed, policy, 0.7, data_range),
                               atol=1e-5)
    assert ada.p.numpy() == 0.0
    np.testing.assert_array_equal(train_step(x, seed, tf.ones([batch, 1])), x)
    assert ada.p.numpy() == 1.0
    np.testing.assert_allclose(train_step(x, seed, tf.ones([batch, 1])),
                               augment.diff_augment(x, seed, policy, 1.0, data_range), atol=1e-5)
    assert train_step.experimental_get_tracing_count() == 1


# ---- AdaptiveAugment -------------------------------------------------------

def test_adaptive_p_rises_by_the_exact_step():
    batch, interval, kimg = 8, 4, 500.0
    ada = augment.AdaptiveAugment(interval=interval, ada_kimg=kimg)
    step_size = batch * interval / (kimg * 1000)
    for _ in range(interval - 1):
        assert ada.step(tf.fill([batch, 1], 3.0)).numpy() == 0.0
    np.testing.assert_allclose(ada.step(tf.fill([batch, 1], 3.0)), step_size, rtol=1e-6)
    np.testing.assert_allclose(ada.rt, 1.0)
    for _ in range(2 * interval):
        p = ada.step(tf.fill([batch], 0.1))
    np.testing.assert_allclose(p, 3 * step_size, rtol=1e-5)


def test_adaptive_p_falls_and_clips_at_zero():
    batch, interval = 8, 4
    step_size = batch * interval / 500e3
    ada = augment.AdaptiveAugment(initial_p=1.5 * step_size, interval=interval)
    train_step = tf.function(ada.step)
    for _ in range(interval):
        p = train_step(tf.fill([batch], -2.0))
    np.testing.assert_allclose(p, 0.5 * step_size, rtol=1e-5)
    for _ in range(interval):
        p = train_step(tf.fill([batch], -2.0))
    assert p.numpy() == 0.0 and ada.p.numpy() == 0.0


def test_adaptive_target_and_step_size():
    ada = augment.AdaptiveAugment(initial_p=0.5, interval=2, ada_kimg=1.0)
    # r_t exactly at the target (16 of 20 positive: 0.6) leaves p alone.
    ada.step(tf.constant([1.0] * 8 + [-1.0] * 2))
    np.testing.assert_allclose(ada.step(tf.constant([1.0] * 8 + [-1.0] * 2)), 0.5)
    # Below the target: p falls by 20 images / 1000 at the interval's end only.
    np.testing.assert_allclose(ada.step(tf.constant([1.0] * 5 + [-1.0] * 5)), 0.5)
    np.testing.assert_allclose(ada.step(tf.constant([1.0] * 5 + [-1.0] * 5)), 0.5 - 0.02,
                               rtol=1e-6)
