"""Tests of mel_tf.metrics: SWD, MS-SSIM diversity, FID/KID and the bundle."""

import json

import numpy as np
import pytest
import scipy.ndimage

from mel_tf import metrics

KERNEL_2D = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0


# ---- test images ------------------------------------------------------------------

def smooth_blobs(n, size, rng):
    """uint8 [n, size, size, 3]: a flat colour plus 6 coloured Gaussian blobs each."""
    yy, xx = np.mgrid[0:size, 0:size]
    cy = rng.uniform(0, size, (n, 6, 1, 1))
    cx = rng.uniform(0, size, (n, 6, 1, 1))
    sigma = rng.uniform(size / 12, size / 5, (n, 6, 1, 1))
    weight = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))
    colour = rng.uniform(-160, 160, (n, 6, 3))
    images = rng.uniform(40, 215, (n, 1, 1, 3)) + np.einsum("nkyx,nkc->nyxc", weight, colour)
    return np.clip(np.round(images), 0, 255).astype(np.uint8)


def blur(images, sigma):
    x = scipy.ndimage.gaussian_filter(images.astype(np.float64), (0, sigma, sigma, 0))
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def blob_halves():
    """Two disjoint halves (128 images each, 32x32) of one set of similar images."""
    images = smooth_blobs(256, 32, np.random.default_rng(3))
    return images[:128], images[128:]


# ---- SWD: pyramid -------------------------------------------------------------------

def test_swd_resolutions():
    assert metrics.swd_resolutions(64) == [64, 32, 16]
    assert metrics.swd_resolutions(256) == [256, 128, 64, 32, 16]
    assert metrics.swd_resolutions(16) == [16]
    assert metrics.swd_resolutions(8) == [8]          # under 16: one level, raw patches
    with pytest.raises(ValueError, match="7x7"):
        metrics.swd_resolutions(4)


def test_pyr_down_matches_2d_mirror_convolution():
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 12, 3)).astype(np.float32)
    got = metrics.pyr_down(x)
    assert got.shape == (2, 4, 6, 3)
    for n in range(2):
        for c in range(3):
            want = scipy.ndimage.convolve(x[n, :, :, c].astype(np.float64), KERNEL_2D,
                                          mode="mirror")[::2, ::2]
            np.testing.assert_allclose(got[n, :, :, c], want, rtol=1e-5, atol=1e-4)


def test_pyr_down_mirror_edges_by_hand():
    # An impulse at (1, 1): output (0, 0) sees row/column 1 twice (offsets -1
    # and +1, since 'mirror' maps index -1 to 1), so its weight is
    # (4 + 4)^2 / 256 = 0.25. ('reflect', which repeats the edge, would give 25/256.)
    x = np.zeros((1, 8, 8, 1), np.float32)
    x[0, 1, 1, 0] = 1.0
    assert metrics.pyr_down(x)[0, 0, 0, 0] == pytest.approx(0.25, abs=1e-7)
    # An impulse at (0, 0): weight 6 * 6 / 256 at output (0, 0) and 6 * 1 / 256
    # at output (0, 1) (input column 2, two to the right).
    x = np.zeros((1, 8, 8, 1), np.float32)
    x[0, 0, 0, 0] = 1.0
    y = metrics.pyr_down(x)[0, :, :, 0]
    assert y[0, 0] == pytest.approx(36 / 256, abs=1e-7)
    assert y[0, 1] == pytest.approx(6 / 256, abs=1e-7)
    assert y[1, 1] == pytest.approx(1 / 256, abs=1e-7)


def test_pyr_up_matches_zero_insertion_and_convolution():
    x = np.random.default_rng(1).uniform(0, 255, (2, 4, 5, 3)).astype(np.float32)
    got = metrics.pyr_up(x)
    assert got.shape == (2, 8, 10, 3)
    for n in range(2):
        for c in range(3):
            zeros = np.zeros((8, 10))
            zeros[::2, ::2] = x[n, :, :, c]
            want = scipy.ndimage.convolve(zeros, 4.0 * KERNEL_2D, mode="mirror")
            np.testing.assert_allclose(got[n, :, :, c], want, rtol=1e-5, atol=1e-4)


