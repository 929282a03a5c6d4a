"""Front-end clean-up before channelisation: impulse blanking.

RTL-SDR captures carry periodic impulsive interference far above the noise and the wanted
signal; left in, it smears across every channel after filtering. Each absolutely aligned block of
B samples is compared with the median power of the block before it; samples more than
``threshold_db`` above it (and their neighbours) are set to zero — a neutral erasure for the FM
discriminator. Chunk-invariant: blocks do not depend on how the input was split.
"""

from __future__ import annotations

import numpy as np


class ImpulseBlanker:
    def __init__(self, block: int = 1024, threshold_db: float = 10.0, guard: int = 2):
        self.block = block
        self.factor = np.float32(10 ** (threshold_db / 10))
        self.guard = guard
        self.reset()

    def reset(self) -> None:
        self._carry = np.zeros(0, dtype=np.complex64)
        self._ref = np.float32(np.inf)  # no reference before the first block: blank nothing
        self.blanked = 0

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Blanked samples for every complete block; a partial block waits for the next call."""
        buf = np.concatenate((self._carry, np.asarray(samples, dtype=np.complex64)))
        n = len(buf) // self.block
        self._carry = buf[n * self.block:]
        if n == 0:
            return np.zeros(0, dtype=np.complex64)
        x = buf[: n * self.block].reshape(n, self.block)
        p = np.square(x.view(np.float32)).reshape(n, self.block, 2).sum(axis=2)
        # median power per block from every 4th sample (plenty for a level reference)
        sub = p[:, ::4]
        med = np.partition(sub, sub.shape[1] // 2, axis=1)[:, sub.shape[1] // 2].astype(np.float32)
        ref = np.concatenate(([self._ref], med[:-1]))
        # the reference is the quieter of this block's and the previous block's median
        ref = np.minimum(ref, med)
        hot = p > (ref * self.factor)[:, None]
        self._ref = med[-1]
        counts = hot.sum(axis=1)
        # a block mostly above its reference is a signal (or its start), not an impulse
        hot[counts > self.block // 4] = False
        flat = np.flatnonzero(hot)
        if len(flat) == 0:
            return x.reshape(-1)
        x = x.reshape(-1).copy()
        row = flat // self.block
        for shift in range(-self.guard, self.guard + 1):
            idx = flat + shift
            ok = (idx >= 0) & (idx < len(x)) & (idx // self.block == row)
            x[idx[ok]] = 0
        self.blanked += len(flat)
        return x

    def flush(self) -> np.ndarray:
        rest = self._carry
        self._carry = np.zeros(0, dtype=np.complex64)
        return rest
