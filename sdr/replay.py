"""A recording replayed at real-time pace as a live source (for tests and demonstrations)."""

from __future__ import annotations

import math
import time

from .file import FileSource
from .formats import BYTES_PER_SAMPLE, from_complex
from .source import Source


class ReplaySource(Source):
    def __init__(self, path: str, *, sample_rate_hz: float | None = None, center_freq_hz: float | None = None,
                 speed: float = 1.0, chunk_s: float = 0.05):
        self.file = FileSource(path, chunk_samples=max(1024, int((sample_rate_hz or 2.4e6) * chunk_s)))
        super().__init__(self.file.info)
        self.fmt = self.file.fmt if self.file.fmt in ("cu8", "cs8", "cs16", "cf32") else "cf32"
        self.speed = speed
        self._iter = None
        self._t0 = 0.0
        self._sent = 0

    def _open(self) -> None:
        self._iter = iter(self.file)
        self._t0 = time.monotonic()

    def _set_block(self, seconds: float) -> int:
        self.file.chunk_samples = max(1, math.ceil(seconds * self.info.sample_rate_hz - 1e-6))
        return self.file.chunk_samples * BYTES_PER_SAMPLE[self.fmt]

    def _read(self) -> bytes | None:
        chunk = next(self._iter, None)
        if chunk is None:
            return None
        self._sent += len(chunk.samples)
        delay = self._t0 + self._sent / self.info.sample_rate_hz / self.speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return from_complex(chunk.samples, self.fmt)
