"""Front-end clean-up before channelisation: impulse blanking.

RTL-SDR captures carry periodic impulsive interference far above the noise and the wanted
signal (clusters of 1-14 samples every ~125 µs in the shared recording); left in, it smears across
every channel after filtering. In each absolutely aligned block of B samples, samples more than
``threshold_db`` above the block's median power are candidates; runs of candidates shorter than
``max_run`` samples are impulses and are set to zero (with ``guard`` neighbours) — a neutral
erasure for the FM discriminator — while longer runs are a transmission starting, left alone.
Chunk-invariant: blocks do not depend on how the input was split.
"""

from __future__ import annotations

import numpy as np


class ImpulseBlanker:
    def __init__(self, block: int = 1024, threshold_db: float = 10.0, guard: int = 2, max_run: int = 48):
        self.block = block
        self.factor = np.float32(10 ** (threshold_db / 10))
        self.guard = guard
        self.max_run = max_run
        self.reset()

    def reset(self) -> None:
        self._carry = np.zeros(0, dtype=np.complex64)
        self.blanked = 0

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Blanked samples for every complete block; a partial block waits for the next call."""
        buf = np.concatenate((self._carry, np.asarray(samples, dtype=np.complex64)))
        n = len(buf) // self.block
        self._carry = buf[n * self.block:]
        if n == 0:
            return np.zeros(0, dtype=np.complex64)
        x = buf[: n * self.block]
        f = x.view(np.float32)
        re, im = f[0::2], f[1::2]
        p = (re * re + im * im).reshape(n, self.block)
        sub = p[:, ::4]  # the median of every 4th sample is plenty for a level reference
        med = np.partition(sub, sub.shape[1] // 2, axis=1)[:, sub.shape[1] // 2]
        hot = (p > (med * self.factor)[:, None]).reshape(-1)
        flat = np.flatnonzero(hot)
        if len(flat) == 0:
            return x
        # runs of consecutive candidates (a gap of up to `guard` samples joins them)
        breaks = np.flatnonzero(np.diff(flat) > self.guard + 1)
        starts = flat[np.concatenate(([0], breaks + 1))]
        ends = flat[np.concatenate((breaks, [len(flat) - 1]))]
        short = (ends - starts + 1) <= self.max_run
        if not short.any():
            return x
        x = x.copy()
        for a, b in zip(starts[short] - self.guard, ends[short] + self.guard + 1, strict=True):
            x[max(a, 0):b] = 0
        self.blanked += int((ends[short] - starts[short] + 1 + 2 * self.guard).sum())
        return x

    def flush(self) -> np.ndarray:
        rest = self._carry
        self._carry = np.zeros(0, dtype=np.complex64)
        return rest
