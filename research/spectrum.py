"""Where a set of images keeps its detail: the shares of its power spectrum in a few
bands of frequency (research/spectrum_probe.py compares generated icons with the reals).

Per set: the grey-level images (mean of RGB), each less its mean, their power spectrum
averaged over the set, and the share of the total power in bands of frequency f (cycles
per pixel, 0 to 1/2): the top octave (f >= 1/4 along either axis), the period-2 lines
(f = 1/2: checkerboards and one-pixel stripes) and two mid-band strips, 1/8 <= f < 1/4
along one axis and f < 1/16 along the other, for vertical lines (variation along x) and
horizontal ones; and the grey level's variance within an image (the total power), which
says whether a smaller share means less detail or more contrast.
"""

from __future__ import annotations

import numpy as np


def _bands(n: int) -> dict:
    """Boolean masks of an n x n FFT grid (numpy's order), one per band."""
    f = np.abs(np.fft.fftfreq(n))
    fy, fx = np.meshgrid(f, f, indexing="ij")
    mid = lambda a, b: (a >= 1 / 8) & (a < 1 / 4) & (b < 1 / 16)
    return {"top_octave": np.maximum(fx, fy) >= 1 / 4,
            "period_2": (fx == 0.5) | (fy == 0.5),
            "vertical_lines_mid": mid(fx, fy),
            "horizontal_lines_mid": mid(fy, fx)}


def band_shares(images: np.ndarray) -> dict:
    """uint8 [N, R, R, 3] -> the share of the mean power spectrum in each band."""
    grey = images.astype(np.float64).mean(axis=-1)
    grey -= grey.mean(axis=(1, 2), keepdims=True)
    power = (np.abs(np.fft.fft2(grey)) ** 2).mean(axis=0)
    total = power.sum()
    shares = {name: float(power[mask].sum() / total)
              for name, mask in _bands(images.shape[1]).items()}
    # Mean squared deviation from the image's mean grey level (Parseval), per pixel.
    return {**shares, "variance": float(total / grey[0].size ** 2)}
