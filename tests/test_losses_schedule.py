"""WGAN-GP terms against finite differences and numpy; the schedule's phases and a."""

import numpy as np
import pytest
import tensorflow as tf

from mel_tf.training import losses
from mel_tf.config import TrainConfig, preset
from mel_tf.training.networks import Discriminator, initialize
from mel_tf.config import parse_resolution_map
from mel_tf.training.schedule import Schedule, schedule_for


def test_gradient_penalty_matches_finite_differences():
    cfg = preset("seed", 4, width=1 / 64)
    d = Discriminator(cfg)
    initialize(d, 0)          # fixed weights: the check is deterministic
    d.set_stage(4)
    rng = np.random.default_rng(0)
    xhat = rng.uniform(size=(2, 4, 4, 3)).astype(np.float64)

    def total_score(x):
        return float(tf.reduce_sum(d(tf.constant(x, tf.float32))))

    # Central differences of the summed scores give every sample's gradient
    # (MiniBatchStd couples the samples; the penalty uses the same gradient).
    h = 1e-3
    grad = np.zeros_like(xhat)
    for idx in np.ndindex(*xhat.shape):
        plus, minus = xhat.copy(), xhat.copy()
        plus[idx] += h
        minus[idx] -= h
        grad[idx] = (total_score(plus) - total_score(minus)) / (2 * h)
    norms = np.sqrt((grad ** 2).sum(axis=(1, 2, 3)))
    expected = np.mean((norms - 1.0) ** 2)
    got = float(losses.gradient_penalty(d, tf.constant(xhat, tf.float32)))
    assert got == pytest.approx(expected, rel=2e-3, abs=1e-4)
    assert expected > 1e-3          # the check is not trivially 0 == 0


def test_discriminator_loss_terms_match_numpy():
    real = np.array([[1.5], [-0.5], [2.0]], np.float32)
    fake = np.array([[0.25], [-1.0], [0.5]], np.float32)
    terms = losses.discriminator_loss(real, fake, tf.constant(0.3), gp_weight=10.0, drift_weight=0.001)
    drift = np.mean(real ** 2)
    assert float(terms["drift"]) == pytest.approx(drift)                  # (2.25+0.25+4)/3
    assert float(terms["drift"]) == pytest.approx(6.5 / 3)
    assert float(terms["wasserstein"]) == pytest.approx(real.mean() - fake.mean())
    expected = fake.mean() - real.mean() + 10 * 0.3 + 0.001 * drift
    assert float(terms["d_loss"]) == pytest.approx(expected, rel=1e-6)
    assert float(losses.generator_loss(fake)) == pytest.approx(-fake.mean())


def test_interpolate_uses_eps_per_sample():
    real = np.ones((2, 2, 2, 3), np.float32)
    fake = np.zeros((2, 2, 2, 3), np.float32)
    eps = np.array([0.0, 0.75], np.float32).reshape(2, 1, 1, 1)
    x = np.asarray(losses.interpolate(real, fake, eps))
    assert np.all(x[0] == 0.0) and np.allclose(x[1], 0.75)


def test_seed_schedule_phases():
    s = Schedule.progressive(resolution=32, fade_images=100, stable_images=40,
                             stable_every_resolution=False, batch_size=8, learning_rate=5e-4,
                             final_learning_rate=1e-4)
    assert [(p.name, p.images) for p in s.phases] == [("4x4 stable", 40), ("8x8 fade", 100), ("16x16 fade", 100),
                            ("32x32 fade", 100), ("32x32 stable", 40)]
    assert s.total_images == 380
    assert [p.learning_rate for p in s.phases] == [5e-4] * 4 + [1e-4]


def test_phase_images_per_resolution_lengthen_only_those_phases():
    s = Schedule.progressive(resolution=16, fade_images=100, stable_images=40,
                             stable_every_resolution=False, batch_size=8, learning_rate=5e-4,
                             phase_images={16: 300})
    assert [(p.name, p.images) for p in s.phases] == [("4x4 stable", 40), ("8x8 fade", 100),
                                                      ("16x16 fade", 300), ("16x16 stable", 300)]
    assert s.total_images == 740
    assert s.locate(140 + 150).alpha == pytest.approx(0.5)
    tc = TrainConfig(fade_images=16, stable_images=8, phase_images=((8, 24),))
    assert [p.images for p in schedule_for(preset("seed", 8), tc).phases] == [8, 24, 24]
    with pytest.raises(ValueError, match="positive"):
        Schedule.progressive(resolution=8, fade_images=10, stable_images=10,
                             stable_every_resolution=False, batch_size=8, learning_rate=1e-3,
                             phase_images={8: 0})
    with pytest.raises(ValueError, match="not one of"):
        schedule_for(preset("seed", 8), TrainConfig(phase_images=((16, 8),)))


def test_paper_schedule_has_a_stable_phase_per_resolution():
    s = Schedule.progressive(resolution=16, fade_images=10, stable_images=20,
                             stable_every_resolution=True, batch_size=8, learning_rate=1e-3,
                             batch_sizes={4: 128, 16: 32})
    assert [(p.name, p.images) for p in s.phases] == [("4x4 stable", 20), ("8x8 fade", 10), ("8x8 stable", 20),
                            ("16x16 fade", 10), ("16x16 stable", 20)]
    assert [p.batch_size for p in s.phases] == [128, 8, 8, 32, 32]


def test_alpha_and_phase_at_boundaries():
    s = Schedule.progressive(resolution=16, fade_images=100, stable_images=50,
                             stable_every_resolution=False, batch_size=10, learning_rate=1e-3)
    # 4x4 stable [0, 50), 8 fade [50, 150), 16 fade [150, 250), 16 stable [250, 300)
    cases = [(0, "4x4 stable", 1.0), (49, "4x4 stable", 1.0), (50, "8x8 fade", 0.0),
             (100, "8x8 fade", 0.5), (149, "8x8 fade", 0.99), (150, "16x16 fade", 0.0),
             (240, "16x16 fade", 0.9), (250, "16x16 stable", 1.0), (299, "16x16 stable", 1.0)]
    for images, name, alpha in cases:
        pos = s.locate(images)
        assert (pos.phase.name, pos.alpha, pos.done) == (name, pytest.approx(alpha), False), images
    assert s.locate(300).done and s.locate(300).alpha == 1.0


def test_schedule_for_configs_and_resolution_maps():
    cfg = preset("seed", 8)
    tc = TrainConfig(fade_images=16, stable_images=8, batch_sizes=((8, 4),))
    s = schedule_for(cfg, tc)
    assert [(p.name, p.batch_size) for p in s.phases] == [("4x4 stable", 8), ("8x8 fade", 4),
                                                          ("8x8 stable", 4)]
    assert parse_resolution_map("4:64, 8:32", int) == ((4, 64), (8, 32))
    assert parse_resolution_map("") == ()
    with pytest.raises(ValueError, match="RESOLUTION:VALUE"):
        parse_resolution_map("4=64")
    with pytest.raises(ValueError, match="not one of"):
        schedule_for(cfg, TrainConfig(batch_sizes=((64, 4),)))
