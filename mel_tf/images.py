"""Small helpers for uint8 image batches: grids and PNG files."""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image


def image_grid(images: np.ndarray, columns: int = 0, min_cell: int = 0) -> np.ndarray:
    """[N, H, W, 3] uint8 -> one [rows*H', cols*W', 3] grid, cells enlarged
    (nearest) to at least `min_cell` pixels so that tiny stages stay visible."""
    n, h, w, _ = images.shape
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    scale = max(1, int(math.ceil(min_cell / h))) if min_cell else 1
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    grid = np.full((rows * h, columns * w, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
    return grid


def save_png(path: str, image: np.ndarray):
    """Writes atomically, so a reader never sees half a file."""
    tmp = f"{path}.tmp{os.getpid()}.png"
    Image.fromarray(image).save(tmp)
    os.replace(tmp, path)


def pairs_grid(left: np.ndarray, right: np.ndarray, pairs, min_cell: int = 64) -> np.ndarray:
    """One row per (i, j) of `pairs`: left[i] beside right[j] (the copy check's
    closest generated and training icons)."""
    cells = [image for i, j in pairs for image in (left[i], right[j])]
    return image_grid(np.stack(cells), columns=2, min_cell=min_cell)