def test_laplacian_pyramid_of_constant_image():
    x = np.full((2, 32, 32, 3), 137, np.uint8)
    pyramid = metrics.laplacian_pyramid(x, 3)
    assert [p.shape for p in pyramid] == [(2, 32, 32, 3), (2, 16, 16, 3), (2, 8, 8, 3)]
    for level in pyramid[:-1]:
        assert np.abs(level).max() < 1e-4
    np.testing.assert_allclose(pyramid[-1], 137.0, atol=1e-4)


def test_laplacian_pyramid_reconstructs_the_image():
    x = np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    pyramid = metrics.laplacian_pyramid(x, 3)
    images = pyramid[-1]           # collapse from the coarsest level up
    for level in pyramid[-2::-1]:
        images = metrics.pyr_up(images) + level
    np.testing.assert_allclose(images, x, atol=1e-3)


def test_laplacian_pyramid_rejects_sides_it_cannot_halve():
    with pytest.raises(ValueError, match="divisible"):
        metrics.laplacian_pyramid(np.zeros((1, 20, 20, 3), np.uint8), 4)


# ---- SWD: descriptors and the distance --------------------------------------------

def test_extract_descriptors_are_whole_neighbourhoods():
    n, h, w = 3, 12, 10
    level = np.arange(n * h * w * 3, dtype=np.float32).reshape(n, h, w, 3)
    desc = metrics.extract_descriptors(level, 50, 7, np.random.default_rng(0))
    assert desc.shape == (n * 50, 7, 7, 3)
    for row, patch in enumerate(desc):
        image, rest = divmod(int(patch[0, 0, 0]), h * w * 3)
        y0, x0 = divmod(rest // 3, w)
        assert image == row // 50                      # rows grouped by image
        assert 0 <= y0 <= h - 7 and 0 <= x0 <= w - 7   # centre in [3, side - 3)
        np.testing.assert_array_equal(patch, level[image, y0:y0 + 7, x0:x0 + 7])


def test_normalize_descriptors_per_channel():
    rng = np.random.default_rng(0)
    desc = rng.normal([10.0, -5.0, 100.0], [2.0, 0.5, 30.0], (4000, 7, 7, 3)).astype(np.float32)
    flat = metrics.normalize_descriptors(desc)
    assert flat.shape == (4000, 147)
    per_channel = flat.reshape(-1, 3)
    np.testing.assert_allclose(per_channel.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(per_channel.std(axis=0), 1.0, atol=1e-4)
    # A flat set stays finite (zero) instead of dividing by a zero std.
    flat = metrics.normalize_descriptors(np.full((10, 7, 7, 3), 4.0, np.float32))
    assert np.all(flat == 0.0)


def test_sliced_wasserstein_by_hand_in_one_dimension():
    # In 1-D every unit direction is +1 or -1; either way the distance is the
    # mean gap of the sorted samples: sorted a = 1 2 3, sorted b = 0 5 10,
    # gaps 1 3 7 -> 11 / 3.
    a = np.array([[3.0], [1.0], [2.0]])
    b = np.array([[10.0], [0.0], [5.0]])
    assert metrics.sliced_wasserstein(a, b, 0, 4, 8) == pytest.approx(11 / 3, rel=1e-6)
    # Reordering a set changes nothing.
    assert metrics.sliced_wasserstein(a, a[::-1], 0, 4, 8) == 0.0


def test_sliced_wasserstein_of_a_shift_in_two_dimensions():
    # b = a + (t, 0): along unit direction u every projection moves by t * u_x,
    # so the distance is t * mean |u_x| over the directions drawn, which the
    # same seed reproduces.
    a = np.random.default_rng(5).normal(size=(100, 2))
    t = 3.0
    got = metrics.sliced_wasserstein(a, a + [t, 0.0], 7, 3, 16)
    rng = np.random.default_rng(7)
    means = []
    for _ in range(3):
        dirs = rng.standard_normal((2, 16))
        dirs /= np.sqrt(np.sum(dirs ** 2, axis=0, keepdims=True))
        means.append(np.mean(t * np.abs(dirs[0])))
    assert got == pytest.approx(np.mean(means), rel=1e-5)


def test_swd_halves_of_a_set_are_far_closer_than_altered_sets(blob_halves):
    a, b = blob_halves
    rng = np.random.default_rng(9)
    same = metrics.sliced_wasserstein_distance(a, b, 0)
    blurred = metrics.sliced_wasserstein_distance(a, blur(b, 3.0), 0)
    repeated = metrics.sliced_wasserstein_distance(a, np.repeat(b[:1], len(b), axis=0), 0)
    noise = metrics.sliced_wasserstein_distance(
        a, rng.integers(0, 256, b.shape, dtype=np.uint8), 0)
    assert list(same) == ["32", "16", "avg"]
    assert same["avg"] == pytest.approx((same["32"] + same["16"]) / 2)
    for other in (blurred, repeated, noise):
        assert same["32"] < 0.5 * other["32"]      # finest level
        assert same["avg"] < other["avg"]
    for other in (repeated, noise):
        assert same["avg"] < 0.5 * other["avg"]


def test_swd_grows_with_blur(blob_halves):
    a, b = blob_halves
    results = [metrics.sliced_wasserstein_distance(a, blur(b, s), 0) for s in (1.0, 2.0, 3.0)]
    for key in ("32", "avg"):
        values = [r[key] for r in results]
        assert values == sorted(values) and values[0] < values[-1], (key, values)


def test_swd_is_fixed_by_its_seed_and_checks_its_inputs(blob_halves):
    a, b = blob_halves
    a, b = a[:16], b[:16]
    first = metrics.sliced_wasserstein_distance(a, b, 4)
    assert metrics.sliced_wasserstein_distance(a, b, np.random.default_rng(4)) == first
    assert metrics.sliced_wasserstein_distance(a, b, 5) != first
    with pytest.raises(ValueError, match="same shape"):
        metrics.sliced_wasserstein_distance(a, b[:8], 0)
    with pytest.raises(TypeError, match="uint8"):
        metrics.sliced_wasserstein_distance(a / 255.0, b, 0)


def test_swd_of_small_images():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
    result = metrics.sliced_wasserstein_distance(x[:8], x[8:], 0)
    assert list(result) == ["8", "avg"] and result["8"] == result["avg"] > 0
    tiny = np.zeros((8, 4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 7x7"):
        metrics.sliced_wasserstein_distance(tiny, tiny, 0)


# ---- MS-SSIM ------------------------------------------------------------------------

def test_ms_ssim_upsample_factor():
    assert [metrics.ms_ssim_upsample_factor(s) for s in (4, 8, 16, 32, 64, 128, 176, 256)] == \
        [44, 22, 11, 6, 3, 2, 1, 1]


@pytest.mark.parametrize("weights, shape", [
    (metrics.MS_SSIM_WEIGHTS, (2, 177, 183, 3)),   # the published 5 scales
    ((0.2, 0.3, 0.5), (3, 47, 45, 3)),              # odd sides at every scale
])
def test_ms_ssim_matches_tensorflow(weights, shape):
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    base = scipy.ndimage.gaussian_filter(rng.uniform(0, 255, shape), (0, 3, 3, 0))
    base = (base - base.min()) / (base.max() - base.min()) * 255
    other = np.clip(base + rng.normal(0, 20, shape), 0, 255)
    other[-1] = rng.uniform(0, 255, shape[1:])        # one unrelated pair
    want = tf.image.ssim_multiscale(
        tf.constant(base, tf.float32), tf.constant(other, tf.float32), 255.0,
        power_factors=weights, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03).numpy()
    got = metrics.ms_ssim(base, other, weights)
    assert got.shape == (shape[0],)
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_ms_ssim_of_identical_pairs_is_one():
    x = smooth_blobs(4, 32, np.random.default_rng(1))
    pairs = np.repeat(x, 2, axis=0)                    # 0 = 1, 2 = 3, ...
    assert metrics.ms_ssim_diversity(pairs) == pytest.approx(1.0, abs=1e-5)


def test_ms_ssim_noise_pairs_are_far_more_diverse_than_near_duplicates():
    rng = np.random.default_rng(2)
    x = smooth_blobs(8, 32, rng)
    near = np.repeat(x, 2, axis=0).astype(np.float64)
    near[1::2] += rng.normal(0, 4, near[1::2].shape)
    near = np.clip(np.round(near), 0, 255).astype(np.uint8)
    noise = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    near_value = metrics.ms_ssim_diversity(near)
    noise_value = metrics.ms_ssim_diversity(noise)
    assert near_value > 0.8
    assert noise_value < 0.5 * near_value


def test_ms_ssim_diversity_pairs_consecutive_images_and_drops_an_odd_one():
    x = smooth_blobs(5, 16, np.random.default_rng(3))
    up = np.repeat(np.repeat(x.astype(np.float64), 11, axis=1), 11, axis=2)
    want = np.mean(metrics.ms_ssim(up[[0, 2]], up[[1, 3]]))
    assert metrics.ms_ssim_diversity(x) == pytest.approx(want, rel=1e-12)


# ---- FID and KID ----------------------------------------------------------------------

def test_frechet_distance_of_known_gaussians():
    mu = np.array([1.0, -2.0, 0.5])
    eye = np.eye(3)
    assert metrics.frechet_distance(mu, eye, mu, eye) == pytest.approx(0.0, abs=1e-9)
    assert metrics.frechet_distance(np.zeros(3), eye, mu, eye) == pytest.approx(5.25)
    # Diagonal covariances: ||mu||^2 + sum (sqrt(a) - sqrt(b))^2.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    assert metrics.frechet_distance(np.zeros(3), np.diag(a), mu, np.diag(b)) == \
        pytest.approx(5.25 + 1.0 + 0.0 + 4.0)


def test_frechet_distance_of_non_commuting_covariances():
    # Tr sqrt(S1 S2) = Tr sqrt(S1^1/2 S2 S1^1/2), the symmetric form, computed
    # here with eigendecompositions instead of sqrtm.
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=(2, 5, 5))
    s1, s2 = m1 @ m1.T + 0.1 * np.eye(5), m2 @ m2.T + 0.1 * np.eye(5)

    def sym_sqrt(s):
        w, v = np.linalg.eigh(s)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    r1 = sym_sqrt(s1)
    want = np.trace(s1) + np.trace(s2) - 2 * np.trace(sym_sqrt(r1 @ s2 @ r1))
    got = metrics.frechet_distance(np.zeros(5), s1, np.zeros(5), s2)
    assert got == pytest.approx(want, rel=1e-8)


def test_fid_from_samples():
    rng = np.random.default_rng(1)
    mu = np.array([1.0, 0.0, -1.0, 2.0])
    a = rng.normal(size=(20000, 4))
    b = rng.normal(size=(20000, 4))
    assert metrics.fid_from_features(a, a) == pytest.approx(0.0, abs=1e-6)
    assert metrics.fid_from_features(a, b) < 0.01
    assert metrics.fid_from_features(a, b + mu) == pytest.approx(6.0, abs=0.1)


def test_kid_matches_a_direct_unbiased_mmd():
    # One subset as large as both sets takes every feature, so KID is the
    # unbiased MMD^2 of the whole sets with k(x, y) = (x.y / d + 1)^3.
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 3))
    y = rng.normal(0.5, 1.0, size=(6, 3))

    def k(p, q):
        return (p @ q / 3 + 1) ** 3

    m = 6
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert metrics.kid_from_features(x, y, 0, 1, 6) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_kid_of_same_and_different_distributions():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(1000, 16))
    b = rng.normal(size=(1000, 16))
    same = metrics.kid_from_features(a, b, 0, 10, 250)
    shifted = metrics.kid_from_features(a, b + 0.5, 0, 10, 250)
    assert abs(same) < 0.03      # unbiased: fluctuates around 0 (here about -0.006)
    assert shifted > 0.5         # here about 1.1
    assert metrics.kid_from_features(a, b, 0, 10, 250) == same    # seeded


