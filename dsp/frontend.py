"""Front-end clean-up before channelisation: impulse blanking.

RTL-SDR captures carry periodic impulsive interference far above the noise and the wanted
signal (clusters of 1-14 samples every ~125 µs in the shared recording); left in, it smears across
every channel after filtering. Samples are judged in absolutely aligned blocks of B samples against
the largest median level of the block and its two neighbours (one block of look-ahead), so the
edges of a transmission are measured against the transmission, not the noise before or after it.
A sample's level is its larger component, max(|I|, |Q|) (within 3 dB of its magnitude, and a
block's peak of it is two plain float reductions instead of a magnitude per sample); the median
level of a block is taken from every ``SUBSAMPLE``-th sample. Samples more than ``threshold_db``
above that reference are candidates; runs of candidates shorter
than ``max_run`` samples are impulses and are set to zero (with ``guard`` neighbours) — a neutral
erasure for the FM discriminator. Chunk-invariant: blocks do not depend on how the input was split.
"""

from __future__ import annotations

import numpy as np

SUBSAMPLE = 8  # every how many samples of a block its median level is taken from


class ImpulseBlanker:
    def __init__(self, block: int = 1024, threshold_db: float = 12.0, guard: int = 1, max_run: int = 48):
        self.block = block
        self.factor = np.float32(10 ** (threshold_db / 20))  # on amplitudes
        self.guard = guard
        self.max_run = max_run
        self.reset()

    def reset(self) -> None:
        self._carry = np.zeros(0, dtype=np.complex64)
        self._prev_med = np.float32(0)
        self.blanked = 0

    def process(self, samples: np.ndarray, *, final: bool = False) -> np.ndarray:
        """Blanked samples for every block whose next block has arrived (all of them when final)."""
        buf = np.concatenate((self._carry, np.asarray(samples, dtype=np.complex64)))
        total = len(buf) // self.block if not final else -(-len(buf) // self.block)
        if final and len(buf) % self.block:
            buf = np.concatenate((buf, np.zeros(self.block - len(buf) % self.block, dtype=np.complex64)))
        if total == 0:
            self._carry = buf
            return np.zeros(0, dtype=np.complex64)
        blocks = buf[: total * self.block].reshape(total, self.block)
        med_all = _median_level(blocks[:, ::SUBSAMPLE])
        n = total if final else total - 1  # the last complete block waits for its successor
        if n == 0:
            self._carry = buf
            return np.zeros(0, dtype=np.complex64)
        x = buf[: n * self.block]
        self._carry = buf[n * self.block:]
        prev = np.concatenate(([self._prev_med], med_all[: n - 1]))
        nxt = med_all[1:n + 1] if not final else np.concatenate((med_all[1:n], [0]))
        ref = np.maximum(np.maximum(prev, med_all[:n]), nxt)
        self._prev_med = med_all[n - 1]
        limit = ref * self.factor
        # most blocks hold no candidate at all: look closer only at those whose peak is over the limit
        f = x.view(np.float32).reshape(n, 2 * self.block)
        peak = np.maximum(f.max(axis=1), -f.min(axis=1))
        busy = np.flatnonzero(peak > limit)
        if len(busy) == 0:
            return x
        hot = _level(blocks[busy]) > limit[busy, None]
        rows, cols = np.nonzero(hot)
        flat = busy[rows] * self.block + cols
        # runs of consecutive candidates (a gap of up to `guard` samples joins them), never across a
        # block boundary, so every block is judged on its own samples whatever the chunking
        blk = flat // self.block
        breaks = np.flatnonzero((np.diff(flat) > self.guard + 1) | (np.diff(blk) != 0))
        starts = flat[np.concatenate(([0], breaks + 1))]
        ends = flat[np.concatenate((breaks, [len(flat) - 1]))]
        short = (ends - starts + 1) <= self.max_run
        if not short.any():
            return x
        # zero every short run with its guard, clipped to its block: marks +1 / -1 at the run's ends,
        # summed along the rows of the blocks concerned (x is this call's own copy of the input)
        a, b = starts[short], ends[short]
        row = np.searchsorted(busy, a // self.block)
        lo = np.maximum(a % self.block - self.guard, 0)
        hi = np.minimum(b % self.block + self.guard + 1, self.block)
        marks = np.zeros((len(busy), self.block + 1), dtype=np.int32)
        np.add.at(marks, (row, lo), 1)
        np.add.at(marks, (row, hi), -1)
        rows = x.reshape(n, self.block)
        cut = rows[busy]
        cut[np.cumsum(marks[:, :-1], axis=1) > 0] = 0
        rows[busy] = cut
        self.blanked += int((hi - lo).sum())  # each run with its guard, clipped to its block
        return x

    def flush(self) -> np.ndarray:
        """The held-back samples (the last blocks), blanked; the output then has the input's length."""
        n = len(self._carry)
        out = self.process(np.zeros(0, dtype=np.complex64), final=True)[:n] if n else self._carry
        self._carry = np.zeros(0, dtype=np.complex64)
        return out


def _level(x: np.ndarray) -> np.ndarray:
    """max(|I|, |Q|) per sample (float32)."""
    return np.maximum(np.abs(x.real), np.abs(x.imag))


def _median_level(sub: np.ndarray) -> np.ndarray:
    """The median level of every row (the upper middle one of an even count)."""
    level = _level(sub)
    mid = level.shape[1] // 2
    return np.partition(level, mid, axis=1)[:, mid]
