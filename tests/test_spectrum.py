"""research.spectrum: each kind of pattern lands in its own band."""

import numpy as np
import pytest

from research.spectrum import band_shares


def icons(pattern_2d):
    grey = np.broadcast_to(pattern_2d, (3,) + pattern_2d.shape)
    return np.repeat(np.moveaxis(grey, 0, -1)[None], 2, axis=0).astype(np.uint8)


@pytest.mark.parametrize("period,band", [(2, "period_2"), (6, "vertical_lines_mid")])
def test_vertical_stripes_fall_in_their_band_only(period, band):
    x = np.arange(48)                       # whole periods of 2 and 6 pixels
    stripes = np.where((x // (period // 2)) % 2 == 0, 200, 50)[None, :].repeat(48, axis=0)
    shares = band_shares(icons(stripes))
    assert shares[band] > 0.7
    assert shares["horizontal_lines_mid"] == pytest.approx(0, abs=1e-12)
    assert shares["variance"] == pytest.approx(75.0 ** 2)
    transposed = band_shares(icons(stripes.T))
    assert transposed["vertical_lines_mid"] == pytest.approx(0, abs=1e-12)
    assert transposed["period_2"] == pytest.approx(shares["period_2"])


def test_a_smooth_wave_has_no_top_octave_and_noise_has_most_of_it():
    wave = 128 + 100 * np.cos(2 * np.pi * np.arange(32) / 32)[None, :].repeat(32, axis=0)
    assert band_shares(icons(np.round(wave)))["top_octave"] < 1e-4
    noise = np.random.default_rng(0).integers(0, 256, (32, 32))
    assert band_shares(icons(noise))["top_octave"] > 0.6