def _tiny_extractor():
    keras = pytest.importorskip("keras")
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Dense(4, kernel_initializer="glorot_uniform")(
        keras.layers.GlobalAveragePooling2D()(inputs))
    return keras.Model(inputs, features)


# Keras' own model.save trips NumPy 2's __array__ copy-keyword deprecation.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_fid_kid_with_a_keras_file_and_a_saved_model(tmp_path):
    tf = pytest.importorskip("tensorflow")
    model = _tiny_extractor()
    keras_path = str(tmp_path / "extractor.keras")
    model.save(keras_path)
    saved_model_path = str(tmp_path / "extractor_savedmodel")
    model.export(saved_model_path, verbose=False)

    rng = np.random.default_rng(4)
    real = rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    fake = smooth_blobs(40, 16, rng)
    # What fid_kid should feed the model: bilinear 16 -> 8, then [-1, 1].
    def features(images):
        x = tf.image.resize(tf.constant(images, tf.float32), (8, 8), method="bilinear")
        return np.asarray(model(x / 127.5 - 1.0), np.float64)

    want_fid = metrics.fid_from_features(features(real), features(fake))
    for path in (keras_path, saved_model_path):
        result = metrics.fid_kid(real, fake, path, rng=0, batch_size=16, kid_subsets=10)
        assert set(result) == {"fid", "kid"}
        assert result["fid"] == pytest.approx(want_fid, rel=1e-4)
        assert result["kid"] == pytest.approx(
            metrics.kid_from_features(features(real), features(fake), 0, 10), rel=1e-3, abs=1e-6)
        same = metrics.fid_kid(real, real, path, rng=0, batch_size=16, kid_subsets=10)
        assert same["fid"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(FileNotFoundError):
        metrics.fid_kid(real, fake, str(tmp_path / "missing.keras"))


# ---- the bundle -----------------------------------------------------------------------

def test_evaluate_images_returns_plain_json_values():
    rng = np.random.default_rng(5)
    real = smooth_blobs(32, 32, rng)
    fake = smooth_blobs(32, 32, rng)
    result = metrics.evaluate_images(real, fake, seed=1)
    assert set(result) == {"swd", "ms_ssim_fake", "ms_ssim_real", "num_images", "resolution"}
    assert list(result["swd"]) == ["32", "16", "avg"]
    assert result["num_images"] == 32 and result["resolution"] == 32
    assert all(type(v) is float for v in result["swd"].values())
    assert type(result["ms_ssim_fake"]) is float and type(result["ms_ssim_real"]) is float
    assert json.loads(json.dumps(result)) == result
    assert metrics.evaluate_images(real, fake, seed=1) == result


def test_evaluate_images_of_small_and_too_small_images():
    rng = np.random.default_rng(6)
    x = rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
    result = metrics.evaluate_images(x[:8], x[8:], seed=0)
    assert list(result["swd"]) == ["8", "avg"] and result["resolution"] == 8
    tiny = np.zeros((8, 4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 7x7"):
        metrics.evaluate_images(tiny, tiny, seed=0)


# ---- copy check -------------------------------------------------------------------------

def flat(levels, size=64):
    """uint8 [len(levels), size, size, 3]: flat icons, one (r, g, b) or grey level each."""
    rgb = np.array([(v, v, v) if np.isscalar(v) else v for v in levels], np.uint8)
    return np.broadcast_to(rgb[:, None, None, :], (len(levels), size, size, 3)).copy()


def test_copy_check_finds_an_exact_copy_at_distance_zero():
    rng = np.random.default_rng(7)
    training = smooth_blobs(40, 64, rng)
    held_out = smooth_blobs(20, 64, rng)
    generated = rng.integers(0, 256, (12, 64, 64, 3), dtype=np.uint8)   # noise: no copies
    generated[3] = training[7]
    result = metrics.copy_check(generated, training, held_out, closest=5)
    assert result["closest"][0] == {"generated": 3, "training": 7, "distance": 0.0}
    assert len(result["closest"]) == 5
    distances = [p["distance"] for p in result["closest"]]
    assert distances == sorted(distances) and distances[1] > 0.2     # noise is far from blobs
    gen = result["generated"]
    assert gen["count"] == 12 and gen["min"] == 0.0
    assert gen["near_copies"] == gen["under_absolute"] == pytest.approx(1 / 12)
    assert result["reference"]["kind"] == "held_out" and result["reference"]["count"] == 20
    assert 0 < result["near_copy_threshold"] == result["reference"]["p1"] < distances[1]
    assert result["absolute_threshold"] == metrics.NEAR_COPY_ABSOLUTE == 0.01
    assert result["distance"] == "RMS difference of pixel values in [0, 1] at 64x64"
    assert json.loads(json.dumps(result)) == result


def test_copy_check_reference_of_held_out_icons():
    training = flat([0, 50, 100, 150, 200, 250])
    held_out = flat([10, 60, 120, 255])          # nearest: 0, 50, 100 (or 150), 250
    generated = flat([26, (250, 250, 220)])      # 26 -> 50; off-white -> 250
    result = metrics.copy_check(generated, training, held_out)
    ref = result["reference"]
    # Distances 10, 10, 20, 5 (/ 255); numpy's linear percentiles of [5, 10, 10, 20].
    assert ref["min"] == pytest.approx(5 / 255)
    assert ref["p1"] == pytest.approx((5 + 0.03 * 5) / 255)
    assert ref["p5"] == pytest.approx((5 + 0.15 * 5) / 255)
    assert ref["p50"] == pytest.approx(10 / 255)
    assert ref["near_copies"] == 0.25 and ref["under_absolute"] == 0.0
    # Off-white against grey 250: RMS of (0, 0, 30) over the three channels.
    closest = result["closest"]
    assert closest[0] == {"generated": 1, "training": 5,
                          "distance": pytest.approx(30 / 255 / np.sqrt(3))}
    assert closest[1] == {"generated": 0, "training": 1, "distance": pytest.approx(24 / 255)}
    assert result["generated"]["near_copies"] == 0.0


def test_copy_check_without_held_out_icons_uses_leave_one_out():
    training = flat([0, 50, 100, 150, 200, 250, 252])
    result = metrics.copy_check(flat([100, 140]), training)
    ref = result["reference"]
    assert ref["kind"] == "leave_one_out" and ref["count"] == 7
    # Each grey's nearest other grey: 50 apart, except 250 and 252 (2 apart).
    # Sorted: 2, 2, 50, 50, 50, 50, 50; percentiles 1 and 5 lie between the two 2s.
    assert ref["min"] == ref["p1"] == ref["p5"] == pytest.approx(2 / 255)
    assert ref["p50"] == pytest.approx(50 / 255)
    assert result["near_copy_threshold"] == ref["p1"]
    assert ref["under_absolute"] == pytest.approx(2 / 7)     # 2 / 255 = 0.0078 <= 0.01
    assert result["generated"]["near_copies"] == 0.5         # the copy of 100; 140 is 10 away


def test_copy_check_averages_big_icons_down_to_64():
    checker = np.indices((128, 128)).sum(axis=0) % 2 * 255    # 0/255 pixel checkerboard
    icon = np.repeat(checker[None, :, :, None], 3, axis=3).astype(np.uint8)
    training = np.concatenate([flat([128, 20], 128), icon])
    result = metrics.copy_check(np.concatenate([icon, flat([127], 128)]), training)
    # Averaged over 2x2 blocks the checkerboard is grey 127.5: 0.5 / 255 from grey 128.
    assert result["closest"][0] == {"generated": 0, "training": 2, "distance": 0.0}
    assert result["closest"][1]["distance"] == pytest.approx(0.5 / 255, abs=1e-7)
    assert result["closest"][1]["training"] in (0, 2)
    small = metrics.copy_check(flat([1, 2], 32), flat([1, 3], 32))
    assert small["distance"].endswith("at 32x32")


def test_nearest_neighbours_match_brute_force_in_chunks():
    rng = np.random.default_rng(8)
    keys = rng.uniform(0, 1, (50, 30)).astype(np.float32)
    queries = rng.uniform(0, 1, (23, 30)).astype(np.float32)
    all_d = np.sqrt(np.mean((queries[:, None].astype(np.float64) - keys[None]) ** 2, axis=2))
    index, distance = metrics.nearest_neighbours(queries, keys, chunk=7)
    np.testing.assert_array_equal(index, all_d.argmin(axis=1))
    np.testing.assert_allclose(distance, all_d.min(axis=1), rtol=1e-12)
    self_d = np.sqrt(np.mean((keys[:, None].astype(np.float64) - keys[None]) ** 2, axis=2))
    np.fill_diagonal(self_d, np.inf)
    index, distance = metrics.nearest_neighbours(keys, keys, exclude_self=True, chunk=7)
    np.testing.assert_array_equal(index, self_d.argmin(axis=1))
    np.testing.assert_allclose(distance, self_d.min(axis=1), rtol=1e-12)


def test_copy_check_vectors_shape_and_errors():
    vectors = metrics.copy_check_vectors(flat([0, 255], 256))
    assert vectors.shape == (2, 64 * 64 * 3) and vectors.dtype == np.float32
    assert vectors[0].max() == 0.0 and vectors[1].min() == 1.0
    with pytest.raises(TypeError, match="uint8"):
        metrics.copy_check(flat([0, 1]).astype(np.float32), flat([0, 1]))
    with pytest.raises(ValueError, match="one size"):
        metrics.copy_check(flat([0, 1], 32), flat([0, 1], 64))
    with pytest.raises(ValueError, match="held_out needs at least 2"):
        metrics.copy_check(flat([0, 1]), flat([0, 1]), flat([0]))
    with pytest.raises(ValueError, match="96 is not a multiple of 64"):
        metrics.copy_check(flat([0, 1], 96), flat([0, 1], 96))
    with pytest.raises(ValueError, match="leave-one-out"):
        metrics.nearest_neighbours(np.zeros((3, 4)), np.zeros((2, 4)), exclude_self=True)
