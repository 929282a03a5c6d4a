"""Running minimum and maximum over a window, in O(n) with numpy (no scipy.ndimage import at start-up)."""

from __future__ import annotations

import numpy as np


def trailing_min(x: np.ndarray, size: int) -> np.ndarray:
    """out[i] = min(x[max(0, i - size + 1) : i + 1]) in O(len(x)) (van Herk / Gil-Werman: prefix
    and suffix minima within blocks of ``size``); exact, as the running minimum it replaces.
    A 2-D ``x`` is taken row by row (the same minima as each row alone)."""
    n = x.shape[-1]
    if n == 0 or size <= 1:
        return x.copy()
    rows = x.shape[:-1]
    lead = size - 1
    total = -(-(n + lead) // size) * size
    y = np.full(rows + (total,), np.inf, dtype=x.dtype)
    y[..., lead:lead + n] = x
    blocks = y.reshape(rows + (-1, size))
    prefix = np.minimum.accumulate(blocks, axis=-1).reshape(rows + (-1,))
    suffix = np.minimum.accumulate(blocks[..., ::-1], axis=-1)[..., ::-1].reshape(rows + (-1,))
    # window [i, i + size - 1] of y (= x[i - lead .. i]) spans at most two blocks
    return np.minimum(suffix[..., :n], prefix[..., lead:lead + n])


def centred_max(x: np.ndarray, size: int) -> np.ndarray:
    """out[i] = max(x[i - size // 2 : i + size // 2 + 1]) clipped to the array, ``size`` odd: what
    ``scipy.ndimage.maximum_filter1d(x, size)`` gives (its mirrored edges repeat values already in
    the clipped window)."""
    if size % 2 == 0:
        raise ValueError(f"centred_max needs an odd window, got {size}")
    half = size // 2
    y = np.concatenate((-np.asarray(x), np.full(half, np.inf)))
    return -trailing_min(y, size)[half:half + len(x)]
